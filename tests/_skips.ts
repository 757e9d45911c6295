/**
 * Tests skipped because this machine lacks what they need (redis-server, Chromium): counted, and
 * said once at the end of the run with what to install. In CI (`CI=true`) they are never skipped:
 * they fail instead.
 */
const skipped = new Map<string, { count: number; install: string }>();

/** Counts a test skipped for want of `what` (`install` says how to get it). */
export function skipping(what: string, install: string): void {
  const entry = skipped.get(what) ?? { count: 0, install };
  entry.count++;
  skipped.set(what, entry);
}

globalThis.addEventListener("unload", () => {
  for (const [what, { count, install }] of skipped) {
    console.log(`${count} test${count === 1 ? "" : "s"} skipped: ${what} is missing here (${install})`);
  }
});
