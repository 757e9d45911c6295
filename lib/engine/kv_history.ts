/**
 * What both KV sequencers share: writing numbered messages into an atomic operation (chunked,
 * trimmed by key), reading metas and history pages, sweeping what escaped trimming, and the
 * append metrics. Layout of keys and values: kv_format.ts.
 */
import type { Clock } from "../clock.ts";
import type { Sequencer } from "../config.ts";
import type { Counter, Histogram } from "../metrics.ts";
import type { Position, StoredMessage } from "../protocol.ts";
import {
  chunkCount,
  isMeta,
  join,
  type Meta,
  metaKey,
  NS,
  type Pending,
  pendingSize,
  retryLocked,
  split,
} from "./kv_format.ts";
import { oldestKept, type Page, type ReadOptions, type RetentionOptions } from "./store.ts";

/** Per atomic operation, under Deno KV's limits (100 checks, 1000 mutations, 800 KiB). */
export const BATCH_MAX_ROOMS = 64;
const BATCH_MAX_MUTATIONS = 800;
const BATCH_MAX_BYTES = 600_000;
/** Messages that fall out of the history window are deleted in runs of this many offsets per room:
 * a run touches a page or two of the KV's B-tree, one delete per message would touch one each. */
const TRIM_RUN = 32;
/** Deletes an atomic operation may spend on trimming runs, beyond BATCH_MAX_MUTATIONS. */
const TRIM_BUDGET = 150;

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

export interface CachedMeta {
  value: Meta | null;
  versionstamp: string | null;
}

/** How many appends from the head of `queue` fit in one atomic operation (at most `maxRooms` rooms,
 * for one meta check each). */
export function batchSize(queue: Pending[], maxRooms = BATCH_MAX_ROOMS): number {
  const rooms = new Set<string>();
  let mutations = 0;
  let bytes = 0;
  let n = 0;
  for (const p of queue) {
    const size = pendingSize(p);
    const newRoom = !rooms.has(p.message.room);
    // Its chunks and the room's meta (trimming has a budget of its own).
    const need = chunkCount(size) + (newRoom ? 1 : 0);
    const full = mutations + need > BATCH_MAX_MUTATIONS || bytes + size > BATCH_MAX_BYTES ||
      (newRoom && rooms.size >= maxRooms);
    if (n > 0 && full) break;
    rooms.add(p.message.room);
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
  /** Offsets of messages stored in more than one chunk, per room: the only ones trimming can't
   * delete by key alone. In memory only; the start-up sweep covers what a restart forgets. */
  readonly #multiChunk = new Map<string, Map<number, number>>();
  /** Per room, the epoch and the offset up to which this instance has trimmed (or its first sweep
   * covers). */
  readonly #trimmed = new Map<string, { epoch: string; to: number }>();

  constructor(kv: Deno.Kv, options: KvStoreOptions) {
    this.kv = kv;
    this.options = options;
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

  /** Deletes that one atomic operation may spend on trimming. */
  trimBudget(): { deletes: number } {
    return { deletes: TRIM_BUDGET };
  }

  /** Writes a numbered message into `op`, and, once a run of TRIM_RUN older messages has fallen out
   * of the window, deletes them by key: retention by count inside the append's own atomic
   * operation, with no listing and no extra commit. A run that doesn't fit `budget` waits. */
  put(op: Deno.AtomicOperation, p: Pending, budget: { deletes: number }): void {
    const { room, epoch, offset } = p.stored as StoredMessage;
    const ttl = this.options.historyTtlMs;
    const chunks = split(p.bytes as Uint8Array);
    const key = [NS, "msg", room, epoch, offset];
    chunks.forEach((chunk, i) => op.set([...key, i], chunk, ttl === undefined ? undefined : { expireIn: ttl }));
    let multi = this.#multiChunk.get(room);
    if (chunks.length > 1) {
      if (!multi) this.#multiChunk.set(room, multi = new Map());
      multi.set(offset, chunks.length);
    }
    // The last offset out of the window. Below it, the first sweep of this room does the work.
    const floor = offset - this.options.historyLimit;
    const trimmed = this.#trimmed.get(room);
    if (!trimmed || trimmed.epoch !== epoch) return void this.#trimmed.set(room, { epoch, to: Math.max(0, floor) });
    if (floor - trimmed.to < TRIM_RUN) return;
    let deletes = 0;
    for (let old = trimmed.to + 1; old <= floor; old++) deletes += multi?.get(old) ?? 1;
    if (deletes > budget.deletes) return;
    budget.deletes -= deletes;
    for (let old = trimmed.to + 1; old <= floor; old++) {
      const count = multi?.get(old) ?? 1;
      for (let i = 0; i < count; i++) op.delete([NS, "msg", room, epoch, old, i]);
      multi?.delete(old);
    }
    trimmed.to = floor;
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
    this.#multiChunk.delete(room);
    this.#trimmed.delete(room);
  }

  /** Once per room and process: deletes what lies below the retention floor but escaped trimming
   * by key (written before a restart, or under a larger history limit). In the background. */
  #sweepOnce(batch: Pending[]): void {
    for (const p of batch) {
      const { room, epoch, offset } = p.stored as StoredMessage;
      if (this.#swept.has(room)) continue;
      this.#swept.add(room);
      const floor = oldestKept(offset, this.options.historyLimit);
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
    const floor = Math.max(oldestKept(offset, this.options.historyLimit), (options.after ?? 0) + 1);
    const prefix = [NS, "msg", room, epoch];
    const end = options.before === undefined ? undefined : [...prefix, options.before];
    const forward = options.after !== undefined;
    const selector = end ? { start: [...prefix, floor], end } : { prefix, start: [...prefix, floor] };
    const ttl = this.options.historyTtlMs;
    const minTs = ttl === undefined ? -Infinity : this.options.clock.now() - ttl;
    const messages: StoredMessage[] = [];
    let chunks: Uint8Array[] = [];
    let current: unknown = undefined;
    const finish = () => {
      if (chunks.length === 0) return;
      const message = join(forward ? chunks : chunks.reverse());
      if (message.ts >= minTs) messages.push(message);
      chunks = [];
    };
    let full = false;
    for await (const entry of this.kv.list<Uint8Array>(selector, { reverse: !forward, batchSize: 200 })) {
      const at = entry.key[4];
      if (at !== current) {
        finish();
        full = messages.length >= options.limit;
        if (full) break;
        current = at;
      }
      chunks.push(entry.value);
    }
    if (!full) finish();
    if (!forward) messages.reverse();
    return { epoch, offset, messages };
  }

  /** Waits for background sweeps. */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.#sweeps]);
  }
}
