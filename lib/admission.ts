/**
 * Admission of long-lived connections (WebSocket, SSE): a cap on all of them, kept under the
 * process's file-descriptor limit so that the server refuses before it runs out; a cap per client
 * address; and a rate of new connections per address (a token bucket on the injected clock).
 * IPv6 addresses count by their /64 prefix, which one client typically holds whole.
 */
import type { Clock } from "./clock.ts";
import { TokenBucket } from "./limits.ts";

export interface AdmissionOptions {
  /** Open connections at most, all addresses together. */
  maxConnections: number;
  /** Open connections at most per address (0: no cap). */
  maxPerAddress: number;
  /** New connections an address may open per `connectWindowMs` (0: no limit). */
  connectBurst: number;
  connectWindowMs: number;
  clock: Clock;
}

/** Why a connection is refused: the server is full, the address has too many open, or it opens
 * them too fast. */
export type Refused = "full" | "address" | "rate";

/** The key an address counts under: IPv4 as is, IPv6 by its first four groups (/64). */
export function addressKey(address: string): string {
  const host = address.replace(/^\[|\]$/g, "").toLowerCase();
  const v4 = /^(?:::ffff:)?(\d{1,3}(?:\.\d{1,3}){3})$/.exec(host);
  if (v4) return v4[1] as string;
  if (!host.includes(":")) return host;
  const [head = "", tail = ""] = host.split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = host.includes("::") ? [...left, ...Array(8 - left.length - right.length).fill("0"), ...right] : left;
  return groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "")).join(":") + "::/64";
}

export class Admission {
  readonly #options: AdmissionOptions;
  #open = 0;
  readonly #perAddress = new Map<string, number>();
  readonly #rates = new Map<string, TokenBucket>();
  #swept: number;

  constructor(options: AdmissionOptions) {
    this.#options = options;
    this.#swept = options.clock.now();
  }

  /** Connections open now. */
  get open(): number {
    return this.#open;
  }

  /** Takes a slot for a new connection from `address`, or says why not. Every slot taken must be
   * given back once with `release`. */
  admit(address: string): Refused | undefined {
    const { maxConnections, maxPerAddress, connectBurst, connectWindowMs, clock } = this.#options;
    const key = addressKey(address);
    this.#sweep();
    if (connectBurst > 0) {
      let bucket = this.#rates.get(key);
      if (!bucket) this.#rates.set(key, bucket = new TokenBucket(connectBurst, connectWindowMs, clock));
      if (!bucket.take()) return "rate";
    }
    if (this.#open >= maxConnections) return "full";
    const mine = this.#perAddress.get(key) ?? 0;
    if (maxPerAddress > 0 && mine >= maxPerAddress) return "address";
    this.#open++;
    this.#perAddress.set(key, mine + 1);
    return undefined;
  }

  /** Gives back the slot of a connection from `address` that `admit` let in. */
  release(address: string): void {
    const key = addressKey(address);
    const mine = this.#perAddress.get(key) ?? 0;
    if (mine <= 0) return;
    this.#open--;
    if (mine === 1) this.#perAddress.delete(key);
    else this.#perAddress.set(key, mine - 1);
  }

  /** Forgets the rate buckets that have filled up again (they hold nothing an address could
   * gain by being forgotten), at most once per window, so that memory follows the addresses seen
   * lately, not every address ever seen. */
  #sweep(): void {
    const now = this.#options.clock.now();
    if (now - this.#swept < this.#options.connectWindowMs) return;
    this.#swept = now;
    for (const [key, bucket] of this.#rates) if (bucket.full) this.#rates.delete(key);
  }
}
