/**
 * End-to-end in real Chromium (Debian's /usr/bin/chromium via playwright-core): two pages chat,
 * untrusted HTML stays text, and a page whose connection is cut — or whose server restarts —
 * ends up showing every message exactly once, in order. Skipped locally without Chromium; in CI
 * (CI=true) a missing Chromium fails the test.
 */
import assert from "node:assert/strict";
import type { Browser, Page } from "playwright-core";
import { browserTest } from "./_browser.ts";
import { postJson, startTestServer, type TestServer } from "./_server.ts";

/** Opens the chat page, which joins by itself when name and room are in the URL. */
async function openChat(browser: Browser, url: string, name: string, room: string): Promise<Page> {
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on("pageerror", (error) => problems.push(error.message));
  page.on("console", (message) => {
    if (message.type() === "error" && !/ERR_CONNECTION_REFUSED|WebSocket/.test(message.text())) {
      problems.push(message.text());
    }
  });
  (page as Page & { problems?: string[] }).problems = problems;
  await page.goto(`${url}/?name=${encodeURIComponent(name)}&room=${room}`);
  await page.locator('#status[data-state="open"]').waitFor({ timeout: 10_000 });
  return page;
}

const offsets = (page: Page) =>
  page.locator("#messages li.message").evaluateAll((items) =>
    items.map((li) => Number(li.getAttribute("data-offset")))
  );

async function waitForOffsets(page: Page, expected: number[], ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  let seen: number[] = [];
  while (Date.now() < deadline) {
    seen = await offsets(page);
    if (seen.length >= expected.length) break;
    await page.waitForTimeout(50);
  }
  assert.deepEqual(seen, expected);
}

const test = browserTest;

test("e2e: two pages chat; members, typing, HTML stays text", async (browser) => {
  await using server = await startTestServer();
  const ann = await openChat(browser, server.url, "Ann", "e2e");
  const bob = await openChat(browser, server.url, "Bob", "e2e");

  await ann.locator("#members li.member", { hasText: "Bob" }).waitFor();
  await bob.locator("#members li.member", { hasText: "Ann" }).waitFor();

  await ann.locator("#input").fill("hello bob");
  await ann.locator("#input").press("Enter");
  const atBob = bob.locator("#messages li.message").last();
  await atBob.locator(".text", { hasText: "hello bob" }).waitFor();
  assert.equal(await atBob.locator(".author").textContent(), "Ann");
  assert.match((await atBob.locator(".time").textContent()) ?? "", /^\d{2}:\d{2}$/);

  await bob.locator("#input").fill("typing…");
  await ann.locator("#typing", { hasText: "Bob is typing" }).waitFor();

  const html = `<img src=x onerror="window.__pwned=1"><b>bold?</b>`;
  await bob.locator("#input").fill(html);
  await bob.locator("#send").click();
  const atAnn = ann.locator("#messages li.message").last();
  await atAnn.locator(".text").filter({ hasText: "bold?" }).waitFor();
  assert.equal(await atAnn.locator(".text").textContent(), html, "rendered as the same text");
  assert.equal(await ann.locator("#messages img, #messages b").count(), 0, "no element was created");
  assert.equal(await ann.evaluate(() => (globalThis as { __pwned?: number }).__pwned), undefined);

  // A backend push shows up too, and the list is in offset order.
  await (await postJson(server, "/api/rooms/e2e/messages", { data: { text: "from the API" } })).body?.cancel();
  await ann.locator("#messages li.message .text", { hasText: "from the API" }).waitFor();
  assert.deepEqual(await offsets(ann), [1, 2, 3]);
  assert.deepEqual(await offsets(bob), [1, 2, 3]);

  await bob.close();
  await ann.locator("#messages li.notice", { hasText: "Bob" }).last().waitFor();
  await ann.locator("#members li.member", { hasText: "Bob" }).waitFor({ state: "detached" });
  assert.deepEqual((ann as Page & { problems?: string[] }).problems, [], "no page errors or CSP violations");
});

