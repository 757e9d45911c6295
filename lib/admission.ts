/**
 * Admission of long-lived connections (WebSocket, SSE): a cap on all of them, kept under the
 * process's file-descriptor limit so that the server refuses before it runs out; a cap per client
 * address; and a rate of new connections per address (a token bucket on the injected clock).
 * IPv6 addresses count by their /64 prefix, which one client typically holds whole.
 *
 * With several Workers (`ROOMCAST_WORKERS`) the caps and the rate hold for the whole process: the
 * Workers count in one `SharedCounts` (a SharedArrayBuffer the coordinator makes), where the rate
 * is a sliding window (`connectBurst` per `connectWindowMs`) rather than a token bucket.
 *
 * Offences: a message that cost the server before it could refuse it (a binary or oversized
 * WebSocket message, which Deno reads whole, up to 64 MiB) counts against its address; an address
 * with OFFENCES_BURST of them within PENALTY_MS may not connect for PENALTY_MS (each isolate keeps
 * its own count).
 */
import type { Clock } from "./clock.ts";
import { IdleMap, TokenBucket } from "./limits.ts";
import type { SharedCounts } from "./shared_counts.ts";

export interface AdmissionOptions {
  /** Open connections at most, all addresses together. */
  maxConnections: number;
  /** Open connections at most per address (0: no cap). */
  maxPerAddress: number;
  /** New connections an address may open per `connectWindowMs` (0: no limit). */
  connectBurst: number;
  connectWindowMs: number;
  clock: Clock;
  /** Counts shared with the other Workers of the process; absent: this isolate's own. */
  shared?: SharedCounts | undefined;
}

/** Offences an address may commit per PENALTY_MS before it is shut out for PENALTY_MS. */
const OFFENCES_BURST = 2;
const PENALTY_MS = 60_000;

/** An address's offences lately, and until when it is shut out. */
class Record {
  readonly offences: TokenBucket;
  until = -Infinity;
  constructor(clock: Clock) {
    this.offences = new TokenBucket(OFFENCES_BURST, PENALTY_MS, clock);
  }
}

/** Why a connection is refused: the server is full, the address has too many open, or it opens
 * them too fast. */
export type Refused = "full" | "address" | "rate";

/** Whether `text` is four dot-separated groups of 1-3 digits. */
function isPlainIpv4(text: string): boolean {
  let dots = 0;
  let digits = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || ++dots > 3) return false;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (++digits > 3) return false;
    } else return false;
  }
  return dots === 3 && digits > 0;
}

/** The key an address counts under: IPv4 as is, IPv6 by its first four groups (/64). */
export function addressKey(address: string): string {
  // Most addresses are plain IPv4 (digits and dots): as they are, without a pattern.
  if (isPlainIpv4(address)) return address;
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
  /** New-connection buckets per address, forgotten once refilled. */
  readonly #rates: IdleMap<TokenBucket>;

  /** Addresses that sent costly messages lately. */
  readonly #records: IdleMap<Record>;

  constructor(options: AdmissionOptions) {
    this.#options = options;
    this.#records = new IdleMap(
      () => new Record(options.clock),
      (record) => record.offences.full && record.until <= options.clock.now(),
      PENALTY_MS,
      options.clock,
    );
    const { connectBurst, connectWindowMs, clock } = options;
    this.#rates = new IdleMap(
      () => new TokenBucket(connectBurst, connectWindowMs, clock),
      (bucket) => bucket.full,
      connectWindowMs,
      clock,
    );
  }

  /** Connections open now. */
  get open(): number {
    return this.#open;
  }

  /** Takes a slot for a new connection from `address`, or says why not. Every slot taken must be
   * given back once with `release`. */
  admit(address: string): Refused | undefined {
    const { maxConnections, maxPerAddress, shared } = this.#options;
    const key = addressKey(address);
    if (this.#shutOut(key) || !this.#rate(key)) return "rate";
    const mine = this.#perAddress.get(key) ?? 0;
    if (shared) {
      // This Worker's own count still bounds the address (one the shared table had no room for is
      // counted here alone).
      if (maxPerAddress > 0 && mine >= maxPerAddress) return "address";
      const refused = shared.take(key, maxConnections, maxPerAddress);
      if (refused) return refused;
    } else {
      if (this.#open >= maxConnections) return "full";
      if (maxPerAddress > 0 && mine >= maxPerAddress) return "address";
    }
    this.#open++;
    this.#perAddress.set(key, mine + 1);
    return undefined;
  }

  /** Counts a message from `address` that cost the server before it could be refused; past
   * OFFENCES_BURST within PENALTY_MS the address may not connect for PENALTY_MS. True when this
   * offence shut it out. */
  offend(address: string): boolean {
    const record = this.#records.get(addressKey(address));
    if (record.offences.take()) return false;
    record.until = this.#options.clock.now() + PENALTY_MS;
    return true;
  }

  #shutOut(key: string): boolean {
    return (this.#records.peek(key)?.until ?? -Infinity) > this.#options.clock.now();
  }

  /** Whether `address` may connect once more on a slot it already holds (a Socket.IO session whose
   * connection ended and that connects again): the connect rate only, a token taken. */
  again(address: string): boolean {
    const key = addressKey(address);
    return !this.#shutOut(key) && this.#rate(key);
  }

  #rate(key: string): boolean {
    const { connectBurst, connectWindowMs, clock, shared } = this.#options;
    if (connectBurst <= 0) return true;
    // With Workers, counted across them (the address counted here alone where the shared table is full).
    return shared?.rate(key, connectBurst, connectWindowMs, clock.now()) ?? this.#rates.get(key).take();
  }

  /** Gives back the slot of a connection from `address` that `admit` let in. */
  release(address: string): void {
    const key = addressKey(address);
    const mine = this.#perAddress.get(key) ?? 0;
    if (mine <= 0) return;
    this.#options.shared?.give(key);
    this.#open--;
    if (mine === 1) this.#perAddress.delete(key);
    else this.#perAddress.set(key, mine - 1);
  }
}
