/**
 * `ROOMCAST_SEQUENCER=kv` (the default on Deno Deploy): the KV commit numbers messages, so any
 * number of isolates and processes can share the KV. Appends are committed in batches across
 * rooms, one atomic operation per batch, each room's part guarded by a check on its meta key
 * (renumbered on a conflict); an append resolves (and the message is delivered) after its commit.
 */
import type { NewMessage, Position } from "../../protocol.ts";
import {
  appended,
  highWater,
  isMeta,
  type Meta,
  metaKey,
  type NewEpoch,
  number,
  type Pending,
  pending,
  pendingSize,
  retryLocked,
} from "./format.ts";
import { batchSize, type CachedMeta } from "./history.ts";
import { type Appended, EngineUnavailable, keptHoles, newEpoch, type OnDurable } from "../store.ts";
import { KvStore } from "./kv_store.ts";

const MAX_ATTEMPTS = 50;
/** Tries of a reset's check-and-set of the room's meta (each conflict is a commit by another writer). */
const RESET_ATTEMPTS = 50;

export class SharedKvStore extends KvStore {
  /** Appends waiting to be numbered and stored, in call order. */
  #queue: Pending[] = [];
  #draining: Promise<void> | undefined;
  /** The meta of each room as last read or written. */
  readonly #meta = new Map<string, CachedMeta>();

  protected appendOnce(message: NewMessage, onDurable?: OnDurable): Promise<Appended> {
    return new Promise((resolve, reject) => {
      const p = pending(message, resolve, reject, onDurable);
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
        for (const [room, meta] of await this.history.readMetas(missing)) await this.#cache(room, meta);
        const op = this.kv.atomic();
        const next = new Map<string, Meta>();
        for (const room of rooms) {
          const cached = this.#meta.get(room);
          op.check({ key: metaKey(room), versionstamp: cached?.versionstamp ?? null });
          const value = cached?.value;
          const meta: Meta = {
            epoch: value?.epoch ?? this.history.firstEpoch(room),
            offset: value ? highWater(value) : 0,
          };
          if (value?.holes?.length) meta.holes = value.holes;
          next.set(room, meta);
        }
        const budget = this.history.trimBudget();
        for (const p of batch) {
          const meta = next.get(p.message.room) as Meta;
          meta.offset += 1;
          number(p, meta.epoch, meta.offset);
          this.history.put(op, p, budget);
        }
        for (const [room, meta] of next) {
          if (meta.holes) meta.holes = keptHoles(meta.holes, meta.offset, this.history.options.historyLimit);
          op.set(metaKey(room), meta);
        }
        const result = await this.#commitOrFind(op, batch);
        if (result.ok) {
          for (const [room, meta] of next) {
            if (result.versionstamp) this.#meta.set(room, { value: meta, versionstamp: result.versionstamp });
            else this.#meta.delete(room);
          }
          this.history.stored(batch, started);
          for (const p of batch) {
            p.onDurable?.();
            p.resolve(appended(p));
          }
          return;
        }
        // Another isolate or process appended to one of these rooms: re-read and renumber.
        for (const room of rooms) this.#meta.delete(room);
      }
      throw new EngineUnavailable(`KV append of ${batch.length} messages conflicted ${MAX_ATTEMPTS} times`);
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
      if (first && await this.history.holds(first)) return { ok: true, versionstamp: null };
      throw error;
    }
  }

  /** Caches the room's stored meta as settled (`KvHistory.settled`): numbering continues above
   * anything a local sequencer handed out, and what it lost is a hole. The versionstamp stays the
   * stored one, so the next commit checks against it and writes the settled meta. */
  async #cache(room: string, { value, versionstamp }: CachedMeta): Promise<Meta | null> {
    const settled = value && await this.history.settled(room, value);
    this.#meta.set(room, { value: settled, versionstamp });
    if (settled) this.history.setHoles(room, settled.epoch, settled.holes ?? []);
    return settled;
  }

  /** Reads the room's meta; writes nothing (a room without one has its `firstEpoch`). */
  async position(room: string): Promise<Position> {
    const entry = await retryLocked(() => this.kv.get(metaKey(room)));
    const stored = isMeta(entry.value) ? entry.value : null;
    if (!stored) return { epoch: this.history.firstEpoch(room), offset: 0 };
    const value = await this.#cache(room, { value: stored, versionstamp: entry.versionstamp }) as Meta;
    return { epoch: value.epoch, offset: value.offset };
  }

  /** Every message is committed before its append resolves: nothing to wait for. */
  protected flush(): Promise<void> {
    return Promise.resolve();
  }

  /** Replaces the room's meta only as it read it, so that it knows which epoch it replaced (the
   * one whose history the reset deletes): messages numbered meanwhile, or another instance's
   * reset, make it read again. */
  protected async startEpoch(room: string): Promise<NewEpoch> {
    const epoch = newEpoch();
    for (let attempt = 1;; attempt++) {
      const current = await retryLocked(() => this.kv.get(metaKey(room)));
      const result = await retryLocked(() =>
        this.kv.atomic().check(current).set(metaKey(room), { epoch, offset: 0 }).commit()
      );
      if (result.ok) {
        this.#meta.delete(room);
        this.history.forget(room);
        return { epoch, replaced: isMeta(current.value) ? current.value.epoch : undefined };
      }
      // Nothing was done: the caller may try again (HTTP: 503).
      if (attempt >= RESET_ATTEMPTS) {
        throw new EngineUnavailable(`Room ${room} kept changing while it was reset: try again`);
      }
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * attempt));
    }
  }

  protected async stop(): Promise<void> {
    while (this.#draining) await this.#draining;
  }
}
