/**
 * The operator's dashboard (`/admin`, docs/ADMIN.md) in real Chromium against the real server:
 * - the API key is asked for (a wrong one gets the server's message), kept in this tab's
 *   sessionStorage and never in the address; "Forget key" clears it;
 * - the figures are what the test's own WebSocket clients did: connections, rooms and their
 *   members, a room's history; search and sort are the server's;
 * - a bounded load (200 publishes over ~3 s) moves the plot and the "in" figure; the tail shows it
 *   and can be paused;
 * - a room's history is reset from the page (asked first), a message published, a user sent a
 *   direct and disconnected; the HTTP API and the clients see each;
 * - no console error, no CSP violation, no serious or critical axe-core (WCAG 2 A/AA) violation, in
 *   light and dark, at desktop and phone sizes; screenshots go to $ROOMCAST_ARTIFACTS (default
 *   /tmp/roomcast-artifacts), never into git;
 * - a server without a key lets a loopback page straight in.
 */
import assert from "node:assert/strict";
import axe from "axe-core";
import type { BrowserContext, Page } from "playwright-core";
import { browserTest } from "./_browser.ts";
import { startTestServer } from "./_server.ts";
import { breathe, until } from "./_wait.ts";

const KEY = "dashboard-test-key";
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const artifacts = Deno.env.get("ROOMCAST_ARTIFACTS") ?? "/tmp/roomcast-artifacts";

type Violation = { id: string; impact: string; nodes: { target: string[]; failureSummary: string }[] };

/** axe-core's WCAG 2 A/AA violations on the page as it is, serious and critical ones first. */
async function violations(page: Page): Promise<{ serious: string[]; other: string[] }> {
  await page.evaluate(axe.source);
  const found: Violation[] = await page.evaluate(async () => {
    const run =
      (globalThis as unknown as { axe: { run(c: unknown, o: unknown): Promise<{ violations: Violation[] }> } })
        .axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21aa"] } });
    return (await run).violations;
  });
  const say = (v: Violation) =>
    `${v.id} (${v.impact}): ${v.nodes.map((n) => `${n.target.join(" ")}: ${n.failureSummary}`).join(" | ")}`;
  return {
    serious: found.filter((v) => v.impact === "serious" || v.impact === "critical").map(say),
    other: found.filter((v) => v.impact !== "serious" && v.impact !== "critical").map(say),
  };
}

/** Waits (10 s at most) until `selector`'s text is `want` (trimmed) or matches it. */
async function untilText(page: Page, selector: string, want: string | RegExp, ms = 10_000): Promise<string> {
  let seen: string | null = null;
  await until(
    async () => {
      seen = await page.locator(selector).first().textContent({ timeout: 1000 }).catch(() => null);
      if (seen === null) return false;
      return typeof want === "string" ? seen.trim() === want : want.test(seen);
    },
    ms,
    () => `${selector} to read ${want}; it read ${JSON.stringify(seen)}`,
    100,
  );
  return (seen ?? "").trim();
}

/** The cells' text of each row of a table body. */
function rowsOf(page: Page, selector: string): Promise<string[][]> {
  return page.locator(`${selector} tr`).evaluateAll((rows) =>
    rows.map((tr) => [...tr.children].map((td) => td.textContent?.trim() ?? ""))
  );
}

/** `promise`, or an error naming `what` past `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A number as the page writes it ("1,234", "0.5", "–" for none). */
function figure(text: string): number {
  return Number(text.replace(/,/g, ""));
}

/** Records the page's console errors, uncaught errors and CSP violations. `expect401` lets through
 * the 401s the sign-in makes on purpose (the probe without a key, a wrong key). */
