/**
 * Budgets shared by everything one principal does, so that opening more connections or using
 * HTTP does not multiply a rate limit: publishes (with directs) and signals per user (a JWT's
 * `sub`, across its connections and its HTTP publishes) or per address for guests (IPv6 by /64,
 * across every guest from there). Each connection also has its own, smaller limits
 * (lib/connection.ts). With Workers, a budget counts the principal's spending in every Worker
 * (lib/shared_counts.ts).
 */
import { addressKey } from "./admission.ts";
import type { Clock } from "./clock.ts";
import { type Bucket, IdleMap, TokenBucket } from "./limits.ts";
import type { SharedCounts } from "./shared_counts.ts";

export interface BudgetOptions {
  /** Publishes and directs per principal per `windowMs`. */
  publishBurst: number;
  /** Signals per principal per `windowMs`. */
  signalBurst: number;
  windowMs: number;
  clock: Clock;
  /** With Workers: the counts they share, so that a principal's budget holds for the process. */
  shared?: SharedCounts | undefined;
}

export interface Budget {
  readonly key: string;
  readonly publishes: Bucket;
  readonly signals: Bucket;
  /** Connections holding it. */
  holders: number;
}

/** A principal's rate counted in every Worker (`SharedCounts.rate`, a sliding window); its own
 * token bucket where the shared table has no room. Nothing of it is kept here (`full`) but that
 * bucket. */
class SharedBucket implements Bucket {
  constructor(
    readonly key: string,
    readonly burst: number,
    readonly windowMs: number,
    readonly clock: Clock,
    readonly shared: SharedCounts,
    readonly local: TokenBucket,
  ) {}

  take(): boolean {
    return this.shared.rate(this.key, this.burst, this.windowMs, this.clock.now()) ?? this.local.take();
  }

  get waitMs(): number {
    return Math.max(this.shared.rateWaitMs(this.key, this.burst, this.windowMs, this.clock.now()), this.local.waitMs);
  }

  get full(): boolean {
    return this.local.full;
  }
}

/** The principal of a user (`sub`) or of a guest (its address). */
export const userPrincipal = (sub: string): string => `user:${sub}`;
export const guestPrincipal = (address: string): string => `guest:${addressKey(address)}`;

export class Budgets {
  /** Budgets nobody holds are forgotten once refilled. */
  readonly #budgets: IdleMap<Budget>;

  constructor({ publishBurst, signalBurst, windowMs, clock, shared }: BudgetOptions) {
    const bucket = (kind: string, key: string, burst: number): Bucket => {
      const local = new TokenBucket(burst, windowMs, clock);
      return shared ? new SharedBucket(`${kind}:${key}`, burst, windowMs, clock, shared, local) : local;
    };
    this.#budgets = new IdleMap(
      (key) => ({
        key,
        publishes: bucket("publishes", key, publishBurst),
        signals: bucket("signals", key, signalBurst),
        holders: 0,
      }),
      (budget) => budget.holders === 0 && budget.publishes.full && budget.signals.full,
      windowMs,
      clock,
    );
  }

  /** Principals with a budget in memory. */
  get size(): number {
    return this.#budgets.size;
  }

  /** The principal's budget (made on first use). */
  of(key: string): Budget {
    return this.#budgets.get(key);
  }

  /** A connection of the principal opens: its budget is kept while the connection lives. */
  hold(key: string): Budget {
    const budget = this.of(key);
    budget.holders++;
    return budget;
  }

  release(budget: Budget): void {
    budget.holders = Math.max(0, budget.holders - 1);
  }
}
