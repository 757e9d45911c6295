/**
 * The Deno KV store: a local SQLite file by default, the platform's KV on Deno Deploy. Appends to
 * one room are queued and committed in batches, one atomic operation per batch, guarded by a
 * check on the room's meta key, so isolates and processes sharing the KV never assign an offset
 * twice. Messages are stored as UTF-8 JSON split into chunks under the 64 KiB value limit.
 *
 * Keys: `["rc1","meta",room]` → `{epoch, offset}`;
 * `["rc1","msg",room,epoch,offset,chunk]` → `Uint8Array`.
 */
import type { Clock } from "../clock.ts";
import type { Counter, Histogram } from "../metrics.ts";
import type { NewMessage, Position, StoredMessage } from "../protocol.ts";
import { rememberJson } from "../peer.ts";
import {
  newEpoch,
  oldestKept,
  type Page,
  type ReadOptions,
  type RetentionOptions,
  stamp,
  type Store,
} from "./store.ts";

const NS = "rc1";
const CHUNK_BYTES = 60_000;
/** Per atomic operation, under Deno KV's limits (100 checks, 1000 mutations, 800 KiB). */
const BATCH_MAX_ROOMS = 64;
const BATCH_MAX_MUTATIONS = 800;
const BATCH_MAX_BYTES = 600_000;
const MAX_ATTEMPTS = 50;

interface Meta {
  epoch: string;
  offset: number;
}

interface CachedMeta {
  value: Meta | null;
  versionstamp: string | null;
}

/** An append waiting for its batch. The message JSON is split around the epoch and offset, which
 * only the commit knows, so that each message is encoded to JSON and UTF-8 exactly once. */
interface Pending {
  message: NewMessage;
  head: string;
  tail: string;
  headBytes: Uint8Array;
  tailBytes: Uint8Array;
  resolve(stored: StoredMessage): void;
  reject(error: unknown): void;
}

export interface KvStoreOptions extends RetentionOptions {
  clock: Clock;
  /** Observes each batch commit's latency in seconds. */
  appendLatency?: Histogram;
  /** Counts appended messages. */
  appends?: Counter;
}

/** SQLite answers "database is locked" while another handle (isolate, process) writes: wait and retry. */
async function retryLocked<T>(work: () => Promise<T>): Promise<T> {
  for (let attempt = 0;; attempt++) {
    try {
      return await work();
    } catch (error) {
      const locked = error instanceof Error && /database is locked|SQLITE_BUSY/i.test(error.message);
      if (!locked || attempt >= 40) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.min(2 ** attempt, 50) * (0.5 + Math.random())));
    }
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function isMeta(value: unknown): value is Meta {
  return typeof value === "object" && value !== null && "epoch" in value && typeof value.epoch === "string" &&
    "offset" in value && typeof value.offset === "number";
}

function split(bytes: Uint8Array): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += CHUNK_BYTES) chunks.push(bytes.subarray(i, i + CHUNK_BYTES));
  return chunks.length ? chunks : [bytes];
}

function join(chunks: Uint8Array[]): StoredMessage {
  if (chunks.length === 1 && chunks[0]) return JSON.parse(decoder.decode(chunks[0]));
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  return JSON.parse(decoder.decode(bytes));
}

/** `JSON.stringify(stamp(message, epoch, offset))`, in two parts around `"epoch":…,"offset":…,`. */
function pending(message: NewMessage, resolve: Pending["resolve"], reject: Pending["reject"]): Pending {
  const { room, id, from, data, ts } = message;
  const head = `{"type":"message","room":${JSON.stringify(room)},"id":${JSON.stringify(id)},`;
  const tail = `"from":${JSON.stringify(from)},"data":${JSON.stringify(data)},"ts":${JSON.stringify(ts)}}`;
  return { message, head, tail, headBytes: encoder.encode(head), tailBytes: encoder.encode(tail), resolve, reject };
}

function middle(epoch: string, offset: number): string {
  return `"epoch":${JSON.stringify(epoch)},"offset":${offset},`;
}

export class KvStore implements Store {
  readonly #kv: Deno.Kv;
  readonly #options: KvStoreOptions;
  /** Appends of every room, in call order. */
  #queue: Pending[] = [];
  #draining: Promise<void> | undefined;
  readonly #meta = new Map<string, CachedMeta>();
  /** Rooms whose history below the retention floor was swept once by this instance. */
  readonly #swept = new Set<string>();
  readonly #sweeps = new Set<Promise<void>>();
  /** Offsets of messages stored in more than one chunk, per room: the only ones trimming can't
   * delete by key alone. In memory only; the start-up sweep covers what a restart forgets. */
  readonly #multiChunk = new Map<string, Map<number, number>>();
  #closed = false;

  constructor(kv: Deno.Kv, options: KvStoreOptions) {
    this.#kv = kv;
    this.#options = options;
  }