async function watch(context: BrowserContext, page: Page) {
  await context.addInitScript(() => {
    const seen: string[] = [];
    (globalThis as unknown as { cspViolations: string[] }).cspViolations = seen;
    document.addEventListener("securitypolicyviolation", (e) => seen.push(`${e.violatedDirective}: ${e.blockedURI}`));
  });
  const state = { expect401: true, problems: [] as string[] };
  page.on("pageerror", (error) => state.problems.push(`uncaught: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    if (state.expect401 && /status of 401 \(Unauthorized\)/.test(message.text())) return;
    state.problems.push(`console: ${message.text()}`);
  });
  return {
    state,
    async csp(): Promise<string[]> {
      return await page.evaluate(() => (globalThis as unknown as { cspViolations: string[] }).cspViolations ?? []);
    },
  };
}

async function screenshot(page: Page, name: string): Promise<void> {
  await page.evaluate(() => globalThis.scrollTo(0, 0));
  await page.screenshot({ path: `${artifacts}/${name}.png`, fullPage: true });
}

browserTest(
  "dashboard: key, figures, rooms, the plot under load, a reset; both themes, both sizes",
  async (browser) => {
    await Deno.mkdir(artifacts, { recursive: true });
    await using server = await startTestServer({
      apiKey: KEY,
      // The load below is 200 publishes in ~3 s from one guest: above the default budgets.
      limits: { publishBurst: 1000, userPublishBurst: 1000 },
    });
    const api = (path: string, init: RequestInit = {}) =>
      server.fetch(path, { ...init, headers: { authorization: `Bearer ${KEY}`, ...init.headers } });

    // What the page must show: 3 connections, #lobby with Ann and Bob, #dev with Cy, 3 messages in #lobby.
    const ann = await server.joined("lobby", "?name=Ann");
    const bob = await server.joined("lobby", "?name=Bob");
    const cy = await server.joined("dev", "?name=Cy");
    const annId: string = ann.welcome?.user.id;
    const bobId: string = bob.welcome?.user.id;
    for (const text of ["one", "two", "three"]) {
      const ack = await ann.request({ type: "publish", room: "lobby", data: { text } });
      assert.equal(ack.type, "ack", JSON.stringify(ack));
    }

    const context = await browser.newContext({ viewport: DESKTOP, colorScheme: "light" });
    const page = await context.newPage();
    const watched = await watch(context, page);

    // ── the key ─────────────────────────────────────────────────────────────
    await page.goto(`${server.url}/admin`);
    const key = page.locator("#key");
    await key.waitFor({ state: "visible", timeout: 10_000 });
    assert.equal(await key.getAttribute("type"), "password");
    assert.equal(await page.locator("#key-error").isVisible(), false, "the probe without a key says nothing");
    await key.fill("not-the-key");
    await key.press("Enter");
    const refusal = await untilText(page, "#key-error", /Invalid API key/);
    assert.match(refusal, /ROOMCAST_API_KEY/, "the server's own message");
    assert.equal(await key.getAttribute("aria-invalid"), "true");
    await key.fill(KEY);
    await page.locator("#key-submit").click();
    await page.locator('#status[data-state="open"]').waitFor({ timeout: 10_000 });
    watched.state.expect401 = false;
    assert.equal(await page.locator("#status").textContent(), "Live");
    const storage = await page.evaluate(() => ({
      session: sessionStorage.getItem("roomcast.adminKey"),
      local: JSON.stringify({ ...localStorage }),
    }));
    assert.equal(storage.session, KEY, "in this tab's sessionStorage");
    assert.ok(!storage.local.includes(KEY), "not in localStorage");
    assert.ok(!page.url().includes(KEY), page.url());
    assert.equal(new URL(page.url()).pathname, "/admin");
    assert.equal(new URL(page.url()).search, "");

    // ── the figures are what the clients did ────────────────────────────────
    await untilText(page, "#stat-connections", "3");
    await untilText(page, "#stat-rooms", "2");
    await untilText(page, "#stat-nodes", "1");
    await untilText(page, "#transports", "ws 3");
    const nodes = await rowsOf(page, "#nodes-body");
    assert.equal(nodes.length, 1, JSON.stringify(nodes));
    assert.equal(nodes[0]?.[2], "3", "the node's connections");
    let rooms: string[][] = [];
    await until(
      async () => {
        rooms = (await rowsOf(page, "#rooms-body")).map((r) => r.slice(0, 2));
        return JSON.stringify(rooms) === JSON.stringify([["dev", "1"], ["lobby", "2"]]);
      },
      10_000,
      () => `the rooms table: ${JSON.stringify(rooms)}`,
    );
    await untilText(page, "#rooms-range", "1–2 of 2");
    // Sorted and searched by the server.
    await page.locator('#rooms-table th[data-sort="members"] button').click();
    assert.equal(await page.locator('#rooms-table th[data-sort="members"]').getAttribute("aria-sort"), "descending");
    assert.equal(await page.locator('#rooms-table th[data-sort="name"]').getAttribute("aria-sort"), null);
    await untilText(page, "#rooms-body tr:first-child button", "lobby");
    await page.locator('#rooms-table th[data-sort="members"] button').click();
    assert.equal(await page.locator('#rooms-table th[data-sort="members"]').getAttribute("aria-sort"), "ascending");
    await untilText(page, "#rooms-body tr:first-child button", "dev");
    await page.locator("#rooms-q").fill("LOB");
    await until(async () => (await rowsOf(page, "#rooms-body")).length === 1, 5000, "the search to leave one room");
    await untilText(page, "#rooms-body tr:first-child button", "lobby");
    await page.locator("#rooms-q").fill("");
    await until(async () => (await rowsOf(page, "#rooms-body")).length === 2, 5000, "both rooms back");

    // ── a room up close: presence and history ───────────────────────────────
    await page.locator("#rooms-body button", { hasText: "lobby" }).click();
    await untilText(page, "#room-name", "lobby");
    await untilText(page, "#history-count", "3 messages");
    assert.deepEqual(await page.locator("#history .history-text").allTextContents(), ["three", "two", "one"]);
    await untilText(page, "#presence-count", "2");
    const members = await page.locator("#presence .presence-item button").allTextContents();
    assert.deepEqual(members.sort(), ["Ann", "Bob"]);

    // ── a user up close: connections, a direct ──────────────────────────────
    await page.locator("#presence button", { hasText: "Ann" }).click();
    await untilText(page, "#user-name", annId);
    await untilText(page, "#user-count", "1 connection");
    const connections = await rowsOf(page, "#user-connections");
    assert.equal(connections[0]?.[2], "ws", JSON.stringify(connections));
    assert.equal(connections[0]?.[4], "lobby");
    await page.locator("#user-direct-text").fill("a word from the operator");
    await page.locator('#user-direct button[type="submit"]').click();
    const direct = await ann.next((f) => f.type === "direct", 5000);
    assert.equal(direct.data.text, "a word from the operator");
    await untilText(page, "#user-status", /had it pushed/);

    // ── a bounded load moves the plot ───────────────────────────────────────
    await untilText(page, "#stat-in", "0", 5000);
    const line = page.locator("#chart-throughput path.series.series-in");
    const before = await line.getAttribute("d");
    const load = (async () => {
      const started = Date.now();
      let sent = 0;
      // 200 publishes, 10 every 150 ms (~3 s), and never past 6 s.
      while (sent < 200 && Date.now() - started < 6000) {
        for (let i = 0; i < 10 && sent < 200; i++) {
          ann.send({ type: "publish", room: "lobby", data: { text: `load ${sent++}` } });
        }
        await breathe(150);
      }
      return sent;
    })();
    let label = "";
    await until(
      async () => {
        const shown = figure(await page.locator("#stat-in").textContent() ?? "");
        label = await page.locator("#chart-throughput").getAttribute("aria-label") ?? "";
        return shown > 0;
      },
      10_000,
      () => `the "in" figure above 0 (the chart says: ${label})`,
      100,
    );
    assert.match(label, /Latest second: [1-9][\d,.]* messages in/, label);
    assert.equal(await load, 200);
    await until(() => ann.unread.filter((f) => f.type === "ack").length >= 200, 10_000, "the load's 200 acks");
    assert.deepEqual(ann.unread.filter((f) => f.type === "error"), [], "no publish refused");
    await until(async () => await line.getAttribute("d") !== before, 5000, "the throughput line to change");
    assert.match(await page.locator("#chart-throughput path.series.series-out").getAttribute("d") ?? "", /L/);
    assert.equal(await page.locator("#chart-latency").getAttribute("role"), "img");
    const latest = await (await api("/api/rooms/lobby/messages?limit=1")).json();
    assert.equal(latest.messages.at(-1)?.offset, 203, "3 + 200 stored");

    // The tail: publishes newest first, at most 200 rows; paused, new entries are only counted.
    await untilText(page, "#tail li:first-child", /published in/);
    const tailRows = await page.locator("#tail li").count();
    assert.ok(tailRows > 0 && tailRows <= 200, `${tailRows} rows`);
    await page.locator("#tail-pause").click();
    assert.equal(await page.locator("#tail-pause").textContent(), "Resume");
    const firstWhilePaused = await page.locator("#tail li:first-child").textContent();
    for (let i = 0; i < 3; i++) {
      const ack = await ann.request({ type: "publish", room: "lobby", data: { text: `paused ${i}` } });
      assert.equal(ack.type, "ack");
    }
    await untilText(page, "#tail-new", /^[1-9]\d* new$/);
    assert.equal(await page.locator("#tail li:first-child").textContent(), firstWhilePaused, "nothing shown meanwhile");
    await page.locator("#tail-pause").click();
    await page.locator("#tail-new").waitFor({ state: "hidden", timeout: 2000 });
    assert.equal(await page.locator("#tail li").count() <= 200, true);
    // By keyboard: Tab reaches the list once, the arrow keys its names, Enter opens one.
    await page.locator("#tail-scroll").focus();
    await page.keyboard.press("ArrowDown");
    const focused = await page.evaluate(() => {
      const b = document.activeElement as HTMLElement | null;
      return b?.closest("#tail") ? b.dataset.user ?? b.dataset.room ?? "" : null;
    });
    assert.equal(focused, annId, "the newest entry's user has the focus");
    await page.keyboard.press("Enter");
    await untilText(page, "#user-name", annId);

    // History pages: 50 at a time, "Older" for the next.
    await page.locator("#room-refresh").click();
    await untilText(page, "#history-count", "50 messages shown, older ones too");
    await page.locator("#history-older").click();
    await untilText(page, "#history-count", "100 messages shown, older ones too");
    const offsets = await page.locator("#history .history-item").evaluateAll((items) =>
      items.map((li) => Number(li.getAttribute("data-offset")))
    );
    assert.equal(offsets.length, 100);
    assert.equal(offsets[0], 206, "newest first");
    assert.equal(offsets[99], 107, "no gap, no repeat between the pages");

    // ── reset the room's history from the page ──────────────────────────────
    const asked: string[] = [];
    page.once("dialog", (dialog) => {
      asked.push(`${dialog.type()}: ${dialog.message()}`);
      void dialog.accept();
    });
    await page.locator("#room-reset").click();
    await untilText(page, "#history-count", "0 messages");
    assert.equal(asked.length, 1);
    assert.match(asked[0] ?? "", /^confirm: .*#lobby/);
    await untilText(page, "#room-status", "History of #lobby reset.");
    const emptied = await (await api("/api/rooms/lobby/messages")).json();
    assert.deepEqual(emptied.messages, [], "the HTTP API sees the room empty");

    // Publish from the page: Bob gets it, and it is the history's one message.
    await page.locator("#room-publish-text").fill("from the dashboard");
    await page.locator('#room-publish button[type="submit"]').click();
    const published = await bob.next((f) => f.type === "message" && f.data?.text === "from the dashboard", 5000);
    assert.equal(published.room, "lobby");
    await untilText(page, "#history-count", "1 message");

    // ── disconnect a user ───────────────────────────────────────────────────
    await page.locator("#open-user-input").fill(bobId);
    await page.locator("#open-user-input").press("Enter");
    await untilText(page, "#user-count", "1 connection");
    page.once("dialog", (dialog) => void dialog.accept());
    await page.locator("#user-disconnect").click();
    const closed = await within(bob.closed, 5000, "Bob's socket to close");
    assert.equal(closed.code, 4009);
    await untilText(page, "#user-status", `Disconnected ${bobId}.`);
    await untilText(page, "#stat-connections", "2");
    // The open room's members follow the leave the tail reports, without a Refresh.
    await untilText(page, "#presence-count", "1");
    assert.deepEqual(await page.locator("#presence .presence-item button").allTextContents(), ["Ann"]);

    // ── looks, accessibility, both themes, both sizes ──────────────────────
    await page.locator("#presence button", { hasText: "Ann" }).click({ timeout: 5000 });
    for (const scheme of ["light", "dark"] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      for (const [size, viewport] of [["desktop", DESKTOP], ["phone", PHONE]] as const) {
        await page.setViewportSize(viewport);
        await page.waitForTimeout(300); // A frame or two, for the charts to redraw at the new width.
        const found = await violations(page);
        assert.deepEqual(found.serious, [], `${scheme}, ${size}`);
        if (found.other.length) console.log(`axe, ${scheme} ${size}, minor:`, found.other);
        if (size === "phone") {
          const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
          assert.ok(overflow <= viewport.width, `nothing wider than the phone (${overflow} px)`);
        }
        await screenshot(page, `admin-${scheme}-${size}`);
      }
    }

    // The key belongs to one tab: a new one asks for it.
    const other = await context.newPage();
    await other.setViewportSize(PHONE);
    await other.emulateMedia({ colorScheme: "dark" });
    await other.goto(`${server.url}/admin`);
    await other.locator("#key").waitFor({ state: "visible", timeout: 10_000 });
    const formViolations = await violations(other);
    assert.deepEqual(formViolations.serious, [], "the key form");
    await screenshot(other, "admin-key-dark-phone");
    await other.close();

    // "Forget key": back to the form, nothing kept.
    await page.setViewportSize(DESKTOP);
    await page.locator("#forget").click();
    await page.locator("#key").waitFor({ state: "visible", timeout: 5000 });
    assert.equal(await page.evaluate(() => sessionStorage.getItem("roomcast.adminKey")), null);
    assert.equal(await page.locator("#dash").isVisible(), false);

    assert.deepEqual(await watched.csp(), [], "no CSP violation");
    assert.deepEqual(watched.state.problems, [], "no console error");
    await context.close();
    await ann.close();
    await cy.close();
  },
);

browserTest("dashboard: a server without a key lets a loopback page straight in", async (browser) => {
  await using server = await startTestServer();
  const context = await browser.newContext({ viewport: DESKTOP });
  const page = await context.newPage();
  const watched = await watch(context, page);
  watched.state.expect401 = false;
  await page.goto(`${server.url}/admin`);
  await page.locator('#status[data-state="open"]').waitFor({ timeout: 10_000 });
  assert.equal(await page.locator("#key-view").isVisible(), false, "no form");
  assert.equal(await page.locator("#forget").isVisible(), false, "no key to forget");
  assert.equal(await page.locator("#access").isVisible(), true);
  await untilText(page, "#stat-connections", "0");
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  assert.deepEqual(await watched.csp(), []);
  assert.deepEqual(watched.state.problems, []);
  await context.close();
});
