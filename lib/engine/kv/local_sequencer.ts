/**
 * The local sequencer (`ROOMCAST_SEQUENCER=local`, the default for one process on a local KV file):
 * this process numbers each room's messages in memory, the append resolves at once (the message is
 * delivered), and a commit follows, batched across rooms, at most every LOCAL_COMMIT_INTERVAL_MS
 * unless something waits for it. A commit stores its messages in the commit log (commit_log.ts), from
 * which they are filed under their rooms' keys every few seconds, or when a read waits for them.
 *
 * Each room's meta holds a reservation above every offset handed out, written before those offsets
 * are handed out, so a restart after a crash numbers above anything that may have been delivered:
 * an offset never names two messages, and the lost ones are a hole that recoveries answer with
 * `recovered: false`. Messages are written without checks: their offsets lie inside this process's
 * stored reservation, which every other writer numbers above. A room's meta is checked whenever it
 * is written (a new reservation), so a second writer (which the lock file should prevent) is
 * noticed then: this process drops what it has not stored and continues above the other writer.
 * `close()` stores everything and gives the reservations back; so does a room idle for a minute.
 * Each room's state and its reservation arithmetic: sequence.ts.
 */
import type { NewMessage, Position, StoredMessage } from "../../protocol.ts";
import { appended, type Meta, metaKey, type NewEpoch, type Pending, pending, retryLocked } from "./format.ts";
import { BATCH_MAX_ROOMS, batchSize, type CachedMeta, type KvHistory } from "./history.ts";
import { CommitLog, type LogRecord } from "./commit_log.ts";
import { Sequence } from "./sequence.ts";
import { type Appended, newEpoch } from "../store.ts";

const MAX_ATTEMPTS = 50;
/** An append numbered at once has nobody waiting for its promise. */
const ignore = (): void => {};

/** Local sequencer: the least time between the starts of two commits, unless `LOCAL_COMMIT_EARLY`
 * messages are queued or something waits for a commit (a new room, a reset, a read, an HTTP
 * publish). */
const LOCAL_COMMIT_INTERVAL_MS = 100;
const LOCAL_COMMIT_EARLY = 256;
/** A room not used for this long gives its reservation back and leaves memory (it is read again
 * on its next use), so that rooms used once don't pile up. */
const IDLE_MS = 60_000;

export class LocalSequencer {
  readonly #history: KvHistory;
  readonly #log: CommitLog;
  /** Numbered, not yet stored, in numbering order. */
  #queue: Pending[] = [];
  #draining: Promise<void> | undefined;
  readonly #sequences = new Map<string, Sequence>();
  /** Rooms that need a load or a reservation commit. */
  readonly #wanting = new Set<Sequence>();
  /** Resets waiting for the committer. */
  #resets: { seq: Sequence; done(epoch: NewEpoch): void; failed(error: unknown): void }[] = [];
  readonly #warned = new Set<string>();
  #closed = false;
  #lastIdleSweep = -Infinity;
  /** Ends the committer's pause early. */
  #wake: (() => void) | undefined;
  /** Something waits for the next commit. */
  #hurry = false;
  /** Rooms a read waits for: their logged messages are filed at once. */
  readonly #flushing = new Set<Sequence>();

  constructor(history: KvHistory) {
    this.#history = history;
    this.#log = new CommitLog(history);
  }

  /** Files what an unclean stop left in the commit log; before anything else. */
  async start(): Promise<void> {
    const filed = await this.#log.fileLeftovers();
    if (filed > 0) console.log(`roomcast: filed ${filed} messages left in the KV commit log by an unclean stop`);
  }

  /** Numbers the append now if the room has offsets reserved, else queues it for the next commit. */
  append(p: Pending): void {
    const seq = this.#sequence(p.message.room);
    seq.used = this.#history.options.clock.now();
    if (seq.numberable) this.#number(seq, p);
    else {
      seq.waiting.push(p);
      this.#wanting.add(seq);
      this.#hurryUp();
    }
    if (p.onDurable) this.#hurryUp();
    this.#kick();
  }

