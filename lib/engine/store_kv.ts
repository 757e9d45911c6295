/**
 * The Deno KV store: a local SQLite file by default, the platform's KV on Deno Deploy. Appends are
 * committed in batches across rooms, one atomic operation per batch, each room's part guarded by a
 * check on its meta key (layout: kv_format.ts; shared mechanics: kv_history.ts). Two ways to
 * number messages:
 *
 * - `sequencer: "kv"` (here): the commit assigns the offsets, so any number of isolates and
 *   processes can share the KV; an append resolves (and the message is delivered) after its commit.
 * - `sequencer: "local"` (kv_local.ts): this process numbers messages itself, resolves the append at
 *   once and commits right after, so storage is off the delivery path. It holds `<path>.lock`, so
 *   one process owns a KV file.
 */
import type { NewMessage, Position, StoredMessage } from "../protocol.ts";
import {
  highWater,
  isMeta,
  type Meta,
  metaKey,
  NS,
  number,
  type Pending,
  pending,
  pendingSize,
  retryLocked,
} from "./kv_format.ts";
import { batchSize, type CachedMeta, KvHistory, type KvStoreOptions } from "./kv_history.ts";
import { LocalSequencer } from "./kv_local.ts";
import { keptHoles, newEpoch, type OnDurable, type Page, type ReadOptions, type Store } from "./store.ts";

export type { KvStoreOptions } from "./kv_history.ts";

const MAX_ATTEMPTS = 50;

function lockPath(path: string): string {
  return `${path}.lock`;
}

export class KvStore implements Store {
  readonly #kv: Deno.Kv;
  readonly #history: KvHistory;
  readonly #local: LocalSequencer | undefined;
  readonly #lock: Deno.FsFile | undefined;
  /** Sequencer "kv": appends waiting to be numbered and stored, in call order. */
  #queue: Pending[] = [];
  #draining: Promise<void> | undefined;
  /** Sequencer "kv": the meta of each room as last read or written. */
  readonly #meta = new Map<string, CachedMeta>();
  #closed = false;

  constructor(kv: Deno.Kv, options: KvStoreOptions, lock?: Deno.FsFile) {
    this.#kv = kv;
    this.#history = new KvHistory(kv, options);
    this.#local = options.sequencer === "local" ? new LocalSequencer(this.#history) : undefined;
    this.#lock = lock;
  }

  /** Opens the KV at `path` (`undefined`: the platform's default KV). The local sequencer takes
   * `<path>.lock` and fails at once if another process holds it. */
  static async open(path: string | undefined, options: KvStoreOptions): Promise<KvStore> {
    const file = path !== undefined && path !== ":memory:";
    if (file) {
      const dir = path.replace(/[^/\\]*$/, "");
      if (dir) await Deno.mkdir(dir, { recursive: true });
    }
    let lock: Deno.FsFile | undefined;
    if (file && options.sequencer === "local") {
      lock = await Deno.open(lockPath(path), { create: true, write: true });
      if (!(await lock.tryLock(true))) {
        lock.close();
        throw new Error(
          `${path} is in use by another roomcast process. With ROOMCAST_SEQUENCER=local (the default for a ` +
            `local KV file) one process owns the file: stop the other one, or set ROOMCAST_SEQUENCER=kv in ` +
            `every process that shares it.`,
        );
      }
    }
    try {
      return await KvStore.over(await Deno.openKv(path), options, lock);
    } catch (error) {
      lock?.close();
      throw error;
    }
  }

  /** A store over a KV already open (its owner's to release with `close()`): the local sequencer
   * first files what an unclean stop left in its commit log. `open` uses it; so do tests that
   * hand it a KV that fails on purpose. */
  static async over(kv: Deno.Kv, options: KvStoreOptions, lock?: Deno.FsFile): Promise<KvStore> {
    const store = new KvStore(kv, options, lock);
    await store.#history.loadSalt();
    await store.#local?.start();
    return store;
  }

  appendNow(message: NewMessage): StoredMessage | undefined {
    return this.#local?.appendNow(message);
  }

