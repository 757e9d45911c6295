/**
 * Idempotency keys for stores that keep them in the process (memory, Deno KV): a publish retried
 * with a key seen in the last day in the same room gets the first publish's result and stores
 * nothing; one retried while the first is still under way waits for it. A retry is told durable
 * only once the first publish is (with the local sequencer a message has its offset before its
 * commit: a retry answered at that moment would get its 201 before the message is stored). If the
 * first publish fails, or its commit does, the retries waiting for it are told so and the key is
 * forgotten, so that the next retry stores the message. The Redis store keeps its keys in Redis
 * instead, for every process.
 */
import type { Clock } from "../clock.ts";
import type { Appended, OnDurable } from "./store.ts";

/** How long a key is remembered. */
export const IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000;
/** Keys remembered at most (the oldest go first). */
const MAX_KEYS = 100_000;

/** A key's first publish: its result, and whether its commit is durable (`undefined` while not
 * known: the waiting retries are in `waiting`). */
interface First {
  appended: Promise<Appended>;
  durable: { error?: unknown } | undefined;
  waiting: OnDurable[];
  /** When the key is forgotten (Infinity until the publish has its offset). */
  until: number;
}

export class Idempotency {
  readonly #keys = new Map<string, First>();

  constructor(readonly clock: Clock) {}

  /** `publisher`: the user the message is from. A key is one publisher's: another's publish with the
   * same key is another publish (otherwise anyone who guessed a key could make a publish vanish). */
  async run(
    room: string,
    publisher: string,
    key: string,
    onDurable: OnDurable | undefined,
    append: (onDurable?: OnDurable) => Promise<Appended>,
    ttlMs = IDEMPOTENCY_TTL_MS,
  ): Promise<Appended> {
    const id = `${room}\u0000${publisher}\u0000${key}`;
    const now = this.clock.now();
    const seen = this.#keys.get(id);
    if (seen && seen.until > now) {
      const appended = await seen.appended;
      if (onDurable) {
        if (seen.durable) onDurable(seen.durable.error);
        else seen.waiting.push(onDurable);
      }
      return appended;
    }
    const result = Promise.withResolvers<Appended>();
    result.promise.catch(() => {});
    const first: First = { appended: result.promise, durable: undefined, waiting: [], until: Infinity };
    const told = (error?: unknown) => {
      if (first.durable) return;
      first.durable = { error };
      // A failed commit stored nothing: the next retry must store the message.
      if (error !== undefined && this.#keys.get(id) === first) this.#keys.delete(id);
      onDurable?.(error);
      for (const waiting of first.waiting.splice(0)) waiting(error);
    };
    this.#keys.delete(id);
    this.#keys.set(id, first);
    try {
      const appended = await append(told);
      result.resolve(appended);
      first.until = now + ttlMs;
      this.#evict();
      return appended;
    } catch (error) {
      // Refused before it was numbered: the retries waiting for it get the same refusal, and any
      // waiting to hear of its durability are told.
      result.reject(error);
      if (this.#keys.get(id) === first) this.#keys.delete(id);
      told(error);
      throw error;
    }
  }

  #evict(): void {
    if (this.#keys.size <= MAX_KEYS) return;
    for (const [oldest, first] of this.#keys) {
      if (first.until === Infinity) continue;
      this.#keys.delete(oldest);
      if (this.#keys.size <= MAX_KEYS) break;
    }
  }
}
