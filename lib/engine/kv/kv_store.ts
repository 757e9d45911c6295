/**
 * What the two Deno KV stores share (open.ts opens the right one): the KV and its history
 * code (history.ts), the store's salt, reading a page once the room's messages are in place,
 * dropping old epochs on a reset, and closing. How messages are numbered is each subclass's:
 * `LocalKvStore` (this process numbers, local_kv_store.ts) or `SharedKvStore` (the KV commit
 * numbers, shared_kv_store.ts).
 */
import type { NewMessage, Position } from "../../protocol.ts";
import { type NewEpoch, NS, retryLocked } from "./format.ts";
import { KvHistory, type KvStoreOptions } from "./history.ts";
import type { Appended, AppendOptions, OnDurable, Page, ReadOptions, Store } from "../store.ts";
import { Idempotency } from "../idempotency.ts";
import { type Clock, systemClock } from "../../clock.ts";

export abstract class KvStore implements Store {
  /** The KV (a shared one also carries presence and events: backplane.ts, presence.ts). */
  readonly kv: Deno.Kv;
  protected readonly history: KvHistory;
  readonly #lock: Deno.FsFile | undefined;
  /** Idempotency keys, kept in this process. */
  readonly #idempotency: Idempotency;
  readonly #clock: Clock;
  #closed = false;

  constructor(kv: Deno.Kv, options: KvStoreOptions, lock?: Deno.FsFile) {
    this.kv = kv;
    this.history = new KvHistory(kv, options);
    this.#lock = lock;
    this.#clock = options.clock ?? systemClock;
    this.#idempotency = new Idempotency(this.#clock);
  }

  /** Before anything else: reads (or makes) the store's salt. */
  async start(): Promise<void> {
    await this.history.loadSalt();
  }

  append(message: NewMessage, onDurable?: OnDurable, options?: AppendOptions): Promise<Appended> {
    const key = options?.idempotencyKey;
    if (key === undefined) return this.appendOnce(message, onDurable);
    return this.#idempotency.run(
      message.room,
      message.from.id,
      key,
      onDurable,
      (done) => this.appendOnce(message, done),
      options?.idempotencyTtlMs,
    );
  }

  /** Numbers and stores one message (`onDurable`: see `Store.append`). */
  protected abstract appendOnce(message: NewMessage, onDurable?: OnDurable): Promise<Appended>;
  abstract position(room: string): Promise<Position>;

  /** Resolves once every message of `room` handed out so far is where a read finds it. */
  protected abstract flush(room: string): Promise<void>;
  /** Starts a new epoch for the room; returns it, and the epoch it replaced (if the room had one). */
  protected abstract startEpoch(room: string): Promise<NewEpoch>;
  /** Stops numbering and stores what is pending. */
  protected abstract stop(): Promise<void>;

  async read(room: string, options: ReadOptions): Promise<Page> {
    // The position first: every message numbered up to it is readable once the flush is done. (Read
    // after the flush, it could name messages numbered meanwhile and not yet written: a page whose
    // offset runs past its last message, which a recovery took for delivered.)
    const position = await this.position(room);
    await this.flush(room);
    return await retryLocked(() => this.history.read(room, position, options));
  }

  async reset(room: string): Promise<Position> {
    const { epoch, replaced } = await this.startEpoch(room);
    // Only the epoch this reset replaced: messages of the new one may already be arriving, and a
    // reset elsewhere may have started another since (its messages are acknowledged).
    if (replaced !== undefined && replaced !== epoch) {
      await retryLocked(() => this.history.deleteRange([NS, "msg", room, replaced]));
    }
    return { epoch, offset: 0 };
  }

  async park(key: string, value: string, ttlMs: number): Promise<void> {
    const until = this.#clock.now() + ttlMs;
    await retryLocked(() => this.kv.set([NS, "parked", key], { value, until }, { expireIn: Math.max(1, ttlMs) }));
  }

  async unpark(key: string): Promise<string | undefined> {
    const entry = await retryLocked(() => this.kv.get<{ value: string; until: number }>([NS, "parked", key]));
    if (entry.versionstamp === null) return undefined;
    // Removed only if nobody took it meanwhile: of two takers, one gets it.
    const taken = await retryLocked(() => this.kv.atomic().check(entry).delete(entry.key).commit());
    if (!taken.ok || entry.value.until <= this.#clock.now()) return undefined;
    return entry.value.value;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.stop();
    await this.history.settle();
    this.kv.close();
    this.#lock?.close();
  }
}