  /** Numbers the message if that needs no commit first (see `append`): the stored message, or
   * `undefined` and nothing done (also when it can't be numbered: `append` then says why). */
  appendNow(message: NewMessage): Appended | undefined {
    const seq = this.#sequences.get(message.room);
    if (!seq?.numberable) return undefined;
    const p = pending(message, ignore, ignore, undefined);
    this.append(p);
    return p.stored ? appended(p) : undefined;
  }

  /** The room's epoch and the last offset handed out. Reads only: a room without history is
   * neither written nor kept in memory (its epoch is `firstEpoch`), and offsets are reserved by
   * the first publish, not by a join. */
  async position(room: string): Promise<Position> {
    if (!this.#sequences.has(room)) {
      const { value } = (await this.#history.readMetas([room])).get(room) ?? { value: null };
      if (!value && !this.#sequences.has(room)) return { epoch: this.#history.firstEpoch(room), offset: 0 };
    }
    const seq = await this.#loaded(room);
    seq.used = this.#history.options.clock.now();
    return { epoch: seq.epoch, offset: seq.assigned };
  }

  /** Resolves once every append to `room` made so far is filed under its keys or given up. */
  async flush(room: string): Promise<void> {
    await this.#flushed(await this.#loaded(room));
  }

  /** Starts a new epoch for the room (through the committer, like every meta write). */
  async reset(room: string): Promise<NewEpoch> {
    const seq = await this.#loaded(room);
    return await new Promise<NewEpoch>((done, failed) => {
      this.#resets.push({ seq, done, failed });
      this.#hurryUp();
      this.#kick();
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#wake?.();
    while (this.#draining) await this.#draining;
    await this.#release().catch((error) => console.error("roomcast: releasing KV reservations:", error));
  }

  #kick(): void {
    this.#draining ??= this.#drain();
  }

  /** One commit at a time, across rooms; nothing waits for these commits but durability, so under
   * steady load they are spaced out: fewer, larger commits cost less CPU. */
  async #drain(): Promise<void> {
    // Let every append queued in this turn of the event loop join the first batch.
    await Promise.resolve();
    try {
      while (this.#queue.length > 0 || this.#wanting.size > 0 || this.#resets.length > 0 || this.#log.unfiled > 0) {
        const started = performance.now();
        if (this.#queue.length > 0 || this.#wanting.size > 0 || this.#resets.length > 0) await this.#commit();
        if (!(await this.#file())) break;
        await this.#forgetIdle();
        const rest = LOCAL_COMMIT_INTERVAL_MS - (performance.now() - started);
        if (rest > 0 && this.#queue.length < LOCAL_COMMIT_EARLY && !this.#urgent()) await this.#nap(rest);
      }
    } finally {
      this.#draining = undefined;
    }
  }

  #sequence(room: string): Sequence {
    let seq = this.#sequences.get(room);
    if (!seq) this.#sequences.set(room, seq = new Sequence(room, this.#history.firstEpoch(room)));
    return seq;
  }

  /** Hands out the next offset: the append resolves now, the message is stored by a later commit.
   * A message that can't be numbered is refused alone, using up no offset; if it `waited`, it
   * counts as given up, so that flushes of its room don't wait for it. */
  #number(seq: Sequence, p: Pending, waited = false): void {
    try {
      seq.number(p);
    } catch (error) {
      if (waited) {
        seq.numbered += 1;
        this.#settleRoom(seq, 1);
      }
      p.onDurable?.(error);
      p.reject(error);
      return;
    }
    this.#queue.push(p);
    p.resolve(appended(p));
  }

  /** Reads the meta of rooms not loaded yet; numbering continues above its reservation. */
  async #load(seqs: Sequence[]): Promise<void> {
    const need = seqs.filter((s) => !s.loaded && !s.loading);
    if (need.length > 0) {
      const loading = this.#history.readMetas(need.map((s) => s.room)).then(async (metas) => {
        for (const seq of need) {
          const { value, versionstamp } = metas.get(seq.room) ?? { value: null, versionstamp: null };
          // Left with a reservation by a process that died: what it handed out and did not store is
          // a hole (the stored meta is rewritten with the next reservation).
          this.#adopt(seq, { value: value && await this.#history.settled(seq.room, value), versionstamp });
        }
      }).finally(() => need.forEach((s) => s.loading = undefined));
      for (const seq of need) seq.loading = loading;
    }
    await Promise.all(seqs.map((s) => s.loading));
  }

  /** Takes the stored meta as the room's state (`Sequence.adopt`), holes included. */
  #adopt(seq: Sequence, meta: CachedMeta): void {
    seq.adopt(meta);
    this.#history.setHoles(seq.room, seq.epoch, seq.holes);
  }

  async #loaded(room: string): Promise<Sequence> {
    const seq = this.#sequence(room);
    if (!seq.loaded) await this.#load([seq]);
    return seq;
  }

