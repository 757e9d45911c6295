/**
 * Idempotency keys for stores that keep them in the process (memory, Deno KV): a publish retried
 * with a key seen in the last day in the same room gets the first publish's result and stores
 * nothing; one retried while the first is still under way waits for it. The Redis store keeps its
 * keys in Redis instead, for every process.
 */
import type { Clock } from "../clock.ts";
import type { Appended, OnDurable } from "./store.ts";

/** How long a key is remembered. */
export const IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000;
/** Keys remembered at most (the oldest go first). */
const MAX_KEYS = 100_000;

export class Idempotency {
  readonly #done = new Map<string, { appended: Appended; until: number }>();
  readonly #running = new Map<string, Promise<Appended>>();

  constructor(readonly clock: Clock) {}

  async run(
    room: string,
    key: string,
    onDurable: OnDurable | undefined,
    append: (onDurable?: OnDurable) => Promise<Appended>,
  ): Promise<Appended> {
    const id = `${room}\u0000${key}`;
    const now = this.clock.now();
    const done = this.#done.get(id);
    if (done && done.until > now) {
      onDurable?.();
      return done.appended;
    }
    const running = this.#running.get(id);
    if (running) {
      const appended = await running;
      onDurable?.();
      return appended;
    }
    const attempt = append(onDurable);
    this.#running.set(id, attempt);
    try {
      const appended = await attempt;
      this.#done.delete(id);
      this.#done.set(id, { appended, until: now + IDEMPOTENCY_TTL_MS });
      if (this.#done.size > MAX_KEYS) {
        for (const [oldest] of this.#done) {
          this.#done.delete(oldest);
          if (this.#done.size <= MAX_KEYS) break;
        }
      }
      return appended;
    } finally {
      this.#running.delete(id);
    }
  }
}
