/**
 * The store interface: room history and per-room offsets, the source of truth for "nothing lost".
 * Each engine kind has one (lib/engine/engine.ts lists them).
 */
import type { NewMessage, Position, StoredMessage } from "../protocol.ts";
import { randomHex } from "../ids.ts";

export interface ReadOptions {
  /** Only messages with an offset above this, oldest first from there. */
  after?: number;
  /** Only messages with an offset below this; without `after`, the newest `limit` of them. */
  before?: number;
  /** At most this many messages. */
  limit: number;
}

export interface Page {
  epoch: string;
  /** The room's latest offset when the page was read. */
  offset: number;
  /** Oldest first. */
  messages: StoredMessage[];
}

export interface Recovery extends Page {
  /** True when `messages` is exactly every message after the requested position. */
  recovered: boolean;
}

export interface RetentionOptions {
  /** Messages kept per room. @default 1000 */
  historyLimit: number;
  /** Drop messages older than this (ms); `undefined` keeps them by count only. @default undefined */
  historyTtlMs: number | undefined;
}

/** A message as the store numbered it, and its JSON, made once when it got its offset: what the
 * fan-out sends to every JSON receiver and what was (or will be) stored. */
export interface Appended {
  message: StoredMessage;
  json: string;
}

/** The engine's storage can't be reached (Redis went away): nothing was stored, and the service
 * comes back by itself when the storage does. Clients get `unavailable` (HTTP 503). */
export class EngineUnavailable extends Error {
  override name = "EngineUnavailable";
  /** The request was sent and not answered in time: it may still take effect (a publish may yet be
   * stored and delivered). Otherwise it was never sent, and nothing was done. */
  readonly unanswered: boolean;
  constructor(message: string, options: { unanswered?: boolean } = {}) {
    super(message);
    this.unanswered = options.unanswered ?? false;
  }
}

/** What a publish may ask of its append. */
export interface AppendOptions {
  /** A retried publish with the same key (in the same room, within a day) gets the first one's
   * result, and nothing is stored twice (HTTP `Idempotency-Key`). */
  idempotencyKey?: string;
  /** How long the key is remembered (ms). @default a day (HTTP's); a client's publish key over a
   * WebSocket only has to outlive a reconnect: 10 minutes. */
  idempotencyTtlMs?: number;
}

/** Called once an append is durable (`undefined`) or definitely not stored (the error). */
export type OnDurable = (error?: unknown) => void;

/**
 * Guarantees every implementation gives (tests/store_contract.ts checks them):
 * - `append` assigns offsets per room within an epoch, increasing by one, with no duplicates,
 *   even when several isolates or processes share the store, and a single caller's appends to one
 *   room get offsets in call order. It resolves once the message has its offset and may be
 *   delivered: after the commit when the store sequences in the database (`KvStore` with
 *   `sequencer: "kv"`, shared by many isolates), at once when this process sequences (`MemoryStore`,
 *   `KvStore` with `sequencer: "local"`, which commits right after). `onDurable` says when it is
 *   stored. An offset is never handed out twice; the only holes are messages a crash or a storage
 *   failure lost after delivery, and recoveries across them answer `recovered: false`.
 * - A message that can't be numbered or stored (it can't be encoded, the storage fails) fails alone:
 *   its `append` rejects, other appends and the room go on; offsets stay without duplicates.
 * - Reads see every append that resolved before the read started.
 * - Only the last `historyLimit` messages (and none older than `historyTtlMs`) are returned.
 * - An epoch changes only when the room's history is reset or lost; a room with no history has
 *   the epoch `firstEpoch` derives from the store and the room's name, without anything written.
 * - A join reads: `position` and `read` write nothing to storage.
 */
export interface Store {
  append(message: NewMessage, onDurable?: OnDurable, options?: AppendOptions): Promise<Appended>;
  /** `append` without waiting, when the message can have its offset at once (this process
   * sequences and the room's state is at hand): the stored message, or `undefined` and nothing
   * done (call `append`). It may also throw for a message that can't be stored (nothing done, no
   * offset used up). Spares a publish its promises. */
  appendNow?(message: NewMessage): Appended | undefined;
  /** The room's epoch and latest offset handed out (0 when it has no messages yet). */
  position(room: string): Promise<Position>;
  read(room: string, options: ReadOptions): Promise<Page>;
  /** Drops the room's history and starts a new epoch at offset 0. */
  reset(room: string): Promise<Position>;
  /** Keeps `value` under `key` for `ttlMs`, replacing what was there: a dropped Socket.IO session
   * waiting for its client (routes/transports/socketio/recovery.ts), which may come back to any
   * isolate or process sharing the store. At most `MAX_PARKED_BYTES` of UTF-8. */
  park(key: string, value: string, ttlMs: number): Promise<void>;
  /** What is parked under `key` and not expired, removed as it is read: of two takers, one gets it. */
  unpark(key: string): Promise<string | undefined>;
  /** Waits for pending appends, then releases the store. */
  close(): Promise<void>;
}

