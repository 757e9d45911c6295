/**
 * Real Chromium for tests (Debian's /usr/bin/chromium via playwright-core, never a downloaded
 * browser): `browserTest` runs a test with a fresh browser. Without Chromium it is skipped
 * locally and fails in CI (CI=true).
 */
import { type Browser, chromium } from "playwright-core";
import { skipping } from "./_skips.ts";

const CHROMIUM = "/usr/bin/chromium";
const haveChromium = (() => {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
})();
const inCI = Deno.env.get("CI") === "true";

async function launch(): Promise<Browser> {
  if (!haveChromium) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)`);
  return await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** A `Deno.test` with a browser (closed afterwards). Deno's resource checks are off: the
 * browser's pipes outlive the test's own bookkeeping. */
export function browserTest(name: string, fn: (browser: Browser) => Promise<void>): void {
  if (!haveChromium && !inCI) skipping("Chromium", "apt-get install -y chromium");
  Deno.test({
    name,
    ignore: !haveChromium && !inCI,
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      const browser = await launch();
      try {
        await fn(browser);
      } finally {
        await browser.close();
      }
    },
  });
}
