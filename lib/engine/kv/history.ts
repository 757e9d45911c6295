/**
 * What both KV sequencers share: writing blocks of numbered messages into an atomic operation
 * (chunked, trimmed by key), reading metas and history pages, sweeping what escaped trimming, and
 * the append metrics. Layout of keys and values: format.ts.
 */
import type { Clock } from "../../clock.ts";
import type { Sequencer } from "../../config.ts";
import type { Counter, Histogram } from "../../metrics.ts";
import type { Position, StoredMessage } from "../../protocol.ts";
import {
  blockKey,
  chunkCount,
  decodeUtf8,
  encodeUtf8,
  isMeta,
  messagesOf,
  type Meta,
  metaKey,
  NS,
  type Pending,
  pendingSize,
  retryLocked,
  split,
} from "./format.ts";
import {
  firstEpoch,
  type Holes,
  keptHoles,
  newEpoch,
  oldestKept,
  type Page,
  type ReadOptions,
  type RetentionOptions,
  withHole,
} from "../store.ts";

/** Per atomic operation, under Deno KV's limits (100 checks, 1000 mutations, 800 KiB). */
export const BATCH_MAX_ROOMS = 64;
const BATCH_MAX_MUTATIONS = 800;
const BATCH_MAX_BYTES = 600_000;
/** Blocks that fall out of the history window are deleted once they span this many offsets per
 * room: a run touches a page or two of the KV's B-tree, one delete per message would touch one each. */
const TRIM_RUN = 32;
/** Deletes an atomic operation may spend on trimming runs, beyond BATCH_MAX_MUTATIONS. */
const TRIM_BUDGET = 150;

/** Whether a decoded value is a stored message of the block under `key` (room and epoch). */
function isStored(value: unknown, key: Deno.KvKey): value is StoredMessage {
  if (typeof value !== "object" || value === null) return false;
  const m = value as Partial<StoredMessage>;
  return m.type === "message" && m.room === key[2] && m.epoch === key[3] && typeof m.id === "string" &&
    Number.isSafeInteger(m.offset) && typeof m.ts === "number" && typeof m.from === "object" && m.from !== null;
}

export interface KvStoreOptions extends RetentionOptions {
  clock: Clock;
  /** @default "kv" */
  sequencer?: Sequencer;
  /** Observes each batch commit's latency in seconds. */
  appendLatency?: Histogram;
  /** Counts appended messages. */
  appends?: Counter;
  /** Counts messages delivered but not stored (local sequencer). */
  lost?: Counter;
}

/** A block of stored messages to write (layout: format.ts). */
export interface Block {
  room: string;
  epoch: string;
  last: number;
  bytes: Uint8Array;
}

export interface CachedMeta {
  value: Meta | null;
  versionstamp: string | null;
}

/** How many appends from the head of `queue` fit in one atomic operation (at most `maxRooms` rooms,
 * for one meta check each). */
export function batchSize(queue: Pending[], maxRooms = BATCH_MAX_ROOMS): number {
  return fitBatch(queue, maxRooms, (p) => p.message.room, pendingSize);
}

/** How many items of `items` from index `from` on fit in one atomic operation: each message's
 * chunks, one meta per room (at most `maxRooms` rooms), under the byte limit; at least one. */
export function fitBatch<T>(
  items: T[],
  maxRooms: number,
  roomOf: (item: T) => string,
  sizeOf: (item: T) => number,
  from = 0,
): number {
  const rooms = new Set<string>();
  let mutations = 0;
  let bytes = 0;
  let n = 0;
  for (let i = from; i < items.length; i++) {
    const item = items[i] as T;
    const size = sizeOf(item);
    const room = roomOf(item);
    const newRoom = !rooms.has(room);
    // Its chunks and the room's meta (trimming has a budget of its own).
    const need = chunkCount(size) + (newRoom ? 1 : 0);
    const full = mutations + need > BATCH_MAX_MUTATIONS || bytes + size > BATCH_MAX_BYTES ||
      (newRoom && rooms.size >= maxRooms);
    if (n > 0 && full) break;
    rooms.add(room);
    mutations += need;
    bytes += size;
    n++;
  }
  return Math.max(1, n);
}