  /** Opens the KV at `path` (`undefined`: the platform's default KV). */
  static async open(path: string | undefined, options: KvStoreOptions): Promise<KvStore> {
    if (path && path !== ":memory:") {
      const dir = path.replace(/[^/\\]*$/, "");
      if (dir) await Deno.mkdir(dir, { recursive: true });
    }
    return new KvStore(await Deno.openKv(path), options);
  }

  /** Queues the append; one commit at a time takes everything queued (up to the batch limits),
   * across rooms, so the commit rate stays low however many rooms publish. */
  append(message: NewMessage): Promise<StoredMessage> {
    return new Promise((resolve, reject) => {
      this.#queue.push(pending(message, resolve, reject));
      this.#draining ??= this.#drain();
    });
  }

  async #drain(): Promise<void> {
    // Let every append queued in this turn of the event loop join the first batch.
    await Promise.resolve();
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, this.#batchSize());
        const started = performance.now();
        try {
          const stored = await this.#commit(batch);
          this.#options.appendLatency?.observe((performance.now() - started) / 1000);
          this.#options.appends?.inc(batch.length);
          for (let i = 0; i < batch.length; i++) batch[i]?.resolve(stored[i] as StoredMessage);
          this.#sweepOnce(stored);
        } catch (error) {
          for (const p of batch) {
            this.#meta.delete(p.message.room);
            p.reject(error);
          }
        }
      }
    } finally {
      this.#draining = undefined;
    }
  }

  /** How many appends from the head of the queue fit in one atomic operation. */
  #batchSize(): number {
    const rooms = new Set<string>();
    let mutations = 0;
    let bytes = 0;
    let n = 0;
    for (const p of this.#queue) {
      const size = p.headBytes.length + p.tailBytes.length + 64;
      const newRoom = !rooms.has(p.message.room);
      // Its chunks, the delete of the message it pushes out of the window, and the room's meta.
      const need = 2 * Math.ceil(size / CHUNK_BYTES) + (newRoom ? 1 : 0);
      const full = mutations + need > BATCH_MAX_MUTATIONS || bytes + size > BATCH_MAX_BYTES ||
        (newRoom && rooms.size >= BATCH_MAX_ROOMS);
      if (n > 0 && full) break;
      rooms.add(p.message.room);
      mutations += need;
      bytes += size;
      n++;
    }
    return Math.max(1, n);
  }

  /** Reads the meta of every room not in the cache (ten per `getMany`, KV's limit). */
  async #loadMetas(rooms: string[]): Promise<void> {
    const missing = rooms.filter((room) => !this.#meta.has(room));
    const reads = [];
    for (let i = 0; i < missing.length; i += 10) {
      const group = missing.slice(i, i + 10);
      reads.push(
        retryLocked(() => this.#kv.getMany(group.map((room) => [NS, "meta", room]))).then((entries) =>
          entries.forEach((entry, j) => {
            const room = group[j] as string;
            this.#meta.set(room, { value: isMeta(entry.value) ? entry.value : null, versionstamp: entry.versionstamp });
          })
        ),
      );
    }
    await Promise.all(reads);
  }

  async #commit(batch: Pending[]): Promise<StoredMessage[]> {
    const ttl = this.#options.historyTtlMs;
    const setOptions = ttl === undefined ? undefined : { expireIn: ttl };
    const rooms = [...new Set(batch.map((p) => p.message.room))];
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      await this.#loadMetas(rooms);
      const op = this.#kv.atomic();
      const next = new Map<string, Meta>();
      for (const room of rooms) {
        const cached = this.#meta.get(room);
        op.check({ key: [NS, "meta", room], versionstamp: cached?.versionstamp ?? null });
        next.set(room, { epoch: cached?.value?.epoch ?? newEpoch(), offset: cached?.value?.offset ?? 0 });
      }
      const stored = batch.map((p) => {
        const meta = next.get(p.message.room) as Meta;
        meta.offset += 1;
        const mid = middle(meta.epoch, meta.offset);
        const midBytes = encoder.encode(mid);
        const bytes = new Uint8Array(p.headBytes.length + midBytes.length + p.tailBytes.length);
        bytes.set(p.headBytes, 0);
        bytes.set(midBytes, p.headBytes.length);
        bytes.set(p.tailBytes, p.headBytes.length + midBytes.length);
        const room = p.message.room;
        const key = [NS, "msg", room, meta.epoch, meta.offset];
        const chunks = split(bytes);
        chunks.forEach((chunk, i) => op.set([...key, i], chunk, setOptions));
        if (chunks.length > 1) this.#chunked(room).set(meta.offset, chunks.length);
        this.#trimInto(op, room, meta.epoch, meta.offset - this.#options.historyLimit);
        const message = stamp(p.message, meta.epoch, meta.offset);
        rememberJson(message, p.head + mid + p.tail);
        return message;
      });
      for (const [room, meta] of next) op.set([NS, "meta", room], meta);
      const result = await retryLocked(() => op.commit());
      if (result.ok) {
        for (const [room, meta] of next) this.#meta.set(room, { value: meta, versionstamp: result.versionstamp });
        return stored;
      }
      // Another isolate or process appended to one of these rooms: re-read and renumber.
      for (const room of rooms) this.#meta.delete(room);
    }
    throw new Error(`KV append of ${batch.length} messages conflicted ${MAX_ATTEMPTS} times`);
  }

  #chunked(room: string): Map<number, number> {
    let offsets = this.#multiChunk.get(room);
    if (!offsets) this.#multiChunk.set(room, offsets = new Map());
    return offsets;
  }

  /** Retention by count, inside the append's own atomic operation: the message that falls out of
   * the window is deleted by key, with no listing and no extra commit. */
  #trimInto(op: Deno.AtomicOperation, room: string, epoch: string, offset: number): void {
    if (offset < 1) return;
    const chunks = this.#multiChunk.get(room)?.get(offset) ?? 1;
    for (let i = 0; i < chunks; i++) op.delete([NS, "msg", room, epoch, offset, i]);
    this.#multiChunk.get(room)?.delete(offset);
  }

  /** Once per room and process: deletes what lies below the retention floor but escaped trimming
   * by key (written before a restart, or under a larger history limit). In the background. */
  #sweepOnce(stored: StoredMessage[]): void {
    for (const { room, epoch, offset } of stored) {
      if (this.#swept.has(room)) continue;
      this.#swept.add(room);
      const floor = oldestKept(offset, this.#options.historyLimit);
      const sweep = this.#deleteRange([NS, "msg", room, epoch], [NS, "msg", room, epoch, floor])
        .catch((error) => console.error(`roomcast: sweeping old history of ${room} failed:`, error))
        .finally(() => this.#sweeps.delete(sweep));
      this.#sweeps.add(sweep);
    }
  }

  async #readMeta(room: string): Promise<CachedMeta> {
    const entry = await retryLocked(() => this.#kv.get([NS, "meta", room]));
    const cached = { value: isMeta(entry.value) ? entry.value : null, versionstamp: entry.versionstamp };
    this.#meta.set(room, cached);
    return cached;
  }

  /** Deletes the keys under `prefix` (before `end`), but for those `keep` spares. */
  async #deleteRange(prefix: Deno.KvKey, end?: Deno.KvKey, keep?: (key: Deno.KvKey) => boolean): Promise<void> {
    const selector = end ? { prefix, end } : { prefix };
    let op = this.#kv.atomic();
    let n = 0;
    for await (const entry of this.#kv.list(selector)) {
      if (keep?.(entry.key)) continue;
      op.delete(entry.key);
      if (++n % 500 === 0) {
        const full = op;
        await retryLocked(() => full.commit());
        op = this.#kv.atomic();
      }
    }
    if (n % 500 !== 0) await retryLocked(() => op.commit());
  }

  async position(room: string): Promise<Position> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const meta = await this.#readMeta(room);
      if (meta.value) return { epoch: meta.value.epoch, offset: meta.value.offset };
      const fresh: Meta = { epoch: newEpoch(), offset: 0 };
      const result = await retryLocked(() =>
        this.#kv.atomic().check({ key: [NS, "meta", room], versionstamp: null }).set([NS, "meta", room], fresh).commit()
      );
      if (result.ok) {
        this.#meta.set(room, { value: fresh, versionstamp: result.versionstamp });
        return fresh;
      }
    }
    throw new Error(`KV position of room ${room} conflicted ${MAX_ATTEMPTS} times`);
  }

  async read(room: string, options: ReadOptions): Promise<Page> {
    const position = await this.position(room);
    return await retryLocked(() => this.#readFrom(room, position, options));
  }

  async #readFrom(room: string, { epoch, offset }: Position, options: ReadOptions): Promise<Page> {
    const floor = Math.max(oldestKept(offset, this.#options.historyLimit), (options.after ?? 0) + 1);
    const prefix = [NS, "msg", room, epoch];
    const end = options.before === undefined ? undefined : [...prefix, options.before];
    const forward = options.after !== undefined;
    const selector = end ? { start: [...prefix, floor], end } : { prefix, start: [...prefix, floor] };
    const ttl = this.#options.historyTtlMs;
    const minTs = ttl === undefined ? -Infinity : this.#options.clock.now() - ttl;
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
    for await (const entry of this.#kv.list<Uint8Array>(selector, { reverse: !forward, batchSize: 200 })) {
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

  async reset(room: string): Promise<Position> {
    const fresh: Meta = { epoch: newEpoch(), offset: 0 };
    await retryLocked(() => this.#kv.set([NS, "meta", room], fresh));
    this.#meta.delete(room);
    this.#multiChunk.delete(room);
    // Only older epochs: messages of the new one may already be arriving.
    await retryLocked(() => this.#deleteRange([NS, "msg", room], undefined, (key) => key[3] === fresh.epoch));
    return fresh;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#draining;
    await Promise.allSettled([...this.#sweeps]);
    this.#kv.close();
  }
}
