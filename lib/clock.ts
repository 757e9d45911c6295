/**
 * Time as a dependency: production code reads `systemClock`, tests pass a `ManualClock` they
 * advance by hand, so rate limits, heartbeats and TTLs are tested without sleeping.
 */

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export class ManualClock implements Clock {
  #now: number;
  constructor(start = 1_700_000_000_000) {
    this.#now = start;
  }
  now(): number {
    return this.#now;
  }
  advance(ms: number): void {
    this.#now += ms;
  }
}