  async #commit(): Promise<void> {
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
    // Messages need no check: their offsets lie inside this process's stored reservation, which
    // every other writer numbers above. Only a room whose reservation runs low has its meta checked
    // and written (a new reservation), at most BATCH_MAX_ROOMS of them per commit.
    let batch = this.#queue.splice(0, batchSize(this.#queue, Infinity));
    const rooms = new Set<Sequence>();
    for (const p of batch) rooms.add(this.#sequence(p.message.room));
    // A room that started wanting while the loads above were awaited is loaded next time round.
    for (const seq of this.#wanting) if (seq.loaded) rooms.add(seq);
    const started = performance.now();
    let failure: unknown = new Error("KV commit failed");
    for (let attempt = 0; attempt < MAX_ATTEMPTS && rooms.size > 0; attempt++) {
      const op = this.#history.kv.atomic();
      const reserving = new Map<Sequence, Required<Meta>>();
      for (const seq of rooms) {
        const meta = seq.reservation(this.#history.options.historyLimit);
        if (!meta) continue;
        if (reserving.size >= BATCH_MAX_ROOMS) break;
        op.check({ key: metaKey(seq.room), versionstamp: seq.versionstamp });
        op.set(metaKey(seq.room), meta);
        reserving.set(seq, meta);
      }
      const record = this.#log.write(op, batch);
      let outcome: { applied: boolean; versionstamp: string | null } | undefined;
      try {
        const result = await retryLocked(() => op.commit());
        if (result.ok) outcome = { applied: true, versionstamp: result.versionstamp };
        else failure = new Error("KV commit conflicted: another writer changed the room");
      } catch (error) {
        failure = error;
      }
      try {
        outcome ??= await this.#reconcile(rooms, reserving, batch, record);
      } catch (error) {
        failure = error;
      }
      if (outcome?.applied) return this.#committed(batch, record, rooms, reserving, outcome.versionstamp, started);
      batch = batch.filter((p) => rooms.has(this.#sequence(p.message.room)));
    }
    if (rooms.size === 0) return; // every room was taken over by another writer
    // The KV keeps failing: these messages were delivered but are not stored.
    console.error(`roomcast: storing ${batch.length} messages failed:`, failure);
    this.#lose(batch, failure);
    for (const seq of rooms) this.#giveUpWaiting(seq, failure);
  }

  /** After a commit that failed or whose outcome is unknown: finds out from the KV whether it
   * applied (its log record, or the metas it wrote, are there). If not, rooms another writer
   * changed are taken over (their numbered messages are lost) and removed from `rooms`; the rest
   * can be retried. */
  async #reconcile(
    rooms: Set<Sequence>,
    reserving: Map<Sequence, Required<Meta>>,
    batch: Pending[],
    record: LogRecord | undefined,
  ): Promise<{ applied: boolean; versionstamp: string | null }> {
    const current = await this.#history.readMetas([...rooms].map((s) => s.room));
    const now = (seq: Sequence) => current.get(seq.room) ?? { value: null, versionstamp: null };
    const applied = record ? await this.#log.written(record) : [...reserving].every(([seq, meta]) => {
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
    // Logged messages lie inside this process's old reservation: they are still filed, unless the
    // room has a new epoch.
    if (current.value?.epoch !== seq.epoch) this.#settle(this.#log.drop(seq.room));
    this.#adopt(seq, current);
    // Store a reservation above everything handed out before numbering again.
    this.#wanting.add(seq);
  }

  #committed(
    batch: Pending[],
    record: LogRecord | undefined,
    rooms: Set<Sequence>,
    reserving: Map<Sequence, Required<Meta>>,
    versionstamp: string | null,
    started: number,
  ): void {
    for (const [seq, meta] of reserving) seq.reservationCommitted(meta, versionstamp);
    for (const p of batch) {
      const seq = this.#sequence(p.message.room);
      seq.durable = Math.max(seq.durable, (p.stored as StoredMessage).offset);
    }
    if (record) this.#log.logged(record);
    this.#history.stored(batch, started);
    for (const p of batch) p.onDurable?.();
    for (const seq of rooms) {
      while (seq.waiting.length > 0 && seq.assigned < seq.reserved) {
        this.#number(seq, seq.waiting.shift() as Pending, true);
      }
      if (seq.waiting.length === 0) this.#wanting.delete(seq);
    }
  }

  /** Numbered messages that will never be stored: delivered already, so they leave a hole. */
  #lose(lost: Pending[], error: unknown): void {
    if (lost.length === 0) return;
    this.#history.options.lost?.inc(lost.length);
    for (const p of lost) p.onDurable?.(error);
    const byRoom = Map.groupBy(lost, (p) => this.#sequence(p.message.room));
    for (const [seq, ps] of byRoom) {
      // In the room's epoch still (not taken over by another writer with a new one): a hole there.
      const offsets = ps.filter((p) => p.stored?.epoch === seq.epoch).map((p) => (p.stored as StoredMessage).offset);
      seq.lost(offsets);
      this.#history.setHoles(seq.room, seq.epoch, seq.holes);
    }
    this.#settle(lost.map((p) => p.message.room));
  }

  /** Appends still waiting for an offset when the KV fails: refused, never delivered. */
  #giveUpWaiting(seq: Sequence, error: unknown): void {
    const waiting = seq.waiting;
    seq.waiting = [];
    this.#wanting.delete(seq);
    seq.numbered += waiting.length;
    this.#settleRoom(seq, waiting.length);
    for (const p of waiting) {
      p.onDurable?.(error);
      p.reject(error);
    }
  }

  /** Appends to these rooms (a room once per append) are filed or given up. */
  #settle(rooms: string[]): void {
    const counts = new Map<Sequence, number>();
    for (const room of rooms) {
      const seq = this.#sequence(room);
      counts.set(seq, (counts.get(seq) ?? 0) + 1);
    }
    for (const [seq, n] of counts) this.#settleRoom(seq, n);
  }

