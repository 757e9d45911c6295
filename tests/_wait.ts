/**
 * Waiting in tests. For something to happen: a client's `next(pred)`, else `until(pred)`. Where time
 * itself is the subject (nothing may arrive meanwhile, a TTL, an expiry, a rate window, a heartbeat):
 * `quiet(ms, why)`. Pacing between bursts of a bounded load loop: `breathe()`, never to wait for a result.
 */

/** Polls `pred` every `every` ms until it holds; past `ms`, throws naming `what` (a function is
 * called then, to tell what was seen last). For state without an event to wait on. */
export async function until(
  pred: () => boolean | Promise<boolean>,
  ms = 3000,
  what: string | (() => string) = "condition",
  every = 5,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!await pred()) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${ms} ms waiting for ${typeof what === "string" ? what : what()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, every));
  }
}

/** Lets `ms` pass where the passing of time is what the test is about; `why` tells the reader which. */
export function quiet(ms: number, _why: string): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/** Yields to the event loop (for `ms`, 1 by default) between bursts of a bounded load loop. */
export function breathe(ms = 1): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits (`until`) for an item of `list` that matches `pred`, takes it out and returns it; past
 * `ms`, throws naming `what` and the list as it stands. For the raw protocol clients' inboxes. */
export async function takeFrom<T>(list: T[], pred: (item: T) => boolean, ms: number, what: string): Promise<T> {
  await until(() => list.some(pred), ms, () => `${what}; got ${JSON.stringify(list).slice(0, 400)}`);
  return list.splice(list.findIndex(pred), 1)[0] as T;
}