test("e2e: the page shows every message once, in order, across a cut and a server restart", async (browser) => {
  const dir = await Deno.makeTempDir();
  const kvPath = `${dir}/e2e.kv`;
  let server: TestServer = await startTestServer({ kv: true, kvPath });
  const port = Number(new URL(server.url).port);
  const publish = async (n: number) => {
    const response = await postJson(server, "/api/rooms/resume/messages", { data: { text: `message ${n}` } });
    assert.equal(response.status, 201);
    return (await response.json()).offset;
  };
  try {
    const page = await openChat(browser, server.url, "Reader", "resume");
    for (let n = 1; n <= 3; n++) await publish(n);
    await waitForOffsets(page, [1, 2, 3]);

    // 1. The server restarts (same KV file, same port); messages arrive while the page is away.
    await server.drain();
    await page.locator('#status:not([data-state="open"])').waitFor();
    server = await startTestServer({ kv: true, kvPath, port });
    for (let n = 4; n <= 8; n++) await publish(n);
    await page.locator('#status[data-state="open"]').waitFor({ timeout: 15_000 });
    for (let n = 9; n <= 10; n++) await publish(n);
    await waitForOffsets(page, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);

    // 2. The connection is cut without a restart (as a proxy or network drop would).
    server.hub.close(4000, "test cut");
    await page.locator('#status:not([data-state="open"])').waitFor();
    for (let n = 11; n <= 14; n++) await publish(n);
    await page.locator('#status[data-state="open"]').waitFor({ timeout: 15_000 });
    await publish(15);
    const expected = Array.from({ length: 15 }, (_, i) => i + 1);
    await waitForOffsets(page, expected);
    const texts = await page.locator("#messages li.message .text").allTextContents();
    assert.deepEqual(texts, expected.map((n) => `message ${n}`));
    assert.equal(await page.locator("#messages li.notice", { hasText: /reset/i }).count(), 0, "no reset needed");
  } finally {
    await server.drain();
    await Deno.remove(dir, { recursive: true });
  }
});

test("e2e: the sidebar switches rooms, older history pages in, sign-out returns to the join screen", async (browser) => {
  await using server = await startTestServer();
  for (let n = 1; n <= 60; n++) {
    await (await postJson(server, "/api/rooms/archive/messages", { data: { text: `old ${n}` } })).body?.cancel();
  }
  const page = await openChat(browser, server.url, "Ann", "first");
  const bob = await openChat(browser, server.url, "Bob", "first");
  await page.locator("#members li.member", { hasText: "Bob" }).waitFor();
  await page.locator("#room-list .room-link.current", { hasText: "first" }).waitFor();

  // A bad name is refused in place; a good one switches, and the URL follows.
  await page.locator("#switch-input").fill("two words");
  await page.locator("#switch-input").press("Enter");
  await page.locator("#switch-error", { hasText: "no spaces" }).waitFor();
  assert.equal(await page.locator("#switch-input").getAttribute("aria-invalid"), "true");
  assert.equal(await page.locator("#room-name").textContent(), "first");
  await page.locator("#switch-input").fill("#archive");
  await page.locator("#switch-input").press("Enter");
  await page.locator("#room-name", { hasText: "archive" }).waitFor();
  assert.equal(await page.locator("#switch-error").isHidden(), true);
  assert.match(page.url(), /room=archive/);

  // The newest page (50) first, then the older 10 above them, in order.
  await waitForOffsets(page, Array.from({ length: 50 }, (_, i) => i + 11));
  await page.locator("#older").click();
  await waitForOffsets(page, Array.from({ length: 60 }, (_, i) => i + 1));
  await page.locator("#room-intro").waitFor();
  assert.equal(await page.locator("#older").isHidden(), true, "nothing older is left");

  // The list shows the room Bob is still in (Ann left it: 1 member); clicking it goes back.
  const first = page.locator("#room-list .room-link", { hasText: "first" });
  await first.locator(".count", { hasText: "1" }).waitFor();
  await first.click();
  await page.locator("#room-name", { hasText: "first" }).waitFor();
  await waitForOffsets(page, []);
  await page.locator("#members li.member.self", { hasText: "Ann" }).waitFor();
  await page.locator("#members li.member", { hasText: "Bob" }).waitFor();
  await bob.close();

  await page.locator("#sign-out").click();
  await page.locator("#login-view").waitFor();
  assert.equal(await page.locator("#chat-view").isHidden(), true);
  assert.doesNotMatch(page.url(), /name=/);
  assert.deepEqual((page as Page & { problems?: string[] }).problems, [], "no page errors or CSP violations");
});