  /** `n` more appends to the room are filed or given up; it leaves `#flushing` once no flush waits. */
  #settleRoom(seq: Sequence, n: number): void {
    if (!seq.settle(n)) this.#flushing.delete(seq);
  }

  /** Resolves once every append to `room` made so far is filed or given up. */
  #flushed(seq: Sequence): Promise<void> {
    const flushed = seq.flushed();
    if (!flushed) return Promise.resolve();
    this.#flushing.add(seq);
    this.#hurryUp();
    this.#kick();
    return flushed;
  }

  /** Files logged messages: every room's when due (or closing), else those of rooms a read waits
   * for. False when closing and the KV fails: what is not filed stays in the log for the next start. */
  async #file(): Promise<boolean> {
    const all = this.#closed || this.#log.due();
    if (!all && this.#flushing.size === 0) return true;
    const { filed, failed } = await this.#log.file(all ? undefined : new Set([...this.#flushing].map((s) => s.room)));
    this.#settle(filed);
    return !(failed && this.#closed);
  }

  async #commitResets(): Promise<void> {
    const resets = this.#resets;
    this.#resets = [];
    for (const { seq, done, failed } of resets) {
      // Messages of the old epoch not stored yet are dropped with its history.
      const old = this.#queue.filter((p) => p.message.room === seq.room);
      this.#queue = this.#queue.filter((p) => p.message.room !== seq.room);
      for (const p of old) p.onDurable?.();
      this.#settle([...old.map((p) => p.message.room), ...this.#log.drop(seq.room)]);
      const fresh = { epoch: newEpoch(), offset: 0, reserved: 0 };
      const replaced = seq.epoch || undefined;
      try {
        const result = await retryLocked(() => this.#history.kv.set(metaKey(seq.room), fresh));
        this.#adopt(seq, { value: fresh, versionstamp: result.versionstamp });
        this.#history.forget(seq.room);
        if (seq.waiting.length > 0) this.#wanting.add(seq);
        done({ epoch: fresh.epoch, replaced });
      } catch (error) {
        failed(error);
      }
    }
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

  /** Rooms idle for IDLE_MS, with nothing waiting or uncommitted, give their reservation back (as at a
   * clean stop) and leave memory. Their reservation shrinks in memory first, so an append that
   * comes meanwhile waits for a new one instead of numbering above what is stored. */
  async #forgetIdle(): Promise<void> {
    const now = this.#history.options.clock.now();
    if (now - this.#lastIdleSweep < IDLE_MS / 2) return;
    this.#lastIdleSweep = now;
    const idle = [...this.#sequences.values()].filter((seq) =>
      seq.loaded && now - seq.used >= IDLE_MS && seq.quiet && !this.#wanting.has(seq)
    );
    // Rooms this process only read leave memory as they are: their stored meta is still right.
    for (const seq of idle.filter((s) => !s.reservedHere)) this.#sequences.delete(seq.room);
    idle.splice(0, idle.length, ...idle.filter((s) => s.reservedHere));
    for (let i = 0; i < idle.length; i += BATCH_MAX_ROOMS) {
      const group = idle.slice(i, i + BATCH_MAX_ROOMS);
      const op = this.#history.kv.atomic();
      for (const seq of group) {
        seq.reserved = seq.assigned;
        op.check({ key: metaKey(seq.room), versionstamp: seq.versionstamp });
        op.set(metaKey(seq.room), seq.released(this.#history.options.historyLimit));
      }
      const result = await retryLocked(() => op.commit()).catch(() => undefined);
      for (const seq of group) {
        if (result?.ok) seq.versionstamp = result.versionstamp;
        const still = seq.quiet && !this.#wanting.has(seq);
        if (result?.ok && still && this.#sequences.get(seq.room) === seq) this.#sequences.delete(seq.room);
      }
    }
  }

  /** After a clean stop everything handed out is stored: the meta gets the last offset and the
   * reservation goes back, so the next start continues right after the last message. Rooms this
   * process only read are not written. */
  async #release(): Promise<void> {
    const seqs = [...this.#sequences.values()].filter((s) => s.loaded && s.reservedHere);
    for (let i = 0; i < seqs.length; i += BATCH_MAX_ROOMS) {
      const op = this.#history.kv.atomic();
      for (const seq of seqs.slice(i, i + BATCH_MAX_ROOMS)) {
        op.check({ key: metaKey(seq.room), versionstamp: seq.versionstamp });
        op.set(metaKey(seq.room), seq.released(this.#history.options.historyLimit));
      }
      // A conflict means another writer took these rooms over: their meta is theirs to keep.
      await retryLocked(() => op.commit());
    }
  }
}
