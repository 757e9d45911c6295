/**
 * The Deno KV store: a local SQLite file by default, the platform's KV on Deno Deploy. Appends are
 * queued and committed in batches across rooms, one atomic operation per batch, each room's part
 * guarded by a check on its meta key (layout: kv_format.ts). Two ways to number messages:
 *
 * - `sequencer: "kv"`: the commit assigns the offsets, so any number of isolates and processes can
 *   share the KV; an append resolves (and the message is delivered) after its commit.
 * - `sequencer: "local"`: this process numbers messages itself, resolves the append at once and
 *   commits right after, so storage is off the delivery path. It holds a lock file next to the KV
 *   (one writer per file) and keeps a reservation in each room's meta, ahead of every offset it
 *   has handed out: after a crash it numbers above anything it may have delivered, so an offset
 *   never names two messages; messages lost in the crash are a hole, and recoveries across it
 *   answer `recovered: false`. A clean `close()` stores everything and gives the reservation back.
 */
import type { Clock } from "../clock.ts";
import type { Sequencer } from "../config.ts";
import type { Counter, Histogram } from "../metrics.ts";
import type { NewMessage, Position, StoredMessage } from "../protocol.ts";
import {
  chunkCount,
  highWater,
  isMeta,
  join,
  type Meta,
  metaKey,
  NS,
  number,
  type Pending,
  pending,
  pendingSize,
  retryLocked,
  split,
} from "./kv_format.ts";
import {
  newEpoch,
  oldestKept,
  type OnDurable,
  type Page,
  type ReadOptions,
  type RetentionOptions,
  type Store,
} from "./store.ts";

/** Per atomic operation, under Deno KV's limits (100 checks, 1000 mutations, 800 KiB). */
const BATCH_MAX_ROOMS = 64;
const BATCH_MAX_MUTATIONS = 800;
const BATCH_MAX_BYTES = 600_000;
const MAX_ATTEMPTS = 50;
/** Offsets a local sequencer reserves beyond what it has handed out, at least and at most: twice
 * what the room used since its last reservation. A crash skips at most this many offsets more than
 * it lost (and the history window, counted in offsets, shows that many fewer messages). */
const RESERVE_MIN = 64;
const RESERVE_MAX = 4096;

interface CachedMeta {
  value: Meta | null;
  versionstamp: string | null;
}

/** A room numbered by this process (local sequencer). */
interface Sequence {
  room: string;
  loaded: boolean;
  loading: Promise<void> | undefined;
  epoch: string;
  /** The last offset handed out. */
  assigned: number;
  /** The last offset stored, as the meta says. */
  durable: number;
  /** Offsets up to here are reserved in the stored meta: handing them out needs no commit. */
  reserved: number;
  /** The size of the last reservation, and the offsets handed out since it was made. */
  step: number;
  sinceReserved: number;
  versionstamp: string | null;
  /** Appends waiting for the load or for a larger reservation, in call order. */
  waiting: Pending[];
  /** For `flush`: appends numbered, and of those, stored or given up. */
  numbered: number;
  settled: number;
  flushes: { target: number; resolve(): void }[];
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

function lockPath(path: string): string {
  return `${path}.lock`;
}

/** Local sequencer: the least time between the starts of two commits, unless `LOCAL_COMMIT_EARLY`
 * messages are queued or something waits for a commit (a new room, a reset, a read, an HTTP
 * publish). */
const LOCAL_COMMIT_INTERVAL_MS = 50;
const LOCAL_COMMIT_EARLY = 256;

export class KvStore implements Store {
  readonly #kv: Deno.Kv;
  readonly #options: KvStoreOptions;
  readonly #local: boolean;
  readonly #lock: Deno.FsFile | undefined;
  /** Sequencer "kv": appends waiting to be numbered and stored. "local": numbered, not yet stored. */
  #queue: Pending[] = [];
  #draining: Promise<void> | undefined;
  /** Sequencer "kv": the meta of each room as last read or written. */
  readonly #meta = new Map<string, CachedMeta>();
  /** Sequencer "local": the rooms this process numbers. */
  readonly #sequences = new Map<string, Sequence>();
  /** Sequencer "local": rooms that need a load or a reservation commit. */
  readonly #wanting = new Set<Sequence>();
  /** Sequencer "local": resets waiting for the committer. */
  #resets: { seq: Sequence; done(epoch: string): void; failed(error: unknown): void }[] = [];
  /** Rooms whose history below the retention floor was swept once by this instance. */
  readonly #swept = new Set<string>();
  readonly #sweeps = new Set<Promise<void>>();
  readonly #warned = new Set<string>();
  /** Offsets of messages stored in more than one chunk, per room: the only ones trimming can't
   * delete by key alone. In memory only; the start-up sweep covers what a restart forgets. */
  readonly #multiChunk = new Map<string, Map<number, number>>();
  #closed = false;
  /** Ends the committer's pause early. */
  #wake: (() => void) | undefined;
  /** Sequencer "local": something waits for the next commit. */
  #hurry = false;