  append(message: NewMessage, onDurable?: OnDurable): Promise<StoredMessage> {
    return new Promise((resolve, reject) => {
      const p = pending(message, resolve, reject, onDurable);
      if (this.#local) return this.#local.append(p);
      try {
        // Sizes it for batching, which encodes it: a message that can't be encoded fails here, alone.
        pendingSize(p);
      } catch (error) {
        onDurable?.(error);
        return reject(error);
      }
      this.#queue.push(p);
      this.#draining ??= this.#drain();
    });
  }

  /** One commit at a time takes everything queued (up to the batch limits), across rooms, so the
   * commit rate stays low however many rooms publish. */
  async #drain(): Promise<void> {
    // Let every append queued in this turn of the event loop join the first batch.
    await Promise.resolve();
    try {
      while (this.#queue.length > 0) await this.#commit(this.#queue.splice(0, batchSize(this.#queue)));
    } finally {
      this.#draining = undefined;
    }
  }

  /** Numbers the batch inside the commit, guarded by each room's meta; renumbers on a conflict. */
  async #commit(batch: Pending[]): Promise<void> {
    const started = performance.now();
    const rooms = [...new Set(batch.map((p) => p.message.room))];
    try {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const missing = rooms.filter((room) => !this.#meta.has(room));
        for (const [room, meta] of await this.#history.readMetas(missing)) await this.#cache(room, meta);
        const op = this.#kv.atomic();
        const next = new Map<string, Meta>();
        for (const room of rooms) {
          const cached = this.#meta.get(room);
          op.check({ key: metaKey(room), versionstamp: cached?.versionstamp ?? null });
          const value = cached?.value;
          const meta: Meta = {
            epoch: value?.epoch ?? this.#history.firstEpoch(room),
            offset: value ? highWater(value) : 0,
          };
          if (value?.holes?.length) meta.holes = value.holes;
          next.set(room, meta);
        }
        const budget = this.#history.trimBudget();
        for (const p of batch) {
          const meta = next.get(p.message.room) as Meta;
          meta.offset += 1;
          number(p, meta.epoch, meta.offset);
          this.#history.put(op, p, budget);
        }
        for (const [room, meta] of next) {
          if (meta.holes) meta.holes = keptHoles(meta.holes, meta.offset, this.#history.options.historyLimit);
          op.set(metaKey(room), meta);
        }
        const result = await this.#commitOrFind(op, batch);
        if (result.ok) {
          for (const [room, meta] of next) {
            if (result.versionstamp) this.#meta.set(room, { value: meta, versionstamp: result.versionstamp });
            else this.#meta.delete(room);
          }
          this.#history.stored(batch, started);
          for (const p of batch) {
            p.onDurable?.();
            p.resolve(p.stored as StoredMessage);
          }
          return;
        }
        // Another isolate or process appended to one of these rooms: re-read and renumber.
        for (const room of rooms) this.#meta.delete(room);
      }
      throw new Error(`KV append of ${batch.length} messages conflicted ${MAX_ATTEMPTS} times`);
    } catch (error) {
      for (const p of batch) {
        this.#meta.delete(p.message.room);
        p.onDurable?.(error);
        p.reject(error);
      }
    }
  }

  /** Commits `op`, which stores `batch`. When the commit throws, its outcome is unknown (the KV may
   * have applied it and failed to answer): the batch's first message tells, since a commit applies
   * whole or not at all. Applied, it counts as committed (`versionstamp` null: unknown); else the
   * error stands. */
  async #commitOrFind(
    op: Deno.AtomicOperation,
    batch: Pending[],
  ): Promise<Deno.KvCommitResult | Deno.KvCommitError | { ok: true; versionstamp: null }> {
    try {
      return await retryLocked(() => op.commit());
    } catch (error) {
      const first = batch[0]?.stored;
      if (first && await this.#history.holds(first)) return { ok: true, versionstamp: null };
      throw error;
    }
  }

  /** Caches the room's stored meta as settled (`KvHistory.settled`): numbering continues above
   * anything a local sequencer handed out, and what it lost is a hole. The versionstamp stays the
   * stored one, so the next commit checks against it and writes the settled meta. */
  async #cache(room: string, { value, versionstamp }: CachedMeta): Promise<Meta | null> {
    const settled = value && await this.#history.settled(room, value);
    this.#meta.set(room, { value: settled, versionstamp });
    if (settled) this.#history.setHoles(room, settled.epoch, settled.holes ?? []);
    return settled;
  }

  /** Reads the room's meta; writes nothing (a room without one has its `firstEpoch`). */
  async position(room: string): Promise<Position> {
    if (this.#local) return await this.#local.position(room);
    const entry = await retryLocked(() => this.#kv.get(metaKey(room)));
    const stored = isMeta(entry.value) ? entry.value : null;
    if (!stored) return { epoch: this.#history.firstEpoch(room), offset: 0 };
    const value = await this.#cache(room, { value: stored, versionstamp: entry.versionstamp }) as Meta;
    return { epoch: value.epoch, offset: value.offset };
  }

  async read(room: string, options: ReadOptions): Promise<Page> {
    // The local sequencer may have handed out messages not committed yet: they come first.
    await this.#local?.flush(room);
    const position = await this.position(room);
    return await retryLocked(() => this.#history.read(room, position, options));
  }

  async reset(room: string): Promise<Position> {
    let epoch: string;
    if (this.#local) epoch = await this.#local.reset(room);
    else {
      epoch = newEpoch();
      await retryLocked(() => this.#kv.set(metaKey(room), { epoch, offset: 0 }));
      this.#meta.delete(room);
      this.#history.forget(room);
    }
    // Only older epochs: messages of the new one may already be arriving.
    await retryLocked(() => this.#history.deleteRange([NS, "msg", room], undefined, (key) => key[3] === epoch));
    return { epoch, offset: 0 };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#local) await this.#local.close();
    while (this.#draining) await this.#draining;
    await this.#history.settle();
    this.#kv.close();
    this.#lock?.close();
  }
}