/** The largest value `Store.park` takes (Deno KV keeps values under 64 KiB). */
export const MAX_PARKED_BYTES = 60_000;

/** True when `messages` are exactly the offsets `after + 1`, `after + 2`, … of one epoch. */
export function contiguous(messages: readonly StoredMessage[], after: number): boolean {
  for (let i = 0; i < messages.length; i++) {
    if (messages[i]?.offset !== after + 1 + i) return false;
  }
  return true;
}

/** Every message after `since`, or `recovered: false` when the epoch differs or some are no longer
 * kept (trimmed, expired, or lost in a crash: a hole in the offsets). */
export async function recover(store: Store, room: string, since: Position, historyLimit: number): Promise<Recovery> {
  const position = await store.position(room);
  const refused = { ...position, recovered: false, messages: [] };
  if (since.epoch !== position.epoch || since.offset > position.offset) return refused;
  if (since.offset === position.offset) return { ...position, recovered: true, messages: [] };
  const page = await store.read(room, { after: since.offset, limit: historyLimit });
  const last = page.messages.at(-1)?.offset ?? since.offset;
  if (page.epoch !== since.epoch || !contiguous(page.messages, since.offset) || last < position.offset) return refused;
  // The subscription goes on from the last message handed over (at or past `position`): what comes
  // after it arrives live. (Not the page's offset: a store could name there a message it has not
  // written yet, and the live one would then be taken for delivered.)
  return { epoch: page.epoch, offset: last, recovered: true, messages: page.messages };
}

/** Runs of offsets that name no message (a crash or a storage failure lost them after they were
 * handed out), as flat pairs `[from, to, from, to, …]`, ascending and disjoint. */
export type Holes = readonly number[];

const NO_HOLES: Holes = [];

/** The oldest offset still kept in a room whose latest offset is `latest`: the last
 * `historyLimit` messages are kept, and offsets in `holes` hold none, so they don't count. */
export function oldestKept(latest: number, historyLimit: number, holes: Holes = NO_HOLES): number {
  let remaining = historyLimit;
  let cursor = latest;
  for (let i = holes.length - 2; i >= 0; i -= 2) {
    const from = holes[i] as number;
    if (from > cursor) continue;
    const top = Math.min(holes[i + 1] as number, cursor);
    // Offsets top + 1 … cursor hold messages.
    if (cursor - top >= remaining) return cursor - remaining + 1;
    remaining -= cursor - top;
    cursor = from - 1;
  }
  return Math.max(1, cursor - remaining + 1);
}

/** `holes` with the run `from`…`to` added (merged with its neighbours). */
export function withHole(holes: Holes, from: number, to: number): number[] {
  const runs: [number, number][] = [];
  for (let i = 0; i < holes.length; i += 2) runs.push([holes[i] as number, holes[i + 1] as number]);
  runs.push([from, to]);
  runs.sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  for (const [a, b] of runs) {
    const last = out.length - 1;
    if (out.length > 0 && a <= (out[last] as number) + 1) out[last] = Math.max(out[last] as number, b);
    else out.push(a, b);
  }
  return out;
}

/** Holes at most this many runs: the oldest are forgotten first (the window then keeps fewer
 * messages than the limit, never more). */
const MAX_HOLE_RUNS = 64;

/** The runs of `holes` that still matter to a room whose latest offset is `latest`: those that
 * reach into its retained window. */
export function keptHoles(holes: Holes, latest: number, historyLimit: number): number[] {
  const floor = oldestKept(latest, historyLimit, holes);
  const out: number[] = [];
  for (let i = 0; i < holes.length; i += 2) {
    if ((holes[i + 1] as number) >= floor) out.push(holes[i] as number, holes[i + 1] as number);
  }
  return out.slice(-2 * MAX_HOLE_RUNS);
}

/** The stored form of a message, fields in wire order. */
export function stamp(message: NewMessage, epoch: string, offset: number): StoredMessage {
  const { room, id, from, data, ts } = message;
  return { type: "message", room, id, epoch, offset, from, data, ts };
}

/** The epoch of a room that has no history yet: derived from the store's `salt` (made once per
 * store, kept in it) and the room's name, so that it is the same in every process and isolate and
 * across restarts without anything written per room (a join that only reads writes nothing), and
 * differs between stores (a lost store changes it). A room's first message is stored in it. */
export function firstEpoch(salt: string, room: string): string {
  // Two 32-bit FNV-1a hashes with different seeds: 48 bits shown, like `newEpoch`.
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x9e3779b9;
  const text = `${salt}\u0000${room}`;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
  }
  const hex = (n: number, digits: number) => (n >>> 0).toString(16).padStart(8, "0").slice(0, digits);
  return hex(a, 8) + hex(b, 4);
}

export function newEpoch(): string {
  return randomHex(6);
}