  constructor(kv: Deno.Kv, options: KvStoreOptions, lock?: Deno.FsFile) {
    this.#kv = kv;
    this.#options = options;
    this.#local = options.sequencer === "local";
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
      return new KvStore(await Deno.openKv(path), options, lock);
    } catch (error) {
      lock?.close();
      throw error;
    }
  }

  append(message: NewMessage, onDurable?: OnDurable): Promise<StoredMessage> {
    return new Promise((resolve, reject) => {
      const p = pending(message, resolve, reject, onDurable);
      if (this.#local) this.#appendLocal(p);
      else this.#queue.push(p);
      this.#draining ??= this.#drain();
    });
  }

  #urgent(): boolean {
    const hurry = this.#hurry || this.#closed || this.#wanting.size > 0 || this.#resets.length > 0;
    this.#hurry = false;
    return hurry;
  }

  #nap(ms: number): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    const timer = setTimeout(resolve, ms);
    this.#wake = resolve;
    return promise.finally(() => {
      clearTimeout(timer);
      this.#wake = undefined;
    });
  }

  /** Asks the committer not to pause before its next commit. */
  #hurryUp(): void {
    this.#hurry = true;
    this.#wake?.();
  }

  /** One commit at a time takes everything queued (up to the batch limits), across rooms, so the
   * commit rate stays low however many rooms publish. */
  async #drain(): Promise<void> {
    // Let every append queued in this turn of the event loop join the first batch.
    await Promise.resolve();
    try {
      while (this.#queue.length > 0 || this.#wanting.size > 0 || this.#resets.length > 0) {
        if (!this.#local) {
          await this.#commitNumbering(this.#queue.splice(0, this.#batchSize()));
          continue;
        }
        const started = performance.now();
        await this.#commitLocal();
        // Nothing waits for these commits but durability: fewer, larger ones cost less CPU.
        const rest = LOCAL_COMMIT_INTERVAL_MS - (performance.now() - started);
        if (rest > 0 && this.#queue.length < LOCAL_COMMIT_EARLY && !this.#urgent()) await this.#nap(rest);
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
      const size = pendingSize(p);
      const newRoom = !rooms.has(p.message.room);
      // Its chunks, the delete of the message it pushes out of the window, and the room's meta.
      const need = 2 * chunkCount(size) + (newRoom ? 1 : 0);
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

  /** Reads the meta of `rooms` (ten per `getMany`, KV's limit). */
  async #readMetas(rooms: string[]): Promise<Map<string, CachedMeta>> {
    const out = new Map<string, CachedMeta>();
    const reads = [];
    for (let i = 0; i < rooms.length; i += 10) {
      const group = rooms.slice(i, i + 10);
      reads.push(
        retryLocked(() => this.#kv.getMany(group.map(metaKey))).then((entries) =>
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

  /** Writes a numbered message (and trims the one it pushes out of the window) into `op`. */
  #put(op: Deno.AtomicOperation, p: Pending): void {
    const { room, epoch, offset } = p.stored as StoredMessage;
    const ttl = this.#options.historyTtlMs;
    const chunks = split(p.bytes as Uint8Array);
    const key = [NS, "msg", room, epoch, offset];
    chunks.forEach((chunk, i) => op.set([...key, i], chunk, ttl === undefined ? undefined : { expireIn: ttl }));
    if (chunks.length > 1) this.#chunked(room).set(offset, chunks.length);
    this.#trimInto(op, room, epoch, offset - this.#options.historyLimit);
  }

  #stored(batch: Pending[], started: number): void {
    if (batch.length === 0) return;
    this.#options.appendLatency?.observe((performance.now() - started) / 1000);
    this.#options.appends?.inc(batch.length);
    this.#sweepOnce(batch);
  }

  // ── sequencer "kv": the commit numbers ────────────────────────────────────────

  async #commitNumbering(batch: Pending[]): Promise<void> {
    const started = performance.now();
    const rooms = [...new Set(batch.map((p) => p.message.room))];
    try {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const missing = rooms.filter((room) => !this.#meta.has(room));
        for (const [room, meta] of await this.#readMetas(missing)) this.#meta.set(room, meta);
        const op = this.#kv.atomic();
        const next = new Map<string, Meta>();
        for (const room of rooms) {
          const cached = this.#meta.get(room);
          op.check({ key: metaKey(room), versionstamp: cached?.versionstamp ?? null });
          // Above any offset a local sequencer may have handed out.
          const value = cached?.value;
          next.set(room, { epoch: value?.epoch ?? newEpoch(), offset: value ? highWater(value) : 0 });
        }
        for (const p of batch) {
          const meta = next.get(p.message.room) as Meta;
          meta.offset += 1;
          number(p, meta.epoch, meta.offset);
          this.#put(op, p);
        }
        for (const [room, meta] of next) op.set(metaKey(room), meta);
        const result = await retryLocked(() => op.commit());
        if (result.ok) {
          for (const [room, meta] of next) this.#meta.set(room, { value: meta, versionstamp: result.versionstamp });
          this.#stored(batch, started);
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

  // ── sequencer "local": this process numbers, the commit follows ──────────────

  #sequence(room: string): Sequence {
    let seq = this.#sequences.get(room);
    if (!seq) {
      seq = {
        room,
        loaded: false,
        loading: undefined,
        epoch: "",
        assigned: 0,
        durable: 0,
        reserved: 0,
        step: RESERVE_MIN,
        sinceReserved: 0,
        versionstamp: null,
        waiting: [],
        numbered: 0,
        settled: 0,
        flushes: [],
      };
      this.#sequences.set(room, seq);
    }
    return seq;
  }

  #appendLocal(p: Pending): void {
    const seq = this.#sequence(p.message.room);
    if (seq.loaded && seq.waiting.length === 0 && seq.assigned < seq.reserved) this.#number(seq, p);
    else {
      seq.waiting.push(p);
      this.#wanting.add(seq);
      this.#hurryUp();
    }
    if (p.onDurable) this.#hurryUp();
  }

  /** Hands out the next offset: the append resolves now, the message is stored by a later commit. */
  #number(seq: Sequence, p: Pending): void {
    seq.assigned += 1;
    seq.numbered += 1;
    seq.sinceReserved += 1;
    number(p, seq.epoch, seq.assigned);
    this.#queue.push(p);
    p.resolve(p.stored as StoredMessage);
  }

  /** Reads the meta of rooms not loaded yet; numbering continues above its reservation. */
  async #load(seqs: Sequence[]): Promise<void> {
    const need = seqs.filter((s) => !s.loaded && !s.loading);
    if (need.length > 0) {
      const loading = this.#readMetas(need.map((s) => s.room)).then((metas) => {
        for (const seq of need) this.#adopt(seq, metas.get(seq.room) ?? { value: null, versionstamp: null });
      }).finally(() => need.forEach((s) => s.loading = undefined));
      for (const seq of need) seq.loading = loading;
    }
    await Promise.all(seqs.map((s) => s.loading));
  }

  /** Takes the stored meta as this room's state. In the same epoch nothing handed out is handed
   * out again; nothing above the high-water mark is reserved until a commit says so. */
  #adopt(seq: Sequence, { value, versionstamp }: CachedMeta): void {
    const high = value ? highWater(value) : 0;
    if (seq.loaded && (value === null || value.epoch === seq.epoch)) {
      seq.assigned = Math.max(seq.assigned, high);
      seq.durable = value?.offset ?? seq.durable;
    } else {
      seq.epoch = value?.epoch ?? newEpoch();
      seq.assigned = high;
      seq.durable = value?.offset ?? 0;
    }
    seq.reserved = seq.assigned;
    seq.versionstamp = versionstamp;
    seq.loaded = true;
  }

  async #loaded(room: string): Promise<Sequence> {
    const seq = this.#sequence(room);
    if (!seq.loaded) await this.#load([seq]);
    return seq;
  }

  async #commitLocal(): Promise<void> {
    if (this.#resets.length > 0) return await this.#commitResets();
    const unloaded = [...this.#wanting].filter((s) => !s.loaded);
    if (unloaded.length > 0) {
      try {
        await this.#load(unloaded);
      } catch (error) {
        for (const seq of unloaded) this.#giveUpWaiting(seq, error);
        return;
      }
    }
    let batch = this.#queue.splice(0, this.#batchSize());
    const rooms = new Set<Sequence>();
    for (const p of batch) rooms.add(this.#sequence(p.message.room));
    for (const seq of this.#wanting) {
      if (rooms.size >= BATCH_MAX_ROOMS) break;
      rooms.add(seq);
    }
    const started = performance.now();
    let failure: unknown = new Error("KV commit failed");
    for (let attempt = 0; attempt < MAX_ATTEMPTS && rooms.size > 0; attempt++) {
      const op = this.#kv.atomic();
      // Each room's meta is checked (one writer), and written only when its reservation runs low.
      const reserving = new Map<Sequence, Required<Meta>>();
      for (const seq of rooms) {
        op.check({ key: metaKey(seq.room), versionstamp: seq.versionstamp });
        const needed = seq.assigned + seq.waiting.length;
        if (seq.reserved - needed >= seq.step / 2 && seq.versionstamp !== null) continue;
        const step = Math.min(RESERVE_MAX, Math.max(RESERVE_MIN, 2 * (seq.sinceReserved + seq.waiting.length)));
        const meta = { epoch: seq.epoch, offset: seq.durable, reserved: needed + step };
        op.set(metaKey(seq.room), meta);
        reserving.set(seq, meta);
      }
      for (const p of batch) this.#put(op, p);
      let outcome: { applied: boolean; versionstamp: string | null } | undefined;
      try {
        const result = await retryLocked(() => op.commit());
        if (result.ok) outcome = { applied: true, versionstamp: result.versionstamp };
        else failure = new Error("KV commit conflicted: another writer changed the room");
      } catch (error) {
        failure = error;
      }
      try {
        outcome ??= await this.#reconcile(rooms, reserving, batch);
      } catch (error) {
        failure = error;
      }
      if (outcome?.applied) return this.#committedLocal(batch, rooms, reserving, outcome.versionstamp, started);
      batch = batch.filter((p) => rooms.has(this.#sequence(p.message.room)));
    }
    if (rooms.size === 0) return; // every room was taken over by another writer
    // The KV keeps failing: these messages were delivered but are not stored.
    console.error(`roomcast: storing ${batch.length} messages failed:`, failure);
    this.#lose(batch, failure);
    for (const seq of rooms) this.#giveUpWaiting(seq, failure);
  }

  /** After a commit that failed or whose outcome is unknown: finds out from the KV whether it
   * applied (its first message, or the metas it wrote, are there). If not, rooms another writer
   * changed are taken over (their numbered messages are lost) and removed from `rooms`; the rest
   * can be retried. */
  async #reconcile(
    rooms: Set<Sequence>,
    reserving: Map<Sequence, Required<Meta>>,
    batch: Pending[],
  ): Promise<{ applied: boolean; versionstamp: string | null }> {
    const current = await this.#readMetas([...rooms].map((s) => s.room));
    const now = (seq: Sequence) => current.get(seq.room) ?? { value: null, versionstamp: null };
    const first = batch[0]?.stored;
    const applied = first
      ? (await retryLocked(() => this.#kv.get([NS, "msg", first.room, first.epoch, first.offset, 0]))).versionstamp !==
        null
      : [...reserving].every(([seq, meta]) => {
        const { value, versionstamp } = now(seq);
        return versionstamp !== seq.versionstamp && value?.epoch === meta.epoch && value.reserved === meta.reserved;
      });
    if (applied) {
      const [written] = reserving.keys();
      return { applied, versionstamp: written ? now(written).versionstamp : null };
    }
    for (const seq of [...rooms]) {
      if (now(seq).versionstamp === seq.versionstamp) continue;
      rooms.delete(seq);
      this.#takeOver(seq, now(seq), batch);
    }
    return { applied, versionstamp: null };
  }

  /** Another writer changed the room (a second process on the file with sequencer "kv", or a reset
   * elsewhere): what this process numbered and has not stored can't be stored any more. */
  #takeOver(seq: Sequence, current: CachedMeta, batch: Pending[]): void {
    if (!this.#warned.has(seq.room)) {
      this.#warned.add(seq.room);
      console.warn(
        `roomcast: room ${seq.room} was changed by another writer of the KV; its messages not yet stored are lost ` +
          `(use ROOMCAST_SEQUENCER=kv in every process that shares a KV)`,
      );
    }
    const mine = (p: Pending) => p.message.room === seq.room;
    const lost = [...batch.filter(mine), ...this.#queue.filter(mine)];
    this.#queue = this.#queue.filter((p) => !mine(p));
    this.#lose(lost, new Error(`room ${seq.room} was changed by another writer`));
    this.#adopt(seq, current);
    // Store a reservation above everything handed out before numbering again.
    this.#wanting.add(seq);
  }

  #committedLocal(
    batch: Pending[],
    rooms: Set<Sequence>,
    reserving: Map<Sequence, Required<Meta>>,
    versionstamp: string | null,
    started: number,
  ): void {
    for (const [seq, meta] of reserving) {
      seq.versionstamp = versionstamp;
      seq.step = meta.reserved - seq.reserved;
      seq.sinceReserved = 0;
      seq.reserved = meta.reserved;
    }
    for (const p of batch) {
      const seq = this.#sequence(p.message.room);
      seq.durable = Math.max(seq.durable, (p.stored as StoredMessage).offset);
    }
    this.#stored(batch, started);
    for (const p of batch) p.onDurable?.();
    this.#settle(batch);
    for (const seq of rooms) {
      while (seq.waiting.length > 0 && seq.assigned < seq.reserved) this.#number(seq, seq.waiting.shift() as Pending);
      if (seq.waiting.length === 0) this.#wanting.delete(seq);
    }
  }

  /** Numbered messages that will never be stored: delivered already, so they leave a hole. */
  #lose(lost: Pending[], error: unknown): void {
    if (lost.length === 0) return;
    this.#options.lost?.inc(lost.length);
    for (const p of lost) p.onDurable?.(error);
    this.#settle(lost);
  }

  /** Appends still waiting for an offset when the KV fails: refused, never delivered. */
  #giveUpWaiting(seq: Sequence, error: unknown): void {
    const waiting = seq.waiting;
    seq.waiting = [];
    this.#wanting.delete(seq);
    seq.numbered += waiting.length;
    seq.settled += waiting.length;
    for (const p of waiting) {
      p.onDurable?.(error);
      p.reject(error);
    }
    this.#wakeFlushes(seq);
  }

  #settle(done: Pending[]): void {
    const touched = new Set<Sequence>();
    for (const p of done) {
      const seq = this.#sequence(p.message.room);
      seq.settled += 1;
      touched.add(seq);
    }
    for (const seq of touched) this.#wakeFlushes(seq);
  }

  #wakeFlushes(seq: Sequence): void {
    if (seq.flushes.length === 0) return;
    const ready = seq.flushes.filter((f) => f.target <= seq.settled);
    seq.flushes = seq.flushes.filter((f) => f.target > seq.settled);
    for (const f of ready) f.resolve();
  }

  /** Resolves once every append to `room` made so far is stored or given up (local sequencer). */
  #flush(seq: Sequence): Promise<void> {
    const target = seq.numbered + seq.waiting.length;
    if (seq.settled >= target) return Promise.resolve();
    this.#hurryUp();
    return new Promise((resolve) => seq.flushes.push({ target, resolve }));
  }

  async #commitResets(): Promise<void> {
    const resets = this.#resets;
    this.#resets = [];
    for (const { seq, done, failed } of resets) {
      // Messages of the old epoch not stored yet are dropped with its history.
      const old = this.#queue.filter((p) => p.message.room === seq.room);
      this.#queue = this.#queue.filter((p) => p.message.room !== seq.room);
      for (const p of old) p.onDurable?.();
      this.#settle(old);
      const fresh = { epoch: newEpoch(), offset: 0, reserved: 0 };
      try {
        const result = await retryLocked(() => this.#kv.set(metaKey(seq.room), fresh));
        this.#adopt(seq, { value: fresh, versionstamp: result.versionstamp });
        this.#multiChunk.delete(seq.room);
        if (seq.waiting.length > 0) this.#wanting.add(seq);
        done(fresh.epoch);
      } catch (error) {
        failed(error);
      }
    }
  }

  // ── both ─────────────────────────────────────────────────────────────────────

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
  #sweepOnce(batch: Pending[]): void {
    for (const p of batch) {
      const { room, epoch, offset } = p.stored as StoredMessage;
      if (this.#swept.has(room)) continue;
      this.#swept.add(room);
      const floor = oldestKept(offset, this.#options.historyLimit);
      const sweep = this.#deleteRange([NS, "msg", room, epoch], [NS, "msg", room, epoch, floor])
        .catch((error) => console.error(`roomcast: sweeping old history of ${room} failed:`, error))
        .finally(() => this.#sweeps.delete(sweep));
      this.#sweeps.add(sweep);
    }
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
    if (this.#local) {
      const seq = await this.#loaded(room);
      // A room being joined is about to be published to: reserve offsets now, not on the first publish.
      if (seq.reserved <= seq.assigned && !this.#closed) {
        this.#wanting.add(seq);
        this.#draining ??= this.#drain();
      }
      return { epoch: seq.epoch, offset: seq.assigned };
    }
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const entry = await retryLocked(() => this.#kv.get(metaKey(room)));
      const value = isMeta(entry.value) ? entry.value : null;
      this.#meta.set(room, { value, versionstamp: entry.versionstamp });
      if (value) return { epoch: value.epoch, offset: value.offset };
      const fresh: Meta = { epoch: newEpoch(), offset: 0 };
      const result = await retryLocked(() =>
        this.#kv.atomic().check({ key: metaKey(room), versionstamp: null }).set(metaKey(room), fresh).commit()
      );
      if (result.ok) {
        this.#meta.set(room, { value: fresh, versionstamp: result.versionstamp });
        return fresh;
      }
    }
    throw new Error(`KV position of room ${room} conflicted ${MAX_ATTEMPTS} times`);
  }

  async read(room: string, options: ReadOptions): Promise<Page> {
    if (this.#local) await this.#flush(await this.#loaded(room));
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
    let epoch: string;
    if (this.#local) {
      const seq = await this.#loaded(room);
      epoch = await new Promise<string>((done, failed) => {
        this.#resets.push({ seq, done, failed });
        this.#hurryUp();
        this.#draining ??= this.#drain();
      });
    } else {
      epoch = newEpoch();
      await retryLocked(() => this.#kv.set(metaKey(room), { epoch, offset: 0 }));
      this.#meta.delete(room);
      this.#multiChunk.delete(room);
    }
    // Only older epochs: messages of the new one may already be arriving.
    await retryLocked(() => this.#deleteRange([NS, "msg", room], undefined, (key) => key[3] === epoch));
    return { epoch, offset: 0 };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#wake?.();
    while (this.#draining) await this.#draining;
    await Promise.allSettled([...this.#sweeps]);
    if (this.#local) {
      await this.#release().catch((error) => console.error("roomcast: releasing KV reservations:", error));
    }
    this.#kv.close();
    this.#lock?.close();
  }

  /** After a clean stop everything handed out is stored: the meta gets the last offset and the
   * reservation goes back, so the next start continues right after the last message. Rooms never
   * written get their epoch stored. */
  async #release(): Promise<void> {
    const seqs = [...this.#sequences.values()].filter((s) => s.loaded);
    for (let i = 0; i < seqs.length; i += 10) {
      const op = this.#kv.atomic();
      for (const seq of seqs.slice(i, i + 10)) {
        op.check({ key: metaKey(seq.room), versionstamp: seq.versionstamp });
        op.set(metaKey(seq.room), { epoch: seq.epoch, offset: seq.durable, reserved: seq.assigned });
      }
      // A conflict means another writer took these rooms over: their meta is theirs to keep.
      await retryLocked(() => op.commit());
    }
  }
}
