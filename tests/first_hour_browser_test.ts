/**
 * What a new user meets in the chat page (issue 24), in Chromium:
 * - the network goes away (`context.setOffline`): the status says "Reconnecting…" at once and the
 *   banner says why; a message typed meanwhile stays in the timeline as "Sending…"; back online it
 *   is "Connected" again, the message published meanwhile shows, and the typed one is sent once;
 * - the page opened at an address `ROOMCAST_HOSTS` does not list: the join card says what the
 *   server refused and which setting would allow it, instead of retrying forever.
 */
import assert from "node:assert/strict";
import { browserTest } from "./_browser.ts";
import { postJson, startTestServer } from "./_server.ts";
import { signToken } from "../lib/auth.ts";

browserTest("offline: 'Reconnecting…' at once, then back and caught up when the network returns", async (browser) => {
  await using server = await startTestServer();
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${server.url}/?name=Ann&room=net`);
  await page.locator('#status[data-state="open"]').waitFor({ timeout: 10_000 });
  await context.setOffline(true);
  const start = performance.now();
  await page.locator('#status[data-state="reconnecting"]').waitFor({ timeout: 2000 });
  assert.ok(performance.now() - start < 2000, "noticed at once, not after the heartbeats (51 s)");
  assert.equal(await page.locator("#status").textContent(), "Reconnecting…");
  assert.match(await page.locator("#banner").textContent() ?? "", /Reconnecting/);
  const sent = await postJson(server, "/api/rooms/net/messages", { data: { text: "while you were away" } });
  await sent.body?.cancel();
  // Typed offline: shown as "Sending…" in the timeline, not vanished; sent once when back.
  await page.locator("#input").fill("typed offline");
  await page.locator("#input").press("Enter");
  const pending = page.locator("#messages li.pending", { hasText: "typed offline" });
  await pending.waitFor({ timeout: 2000 });
  assert.match(await pending.textContent() ?? "", /Sending…/);
  await page.waitForTimeout(1000);
  assert.equal(await pending.count(), 1, "still there a second later");
  await context.setOffline(false);
  await page.locator('#status[data-state="open"]').waitFor({ timeout: 10_000 });
  await page.locator("#messages .text", { hasText: "while you were away" }).waitFor({ timeout: 5000 });
  await page.locator("#messages li.message:not(.pending) .text", { hasText: "typed offline" }).waitFor({
    timeout: 5000,
  });
  await pending.waitFor({ state: "detached", timeout: 5000 });
  const history = await (await server.fetch("/api/rooms/net/messages")).json();
  assert.deepEqual(
    history.messages.map((m: { data: { text: string } }) => m.data.text),
    ["while you were away", "typed offline"],
    "sent once",
  );
  await context.close();
});

browserTest("a page at an address ROOMCAST_HOSTS doesn't list says so, and stops retrying", async (browser) => {
  await using server = await startTestServer({ hosts: ["chat.example.com"] });
  const page = await browser.newPage();
  await page.goto(`${server.url}/?name=Ann&room=lan`);
  const error = page.locator("#login-error");
  await error.waitFor({ state: "visible", timeout: 10_000 });
  assert.match(await error.textContent() ?? "", /does not answer to 127\.0\.0\.1: add it to ROOMCAST_HOSTS/);
  assert.equal(await page.locator("#login-view").isVisible(), true);
});

browserTest(
  "auth mode: one voice on the join card, the token out of the address bar, a forbidden room disables the composer",
  async (browser) => {
    const secret = "page-auth-secret";
    await using server = await startTestServer({ authSecret: secret });
    const token = await signToken({ sub: "ann", name: "Ann", rooms: ["team-*"] }, secret);

    // Without a token: the card asks for one, and says why, and nothing says "No account needed".
    const fresh = await browser.newPage();
    await fresh.goto(`${server.url}/?name=Ann&room=team-a`);
    await fresh.locator("#token-field").waitFor({ state: "visible", timeout: 5000 });
    assert.match(await fresh.locator("#login-foot").textContent() ?? "", /Signed-in users only/);
    assert.doesNotMatch(await fresh.locator("#login-view").innerText(), /No account needed/);
    await fresh.locator("#token").fill("not-a-token");
    await fresh.locator("#join").click();
    const error = fresh.locator("#login-error");
    await error.waitFor({ state: "visible", timeout: 10_000 });
    assert.match(await error.textContent() ?? "", /access token was not accepted \(Token is not a JWT\)/);
    assert.doesNotMatch(fresh.url(), /token/);

    // With a token in the link: it leaves the address at once and the user is in.
    const page = await browser.newPage();
    await page.goto(`${server.url}/?name=Ann&room=team-a&token=${token}`);
    await page.locator('#status[data-state="open"]').waitFor({ timeout: 10_000 });
    assert.doesNotMatch(page.url(), /token=/, page.url());
    assert.equal(await page.locator("#me-id").textContent(), "ann");
    // A room the token doesn't allow: told, and the composer is off with the reason.
    await page.locator("#switch-input").fill("secret");
    await page.locator("#switch-input").press("Enter");
    await page.locator("#messages li.notice", { hasText: "Couldn't join #secret" }).waitFor({ timeout: 5000 });
    assert.equal(await page.locator("#input").isDisabled(), true);
    assert.match(await page.locator("#input").getAttribute("placeholder") ?? "", /doesn't allow #secret/);
    // A room it allows: the composer is back.
    await page.locator("#switch-input").fill("team-b");
    await page.locator("#switch-input").press("Enter");
    await page.locator("#room-name", { hasText: "team-b" }).waitFor();
    assert.equal(await page.locator("#input").isDisabled(), false);
    // A reload keeps the token (this tab's storage), still not in the address.
    await page.reload();
    await page.locator('#status[data-state="open"]').waitFor({ timeout: 10_000 });
    assert.equal(await page.locator("#me-id").textContent(), "ann");
  },
);

browserTest("a guest keeps its identity across a reload; the others see no leave and join", async (browser) => {
  await using server = await startTestServer({ leaveGraceMs: 2000 });
  const context = await browser.newContext();
  const ann = await context.newPage();
  await ann.goto(`${server.url}/?name=Ann&room=stay`);
  await ann.locator('#status[data-state="open"]').waitFor({ timeout: 10_000 });
  const id = await ann.locator("#me-id").textContent();
  const bob = await browser.newPage();
  await bob.goto(`${server.url}/?name=Bob&room=stay`);
  await bob.locator("#members li.member", { hasText: "Ann" }).waitFor();
  const notices = () => bob.locator("#messages li.notice", { hasText: "Ann" }).count();
  const before = await notices();
  await ann.reload();
  await ann.locator('#status[data-state="open"]').waitFor({ timeout: 10_000 });
  assert.equal(await ann.locator("#me-id").textContent(), id, "the same guest after a reload");
  await bob.waitForTimeout(2500);
  assert.equal(await notices(), before, "no 'Ann left' / 'Ann joined' at Bob's");
  await context.close();
});

browserTest(
  "a full server is shown as full, with the wait, not as unreachable; the page gets in once there is room",
  async (browser) => {
    await using server = await startTestServer({ maxConnections: 1 });
    const holder = await server.client();
    const page = await browser.newPage();
    await page.goto(`${server.url}/?name=Ann&room=full`);
    const banner = page.locator("#banner");
    await banner.filter({ hasText: "turned the connection away" }).waitFor({ timeout: 10_000 });
    assert.match(await banner.textContent() ?? "", /The server is full: try again later\. Trying again in \d+ s\./);
    assert.doesNotMatch(await banner.textContent() ?? "", /Can't reach the server/);
    await holder.close();
    await page.locator('#status[data-state="open"]').waitFor({ timeout: 15_000 });
  },
);
