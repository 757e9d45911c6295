/**
 * The chat page for people (issue 24, item 9): it follows `prefers-color-scheme`, and axe-core's
 * WCAG 2 A and AA rules (contrast among them) find nothing on the join card or in a room with
 * messages, members and the status, in light and in dark, at desktop and phone sizes. The page's
 * CSP forbids injected scripts: axe runs through the DevTools protocol (`page.evaluate`), which the
 * CSP does not govern. Screenshots go to $ROOMCAST_ARTIFACTS (default: a temp dir), not to git.
 */
import assert from "node:assert/strict";
import axe from "axe-core";
import type { Page } from "playwright-core";
import { browserTest } from "./_browser.ts";
import { postJson, startTestServer } from "./_server.ts";

type Violation = { id: string; impact: string; nodes: { target: string[]; failureSummary: string }[] };

async function violations(page: Page): Promise<string[]> {
  await page.evaluate(axe.source);
  const found: Violation[] = await page.evaluate(async () => {
    const run =
      (globalThis as unknown as { axe: { run(c: unknown, o: unknown): Promise<{ violations: Violation[] }> } })
        .axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21aa"] } });
    return (await run).violations;
  });
  return found.map((v) =>
    `${v.id} (${v.impact}): ${v.nodes.map((n) => `${n.target.join(" ")}: ${n.failureSummary}`).join(" | ")}`
  );
}

/** The relative luminance of the page's background (0 black … 1 white). */
async function backgroundLuminance(page: Page): Promise<number> {
  const rgb = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const [r, g, b] = (rgb.match(/\d+(\.\d+)?/g) ?? []).slice(0, 3).map(Number).map((c) => {
    const v = c / 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  }) as [number, number, number];
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

const artifacts = Deno.env.get("ROOMCAST_ARTIFACTS") ?? await Deno.makeTempDir({ prefix: "roomcast-shots-" });

for (const scheme of ["light", "dark"] as const) {
  browserTest(`the chat page in ${scheme}: its colours, and no WCAG A/AA violation (axe-core)`, async (browser) => {
    await using server = await startTestServer();
    for (
      const [size, viewport] of [["desktop", { width: 1280, height: 800 }], ["phone", {
        width: 390,
        height: 844,
      }]] as const
    ) {
      const context = await browser.newContext({ colorScheme: scheme, viewport });
      const page = await context.newPage();
      await page.goto(server.url);
      const luminance = await backgroundLuminance(page);
      if (scheme === "dark") assert.ok(luminance < 0.05, `dark background (${luminance})`);
      else assert.ok(luminance > 0.8, `light background (${luminance})`);
      assert.deepEqual(await violations(page), [], `join card, ${scheme}, ${size}`);
      await page.screenshot({ path: `${artifacts}/a11y-${scheme}-${size}-join.png` });

      await page.goto(`${server.url}/?name=Ann&room=a11y-${size}`);
      await page.locator('#status[data-state="open"]').waitFor({ timeout: 10_000 });
      const sent = await postJson(server, `/api/rooms/a11y-${size}/messages`, {
        data: { text: "Hello from the API" },
        from: { id: "bot", name: "Bot" },
      });
      await sent.body?.cancel();
      await page.locator("#input").fill("and one from Ann");
      await page.locator("#input").press("Enter");
      await page.locator("#messages .text", { hasText: "and one from Ann" }).waitFor();
      await page.locator("#messages .text", { hasText: "Hello from the API" }).waitFor();
      assert.deepEqual(await violations(page), [], `room, ${scheme}, ${size}`);
      await page.screenshot({ path: `${artifacts}/a11y-${scheme}-${size}-room.png` });
      await context.close();
    }
  });
}
