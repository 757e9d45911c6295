/**
 * pusher-js's browser build in real Chromium against roomcast: a page subscribes to a public and
 * a private channel (authorized by an endpoint the test serves, as an app would), gets a
 * triggered event, sends a client event that a Node-side pusher-js receives, and renders nothing
 * as HTML. Skipped locally without Chromium; in CI a missing Chromium fails it.
 */
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { browserTest } from "./_browser.ts";
import { client, nextEvent, PUSHER_APP, sdk, subscribed } from "./_pusher.ts";
import { startTestServer } from "./_server.ts";

const require = createRequire(import.meta.url);
const PUSHER_JS = await Deno.readTextFile(require.resolve("pusher-js/dist/web/pusher.min.js"));

/** What the page's script uses of pusher-js (the page has no types for it). */
interface PageChannel {
  bind(event: string, handler: (data: unknown) => void): void;
  trigger(event: string, data: unknown): boolean;
}
interface PagePusher {
  subscribe(name: string): PageChannel;
  channel(name: string): PageChannel;
  disconnect(): void;
}
type PageGlobals = {
  Pusher: new (key: string, options: Record<string, unknown>) => PagePusher;
  authorize(socketId: string, channel: string): Promise<unknown>;
  pusher: PagePusher;
  got: unknown[];
};

browserTest("pusher-js in Chromium: public and private channels, triggers and client events", async (browser) => {
  await using server = await startTestServer({ pusherApps: [PUSHER_APP] });
  const api = sdk(server);
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on("pageerror", (error) => problems.push(error.message));
  // Channel authorization as an app's endpoint does it: the page asks, the test signs.
  await page.exposeFunction(
    "authorize",
    (socketId: string, channel: string) => api.authorizeChannel(socketId, channel),
  );
  // A same-origin page without the chat page's CSP, so the library can be added inline.
  await page.goto(`${server.url}/healthz`);
  await page.addScriptTag({ content: PUSHER_JS });
  const port = Number(new URL(server.url).port);
  await page.evaluate(async ({ key, port }) => {
    const w = globalThis as unknown as PageGlobals;
    const pusher = new w.Pusher(key, {
      cluster: "local",
      wsHost: "127.0.0.1",
      wsPort: port,
      forceTLS: false,
      enabledTransports: ["ws"],
      disableStats: true,
      channelAuthorization: {
        customHandler: (p: { socketId: string; channelName: string }, cb: (e: unknown, a: unknown) => void) =>
          w.authorize(p.socketId, p.channelName).then((auth: unknown) => cb(null, auth)),
      },
    });
    w.got = [];
    const subscribed = (name: string) =>
      new Promise((resolve) => pusher.subscribe(name).bind("pusher:subscription_succeeded", resolve));
    await subscribed("news");
    await subscribed("private-team");
    pusher.channel("news").bind("headline", (data: unknown) => w.got.push(data));
    w.pusher = pusher;
  }, { key: PUSHER_APP.key, port });

  const html = `<img src=x onerror="globalThis.__pwned=1">`;
  await api.trigger("news", "headline", { text: html });
  await page.waitForFunction(() => (globalThis as unknown as { got: unknown[] }).got.length === 1);
  assert.deepEqual(await page.evaluate(() => (globalThis as unknown as { got: unknown[] }).got), [{ text: html }]);

  const node = client(server);
  try {
    const team = await subscribed(node, "private-team");
    const whisper = nextEvent(team, "client-wave");
    await page.evaluate(() => {
      (globalThis as unknown as PageGlobals).pusher.channel("private-team").trigger("client-wave", { from: "page" });
    });
    assert.deepEqual(await whisper, { from: "page" });
  } finally {
    node.disconnect();
  }
  assert.equal(await page.evaluate(() => (globalThis as { __pwned?: number }).__pwned), undefined);
  assert.deepEqual(problems, []);
  await page.evaluate(() => (globalThis as unknown as PageGlobals).pusher.disconnect());
});
