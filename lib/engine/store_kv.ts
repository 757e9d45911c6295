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
import type { Histogram } from "../metrics.ts";
import type { NewMessage, Position, StoredMessage } from "../protocol.ts";
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
/** Per atomic operation: well under Deno KV's 1000 mutations and 800 KiB. */
const BATCH_MAX_MUTATIONS = 400;
const BATCH_MAX_BYTES = 500_000;
/** Trim in steps so that trimming costs one list + delete per this many appends. */
const TRIM_STEP = 32;
const MAX_ATTEMPTS = 50;

interface Meta {
  epoch: string;
  offset: number;
}

interface CachedMeta {
  value: Meta | null;
  versionstamp: string | null;
}

interface Pending {
  message: NewMessage;
  resolve(stored: StoredMessage): void;
  reject(error: unknown): void;
}

export interface KvStoreOptions extends RetentionOptions {
  clock: Clock;
  /** Observes each batch commit's latency in seconds. */
  appendLatency?: Histogram;
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

export class KvStore implements Store {
  readonly #kv: Deno.Kv;
  readonly #options: KvStoreOptions;
  readonly #queues = new Map<string, Pending[]>();
  readonly #draining = new Map<string, Promise<void>>();
  readonly #meta = new Map<string, CachedMeta>();
  readonly #trimmed = new Map<string, number>();
  readonly #trims = new Set<Promise<void>>();
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

  append(message: NewMessage): Promise<StoredMessage> {
    return new Promise((resolve, reject) => {
      const pending: Pending = { message, resolve, reject };
      const queue = this.#queues.get(message.room);
      if (queue) queue.push(pending);
      else this.#queues.set(message.room, [pending]);
      if (!this.#draining.has(message.room)) {
        this.#draining.set(message.room, this.#drain(message.room));
      }
    });
  }

  async #drain(room: string): Promise<void> {
    // Let every append queued in this turn of the event loop join the first batch.
    await Promise.resolve();
    try {
      let queue = this.#queues.get(room);
      while (queue && queue.length > 0) {
        const batch = queue.splice(0, this.#batchSize(queue));
        const started = performance.now();
        try {
          const stored = await this.#commit(room, batch);
          this.#options.appendLatency?.observe((performance.now() - started) / 1000);
          for (let i = 0; i < batch.length; i++) batch[i]?.resolve(stored[i] as StoredMessage);
          this.#scheduleTrim(room, stored[stored.length - 1]);
        } catch (error) {
          this.#meta.delete(room);
          for (const p of batch) p.reject(error);
        }
        queue = this.#queues.get(room);
      }
    } finally {
      this.#queues.delete(room);
      this.#draining.delete(room);
    }
  }

  #batchSize(queue: Pending[]): number {
    let mutations = 1;
    let bytes = 0;
    let n = 0;
    for (const p of queue) {
      // Chunks are encoded without epoch/offset yet; the final JSON adds ≤ 64 bytes.
      const size = JSON.stringify(p.message).length * 3 + 64;
      const chunks = Math.ceil(size / CHUNK_BYTES);
      if (n > 0 && (mutations + chunks > BATCH_MAX_MUTATIONS || bytes + size > BATCH_MAX_BYTES)) break;
      mutations += chunks;
      bytes += size;
      n++;
    }
    return Math.max(1, n);
  }

  async #readMeta(room: string): Promise<CachedMeta> {
    const entry = await retryLocked(() => this.#kv.get([NS, "meta", room]));
    const cached = { value: isMeta(entry.value) ? entry.value : null, versionstamp: entry.versionstamp };
    this.#meta.set(room, cached);
    return cached;
  }

  async #commit(room: string, batch: Pending[]): Promise<StoredMessage[]> {
    const ttl = this.#options.historyTtlMs;
    const setOptions = ttl === undefined ? undefined : { expireIn: ttl };
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const meta = this.#meta.get(room) ?? await this.#readMeta(room);
      const epoch = meta.value?.epoch ?? newEpoch();
      let offset = meta.value?.offset ?? 0;
      const op = this.#kv.atomic().check({ key: [NS, "meta", room], versionstamp: meta.versionstamp });
      const stored = batch.map((p) => stamp(p.message, epoch, ++offset));
      for (const message of stored) {
        const chunks = split(encoder.encode(JSON.stringify(message)));
        chunks.forEach((chunk, i) => op.set([NS, "msg", room, epoch, message.offset, i], chunk, setOptions));
      }
      const next: Meta = { epoch, offset };
      op.set([NS, "meta", room], next);
      const result = await retryLocked(() => op.commit());
      if (result.ok) {
        this.#meta.set(room, { value: next, versionstamp: result.versionstamp });
        return stored;
      }
      this.#meta.delete(room);
    }
    throw new Error(`KV append to room ${room} conflicted ${MAX_ATTEMPTS} times`);
  }

  #scheduleTrim(room: string, last: StoredMessage | undefined): void {
    if (!last) return;
    const floor = oldestKept(last.offset, this.#options.historyLimit) - 1;
    const done = this.#trimmed.get(room) ?? 0;
    if (floor - done < TRIM_STEP) return;
    this.#trimmed.set(room, floor);
    const trim = this.#deleteRange([NS, "msg", room, last.epoch], [NS, "msg", room, last.epoch, floor + 1])
      .catch((error) => console.error(`roomcast: trimming history of ${room} failed:`, error))
      .finally(() => this.#trims.delete(trim));
    this.#trims.add(trim);
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
    this.#trimmed.delete(room);
    // Only older epochs: messages of the new one may already be arriving.
    await retryLocked(() => this.#deleteRange([NS, "msg", room], undefined, (key) => key[3] === fresh.epoch));
    return fresh;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#draining.values()]);
    await Promise.allSettled([...this.#trims]);
    this.#kv.close();
  }
}
