/**
 * Rate limits: a token bucket (publishes, signals, joins, new connections) and a flood guard that
 * turns repeated `rate_limited` answers into a close. Both read time from an injected clock.
 */
import type { Clock } from "./clock.ts";

/** What a rate limit answers: a token now or not, when the next one comes, and whether it holds
 * anything worth keeping. */
export interface Bucket {
  take(): boolean;
  readonly waitMs: number;
  readonly full: boolean;
}

/** `capacity` tokens, refilled continuously so that a full bucket refills in `windowMs`. */
export class TokenBucket implements Bucket {
  #tokens: number;
  #updated: number;
  readonly #capacity: number;
  readonly #perMs: number;
  readonly #clock: Clock;

  constructor(capacity: number, windowMs: number, clock: Clock) {
    this.#capacity = capacity;
    this.#tokens = capacity;
    this.#perMs = capacity / windowMs;
    this.#clock = clock;
    this.#updated = clock.now();
  }

  /** Whether the bucket has refilled to capacity: forgetting it would change nothing. */
  get full(): boolean {
    return this.#tokens + (this.#clock.now() - this.#updated) * this.#perMs >= this.#capacity;
  }

  /** Milliseconds until a token is there (0: now). */
  get waitMs(): number {
    const tokens = this.#tokens + (this.#clock.now() - this.#updated) * this.#perMs;
    return tokens >= 1 ? 0 : Math.ceil((1 - tokens) / this.#perMs);
  }

  /** Takes one token; false when the bucket is empty. */
  take(): boolean {
    const now = this.#clock.now();
    const refill = (now - this.#updated) * this.#perMs;
    this.#tokens = Math.min(this.#capacity, this.#tokens + refill);
    this.#updated = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

/** Counts consecutive refusals; `strike()` returns true once there were `limit` in a row. */
export class FloodGuard {
  #strikes = 0;
  constructor(readonly limit: number) {}

  strike(): boolean {
    this.#strikes += 1;
    return this.#strikes >= this.limit;
  }

  forgive(): void {
    this.#strikes = 0;
  }
}

/** State per key (an address, a user) made on first use and forgotten once idle, so that memory
 * follows the keys seen lately, not every key ever seen. Idle entries are looked for at most once
 * per `windowMs`, when an entry is asked for. */
export class IdleMap<V> {
  readonly #entries = new Map<string, V>();
  #swept: number;

  constructor(
    readonly make: (key: string) => V,
    /** Whether forgetting the entry changes nothing (a refilled bucket nobody holds). */
    readonly idle: (value: V) => boolean,
    readonly windowMs: number,
    readonly clock: Clock,
  ) {
    this.#swept = clock.now();
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The key's entry if it has one (nothing is made). */
  peek(key: string): V | undefined {
    return this.#entries.get(key);
  }

  get(key: string): V {
    const now = this.clock.now();
    if (now - this.#swept >= this.windowMs) {
      this.#swept = now;
      for (const [k, value] of this.#entries) if (this.idle(value)) this.#entries.delete(k);
    }
    let value = this.#entries.get(key);
    if (value === undefined) this.#entries.set(key, value = this.make(key));
    return value;
  }
}
