/**
 * Budgets shared by everything one principal does, so that opening more connections or using
 * HTTP does not multiply a rate limit: publishes (with directs) and signals per user (a JWT's
 * `sub`, across its connections and its HTTP publishes) or per address for guests (IPv6 by /64,
 * across every guest from there). Each connection also has its own, smaller limits
 * (lib/connection.ts).
 */
import { addressKey } from "./admission.ts";
import type { Clock } from "./clock.ts";
import { IdleMap, TokenBucket } from "./limits.ts";

export interface BudgetOptions {
  /** Publishes and directs per principal per `windowMs`. */
  publishBurst: number;
  /** Signals per principal per `windowMs`. */
  signalBurst: number;
  windowMs: number;
  clock: Clock;
}

export interface Budget {
  readonly key: string;
  readonly publishes: TokenBucket;
  readonly signals: TokenBucket;
  /** Connections holding it. */
  holders: number;
}

/** The principal of a user (`sub`) or of a guest (its address). */
export const userPrincipal = (sub: string): string => `user:${sub}`;
export const guestPrincipal = (address: string): string => `guest:${addressKey(address)}`;

export class Budgets {
  /** Budgets nobody holds are forgotten once refilled. */
  readonly #budgets: IdleMap<Budget>;

  constructor({ publishBurst, signalBurst, windowMs, clock }: BudgetOptions) {
    this.#budgets = new IdleMap(
      (key) => ({
        key,
        publishes: new TokenBucket(publishBurst, windowMs, clock),
        signals: new TokenBucket(signalBurst, windowMs, clock),
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