export class KvHistory {
  readonly kv: Deno.Kv;
  readonly options: KvStoreOptions;
  /** Rooms whose history below the retention floor was swept once by this instance. */
  readonly #swept = new Set<string>();
  readonly #sweeps = new Set<Promise<void>>();
  /** Per room: the epoch, the blocks this instance wrote and has not trimmed yet (last offset and
   * chunks, oldest first), and the offset up to which it has trimmed (or its first sweep covers).
   * In memory only; the start-up sweep covers what a restart forgets. */
  readonly #written = new Map<string, { epoch: string; blocks: { last: number; chunks: number }[]; to: number }>();
  /** Blocks found damaged (each logged once). */
  readonly #damaged = new Set<string>();
  /** The holes of rooms that have some, as their sequencer knows them (`setHoles`). */
  readonly #holes = new Map<string, { epoch: string; holes: Holes }>();

  /** This store's salt for `firstEpoch` (`loadSalt`). */
  #salt = "";

  constructor(kv: Deno.Kv, options: KvStoreOptions) {
    this.kv = kv;
    this.options = options;
  }

  /** Reads the store's salt, making it on the store's first use (the one write that is not a
   * room's). Before anything else. */
  async loadSalt(): Promise<void> {
    const key = [NS, "salt"];
    for (let attempt = 0; attempt < 10 && !this.#salt; attempt++) {
      const entry = await retryLocked(() => this.kv.get<string>(key));
      if (typeof entry.value === "string") this.#salt = entry.value;
      else {
        await retryLocked(() =>
          this.kv.atomic().check({ key, versionstamp: entry.versionstamp }).set(key, newEpoch() + newEpoch()).commit()
        );
      }
    }
    if (!this.#salt) throw new Error("could not read or store the KV's salt");
  }

  /** The epoch of a room without history (`firstEpoch`). */
  firstEpoch(room: string): string {
    return firstEpoch(this.#salt, room);
  }

  /** Reads the meta of `rooms` (ten per `getMany`, KV's limit). */
  async readMetas(rooms: string[]): Promise<Map<string, CachedMeta>> {
    const out = new Map<string, CachedMeta>();
    const reads = [];
    for (let i = 0; i < rooms.length; i += 10) {
      const group = rooms.slice(i, i + 10);
      reads.push(
        retryLocked(() => this.kv.getMany(group.map(metaKey))).then((entries) =>
          entries.forEach((entry, j) => {
            out.set(group[j] as string, {
              value: isMeta(entry.value) ? entry.value : null,
              versionstamp: entry.versionstamp,
            });
          })
        ),
      );
    }
    await Promise.all(reads);
    return out;
  }

  /** The room's holes in `epoch` are `holes` (from its meta, or found since): the retained window
   * counts messages, skipping them. */
  setHoles(room: string, epoch: string, holes: Holes): void {
    if (holes.length === 0) this.#holes.delete(room);
    else this.#holes.set(room, { epoch, holes });
  }

  /** The oldest offset kept in the room when its latest is `latest` (see `oldestKept`). */
  floor(room: string, epoch: string, latest: number): number {
    const known = this.#holes.get(room);
    return oldestKept(latest, this.options.historyLimit, known?.epoch === epoch ? known.holes : undefined);
  }

  /** The meta as it stands once every offset handed out is settled: a meta left with a
   * reservation by a process that died (`reserved` above `offset`) had handed out offsets up to
   * `reserved`; what of them is not stored (after its commit log was filed) is a hole. Reads the
   * room's last stored block to know. */
  async settled(room: string, meta: Meta): Promise<Meta> {
    const reserved = meta.reserved ?? meta.offset;
    if (reserved <= meta.offset) return meta;
    const prefix = [NS, "msg", room, meta.epoch];
    let last = meta.offset;
    for await (const entry of this.kv.list({ prefix }, { reverse: true, limit: 1 })) {
      last = Math.max(last, entry.key[4] as number);
    }
    const holes = last < reserved ? withHole(meta.holes ?? [], last + 1, reserved) : meta.holes ?? [];
    return { epoch: meta.epoch, offset: reserved, holes: keptHoles(holes, reserved, this.options.historyLimit) };
  }

  /** Deletes that one atomic operation may spend on trimming. */
  trimBudget(): { deletes: number } {
    return { deletes: TRIM_BUDGET };
  }

  /** Writes a numbered message into `op` as a block of its own. */
  put(op: Deno.AtomicOperation, p: Pending, budget: { deletes: number }): void {
    const { room, epoch, offset } = p.stored as StoredMessage;
    this.putBlock(op, { room, epoch, last: offset, bytes: encodeUtf8(p.json as string) }, budget);
  }

  /** Writes a block (stored messages of one room and epoch, oldest first, their JSON joined by
   * "\n", ending with offset `last`) under its key; and, once blocks spanning TRIM_RUN offsets have
   * fallen out of the window, deletes them by key: retention by count inside the append's own
   * atomic operation, with no listing and no extra commit. A run that doesn't fit `budget` waits. */
  putBlock(op: Deno.AtomicOperation, block: Block, budget: { deletes: number }): void {
    const { room, epoch, last: offset, bytes } = block;
    const ttl = this.options.historyTtlMs;
    const chunks = split(bytes);
    chunks.forEach((chunk, i) =>
      op.set(blockKey(room, epoch, offset, i), chunk, ttl === undefined ? undefined : { expireIn: ttl })
    );
    // The last offset out of the window. Below it, the first sweep of this room does the work.
    const floor = this.floor(room, epoch, offset) - 1;
    let written = this.#written.get(room);
    if (!written || written.epoch !== epoch) {
      this.#written.set(room, written = { epoch, blocks: [], to: Math.max(0, floor) });
    }
    written.blocks.push({ last: offset, chunks: chunks.length });
    if (floor - written.to < TRIM_RUN) return;
    let n = 0;
    let deletes = 0;
    for (const block of written.blocks) {
      if (block.last > floor) break;
      n++;
      deletes += block.chunks;
    }
    if (deletes > budget.deletes) return;
    budget.deletes -= deletes;
    for (const { last, chunks } of written.blocks.splice(0, n)) {
      for (let i = 0; i < chunks; i++) op.delete(blockKey(room, epoch, last, i));
    }
    written.to = floor;
  }

  /** Whether the block written for `message` alone (sequencer "kv") is stored, holding it. */
  async holds(message: StoredMessage): Promise<boolean> {
    const { room, epoch, offset, id } = message;
    const entry = await retryLocked(() => this.kv.get<Uint8Array>(blockKey(room, epoch, offset, 0)));
    return entry.value instanceof Uint8Array && decodeUtf8(entry.value).includes(`"id":${JSON.stringify(id)}`);
  }

  /** A batch is durable: metrics, and the first sweep of each room. */
  stored(batch: Pending[], started: number): void {
    if (batch.length === 0) return;
    this.options.appendLatency?.observe((performance.now() - started) / 1000);
    this.options.appends?.inc(batch.length);
    this.#sweepOnce(batch);
  }

  /** The room's history was reset. */
  forget(room: string): void {
    this.#written.delete(room);
  }

  /** Once per room and process: deletes what lies below the retention floor but escaped trimming
   * by key (written before a restart, or under a larger history limit). In the background. */
  #sweepOnce(batch: Pending[]): void {
    for (const p of batch) {
      const { room, epoch, offset } = p.stored as StoredMessage;
      if (this.#swept.has(room)) continue;
      this.#swept.add(room);
      const floor = this.floor(room, epoch, offset);
      const sweep = this.deleteRange([NS, "msg", room, epoch], [NS, "msg", room, epoch, floor])
        .catch((error) => console.error(`roomcast: sweeping old history of ${room} failed:`, error))
        .finally(() => this.#sweeps.delete(sweep));
      this.#sweeps.add(sweep);
    }
  }

  /** Deletes the keys under `prefix` (before `end`), but for those `keep` spares. */
  async deleteRange(prefix: Deno.KvKey, end?: Deno.KvKey, keep?: (key: Deno.KvKey) => boolean): Promise<void> {
    const selector = end ? { prefix, end } : { prefix };
    let op = this.kv.atomic();
    let n = 0;
    for await (const entry of this.kv.list(selector)) {
      if (keep?.(entry.key)) continue;
      op.delete(entry.key);
      if (++n % 500 === 0) {
        const full = op;
        await retryLocked(() => full.commit());
        op = this.kv.atomic();
      }
    }
    if (n % 500 !== 0) await retryLocked(() => op.commit());
  }

  /** A page of the room's history as of `position`. */
  async read(room: string, { epoch, offset }: Position, options: ReadOptions): Promise<Page> {
    const floor = Math.max(this.floor(room, epoch, offset), (options.after ?? 0) + 1);
    const before = options.before ?? Infinity;
    if (floor >= before) return { epoch, offset, messages: [] };
    const ttl = this.options.historyTtlMs;
    const minTs = ttl === undefined ? -Infinity : this.options.clock.now() - ttl;
    const wanted = (m: StoredMessage) => m.offset >= floor && m.offset < before && m.ts >= minTs;
    const prefix = [NS, "msg", room, epoch];
    const messages: StoredMessage[] = [];
    const take = (block: StoredMessage[], newestFirst: boolean) => {
      for (const m of newestFirst ? block.reverse() : block) {
        if (messages.length < options.limit && wanted(m)) messages.push(m);
      }
      return messages.length >= options.limit;
    };
    // Blocks are keyed by their last offset: the first block keyed at or above an offset holds it.
    if (options.after !== undefined) {
      for await (const block of this.#blocks({ prefix, start: [...prefix, floor] }, false)) {
        if (take(block, false) || (block.at(-1)?.offset ?? 0) >= before) break;
      }
      return { epoch, offset, messages };
    }
    if (before !== Infinity) {
      // The block holding `before - 1` may be keyed at or above `before`.
      for await (const block of this.#blocks({ prefix, start: [...prefix, before] }, false)) {
        take(block, true);
        break;
      }
    }
    const end = before === Infinity ? undefined : [...prefix, before];
    const selector = end ? { start: [...prefix, floor], end } : { prefix, start: [...prefix, floor] };
    if (messages.length < options.limit) {
      for await (const block of this.#blocks(selector, true)) if (take(block, true)) break;
    }
    return { epoch, offset, messages: messages.reverse() };
  }

  /** The blocks in `selector`, each as its messages oldest first. */
  async *#blocks(selector: Deno.KvListSelector, reverse: boolean): AsyncGenerator<StoredMessage[]> {
    let chunks: unknown[] = [];
    let current: Deno.KvKey | undefined;
    for await (const entry of this.kv.list(selector, { reverse, batchSize: 100 })) {
      if (current && entry.key[4] !== current[4] && chunks.length > 0) {
        yield this.#decode(reverse ? chunks.reverse() : chunks, current);
        chunks = [];
      }
      current = entry.key;
      chunks.push(entry.value);
    }
    if (current && chunks.length > 0) yield this.#decode(reverse ? chunks.reverse() : chunks, current);
  }

  /** The messages of a block, or none when it can't be read (damaged on disk, written by something
   * else): logged once, skipped, and the rest of the history stays readable. A recovery across it
   * answers `recovered: false`, as across any hole. */
  #decode(chunks: unknown[], key: Deno.KvKey): StoredMessage[] {
    try {
      if (chunks.every((chunk) => chunk instanceof Uint8Array)) {
        const messages = messagesOf(chunks as Uint8Array[]);
        if (messages.every((m) => isStored(m, key))) return messages;
      }
    } catch {
      // Reported below.
    }
    const block = JSON.stringify(key.slice(0, 5));
    if (!this.#damaged.has(block) && this.#damaged.size < 10_000) {
      this.#damaged.add(block);
      console.error(`roomcast: the stored block ${block} can't be read; its messages are skipped`);
    }
    return [];
  }

  /** Waits for background sweeps. */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.#sweeps]);
  }
}
