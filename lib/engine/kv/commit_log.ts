/**
 * The local sequencer's commit log. Each commit stores its messages as one log record
 * (`["rc1","log",record,chunk]` → the messages' UTF-8 JSON joined by "\n", in chunks): a few keys
 * at the end of the KV's B-tree however many rooms the messages belong to. Writing each message
 * under its room's key instead rewrites a B-tree page per room per commit (SQLite's write
 * amplification, a hundredfold for chat over many rooms: bench/RESULTS.md, "Figures behind the code").
 *
 * Every FILE_INTERVAL_MS, sooner when much is waiting or a read waits for a room, the logged
 * messages are filed under their rooms' keys as one block per room (format.ts), sorted by room
 * so that each atomic operation writes runs of neighbouring keys, and the records wholly filed are
 * deleted. Until then a record is kept in memory as its bytes and a few typed arrays, not as
 * objects per message, so that it costs the garbage collector next to nothing. A process that
 * opens a KV file with records left in the log (an unclean stop) files them first.
 */
import type { StoredMessage } from "../../protocol.ts";
import {
  chunkCount,
  concat,
  encodeUtf8,
  LINE,
  lineBounds,
  messagesOf,
  NS,
  type Pending,
  retryLocked,
  split,
} from "./format.ts";
import { fitBatch, type KvHistory } from "./history.ts";

/** Logged messages wait at most this long to be filed under their rooms, or until this many (or
 * this many bytes) are waiting. */
const FILE_INTERVAL_MS = 2000;
const FILE_MAX_MESSAGES = 10_000;
const FILE_MAX_BYTES = 8 << 20;
/** A room's messages are filed in blocks of about this many bytes at most. */
const BLOCK_BYTES = 32_768;
/** Rooms filed per atomic operation: filing all rooms in one went through some 4,000 messages in
 * one turn of the event loop (3–15 ms with chat's 200 rooms); these slices, neighbours in the
 * B-tree, keep each turn short and the writes local. */
const FILE_ROOMS_PER_OP = 32;
/** Log records deleted per atomic operation. */
const DELETES_PER_OP = 500;

/** A log record: its messages' bytes (joined by "\n") and, per message, where it lies in them. */
export interface LogRecord {
  id: number;
  chunks: number;
  bytes: Uint8Array;
  rooms: string[];
  epochs: string[];
  offsets: Float64Array;
  starts: Uint32Array;
  ends: Uint32Array;
  /** Per message: 1 once filed (or dropped). */
  filed: Uint8Array;
  left: number;
  /** When it was logged (performance.now()). */
  at: number;
}

/** A block to file: one room and epoch, oldest first; message `at[k]` of `records[k]`. */
interface Block {
  room: string;
  epoch: string;
  records: LogRecord[];
  at: number[];
  bytes: number;
}

function logKey(id: number, chunk: number): Deno.KvKey {
  return [NS, "log", id, chunk];
}

/** A record of `messages` (numbered) whose JSON lines, each followed by "\n", are `bytes`. */
function record(id: number, bytes: Uint8Array, messages: { room: string; epoch: string; offset: number }[]): LogRecord {
  const n = messages.length;
  const { starts, ends } = lineBounds(bytes);
  if (starts.length !== n) throw new Error(`KV commit log record ${id} holds ${starts.length} lines for ${n} messages`);
  return {
    id,
    chunks: chunkCount(bytes.length),
    bytes,
    rooms: messages.map((m) => m.room),
    epochs: messages.map((m) => m.epoch),
    offsets: Float64Array.from(messages, (m) => m.offset),
    starts,
    ends,
    filed: new Uint8Array(n),
    left: n,
    at: 0,
  };
}

export class CommitLog {
  readonly #history: KvHistory;
  #nextId = 1;
  /** Records with messages not filed yet, in log order. */
  #records: LogRecord[] = [];
  #unfiled = 0;
  #unfiledBytes = 0;
  /** Records with nothing left to file, to delete. */
  #done: LogRecord[] = [];

  constructor(history: KvHistory) {
    this.#history = history;
  }

  /** Messages logged and not filed yet. */
  get unfiled(): number {
    return this.#unfiled;
  }

  /** Adds `batch` (numbered) to `op` as the next log record. */
  write(op: Deno.AtomicOperation, batch: Pending[]): LogRecord | undefined {
    if (batch.length === 0) return undefined;
    // One encoding for the whole commit.
    const text = batch.map((p) => p.json as string).join("\n") + "\n";
    const rec = record(this.#nextId++, encodeUtf8(text), batch.map((p) => p.stored as StoredMessage));
    split(rec.bytes).forEach((chunk, i) => op.set(logKey(rec.id, i), chunk));
    return rec;
  }

  /** Whether the commit that wrote `rec` applied (after a failure whose outcome is unknown). */
  async written(rec: LogRecord): Promise<boolean> {
    return (await retryLocked(() => this.#history.kv.get(logKey(rec.id, 0)))).versionstamp !== null;
  }

  /** The commit holding `rec` applied: its messages are durable and wait to be filed. */
  logged(rec: LogRecord): void {
    rec.at = performance.now();
    this.#records.push(rec);
    this.#unfiled += rec.left;
    this.#unfiledBytes += rec.bytes.length;
  }

  /** Whether everything logged should be filed now. */
  due(): boolean {
    const oldest = this.#records[0]?.at ?? Infinity;
    return this.#unfiled >= FILE_MAX_MESSAGES || this.#unfiledBytes >= FILE_MAX_BYTES ||
      performance.now() - oldest >= FILE_INTERVAL_MS;
  }

  /** Files the logged messages of `rooms` (of every room without `rooms`) and deletes the records
   * left with nothing to file. Returns the room of each message filed, and whether the KV failed
   * (what is not filed stays in the log for the next time). */
  async file(rooms?: ReadonlySet<string>): Promise<{ filed: string[]; failed: boolean }> {
    const blocks = this.#blocks(rooms);
    const filed: string[] = [];
    let failed = false;
    try {
      await this.#write(blocks, (block) => {
        block.at.forEach((i, k) => this.#markOne(block.records[k] as LogRecord, i));
        for (const _ of block.at) filed.push(block.room);
      });
    } catch (error) {
      failed = true;
      const left = blocks.reduce((n, b) => n + b.at.length, 0) - filed.length;
      console.error(`roomcast: filing ${left} logged messages failed (retried later):`, error);
    }
    try {
      await this.#deleteDone();
    } catch (error) {
      failed = true;
      console.error("roomcast: deleting filed KV commit log records failed (retried later):", error);
    }
    return { filed, failed };
  }

  /** Forgets the logged messages of `room` without filing them (its epoch ended); returns the room
   * once per message dropped. */
  drop(room: string): string[] {
    const dropped: string[] = [];
    for (const rec of [...this.#records]) {
      const at = rec.rooms.flatMap((r, i) => r === room && !rec.filed[i] ? [i] : []);
      for (const _ of at) dropped.push(room);
      this.#mark(rec, at);
    }
    return dropped;
  }

  /** Files what an unclean stop left in the log, in the epoch its room still has; before this
   * process numbers anything. Returns how many messages were filed. */
  async fileLeftovers(): Promise<number> {
    const stored = new Map<number, Deno.KvEntry<Uint8Array>[]>();
    for await (const entry of this.#history.kv.list<Uint8Array>({ prefix: [NS, "log"] })) {
      const id = entry.key[2] as number;
      stored.set(id, [...stored.get(id) ?? [], entry]);
    }
    if (stored.size === 0) return 0;
    this.#nextId = Math.max(...stored.keys()) + 1;
    for (const [id, chunks] of stored) {
      try {
        const bytes = concat(chunks.map((chunk) => chunk.value));
        const messages = messagesOf([bytes]);
        const valid = (m: Partial<StoredMessage> | null) =>
          typeof m?.room === "string" && typeof m.epoch === "string" && Number.isSafeInteger(m.offset);
        if (!messages.every(valid)) throw new Error("it holds something other than messages");
        this.logged(record(id, bytes, messages));
      } catch (error) {
        await this.#quarantine(id, chunks, error);
      }
    }
    // A room reset since has a new epoch: the old one's messages are not wanted.
    const metas = await this.#history.readMetas([...new Set(this.#records.flatMap((r) => r.rooms))]);
    for (const rec of [...this.#records]) {
      this.#mark(rec, rec.rooms.flatMap((room, i) => metas.get(room)?.value?.epoch === rec.epochs[i] ? [] : [i]));
    }
    const { filed, failed } = await this.file();
    if (failed) throw new Error("filing the KV commit log left by an unclean stop failed");
    return filed.length;
  }

  /** A log record that can't be read (damaged on disk) moves out of the log, under
   * `["rc1","damaged-log",record,chunk]`, so that start-up goes on and it can be looked at. Its
   * messages are lost: their offsets are in a reservation, so the rooms see a hole there. */
  async #quarantine(id: number, chunks: Deno.KvEntry<unknown>[], error: unknown): Promise<void> {
    console.error(
      `roomcast: KV commit log record ${id} can't be read (${error instanceof Error ? error.message : error}); ` +
        `moved to ${JSON.stringify([NS, "damaged-log", id])}, its messages are lost`,
    );
    const op = this.#history.kv.atomic();
    for (const { key, value } of chunks) op.set([NS, "damaged-log", ...key.slice(2)], value).delete(key);
    await retryLocked(() => op.commit());
  }

  /** The unfiled messages of `rooms` (all without) in blocks: one room and epoch each, oldest
   * first, BLOCK_BYTES at most (or one message), sorted by room. */
  #blocks(rooms?: ReadonlySet<string>): Block[] {
    const byRoom = new Map<string, Block[]>();
    for (const rec of this.#records) {
      for (let i = 0; i < rec.rooms.length; i++) {
        const room = rec.rooms[i] as string;
        if (rec.filed[i] || (rooms && !rooms.has(room))) continue;
        const epoch = rec.epochs[i] as string;
        const size = (rec.ends[i] as number) - (rec.starts[i] as number) + 1;
        let list = byRoom.get(room);
        if (!list) byRoom.set(room, list = []);
        const last = list.at(-1);
        if (last && last.epoch === epoch && last.bytes + size <= BLOCK_BYTES) {
          last.records.push(rec);
          last.at.push(i);
          last.bytes += size;
        } else list.push({ room, epoch, records: [rec], at: [i], bytes: size });
      }
    }
    return [...byRoom.keys()].sort().flatMap((room) => byRoom.get(room) as Block[]);
  }

  /** Writes `blocks` under their rooms' keys, FILE_ROOMS_PER_OP rooms per atomic operation at most
   * (fewer where the limits say so). A message with more than the history limit of newer ones in
   * its own block is already out of its room's window and is not written. */
  async #write(blocks: Block[], done: (block: Block) => void): Promise<void> {
    const limit = this.#history.options.historyLimit;
    for (let i = 0; i < blocks.length;) {
      const batch = blocks.slice(i, i + fitBatch(blocks, FILE_ROOMS_PER_OP, (b) => b.room, (b) => b.bytes + 64, i));
      const op = this.#history.kv.atomic();
      const budget = this.#history.trimBudget();
      for (const { room, epoch, records, at } of batch) {
        const offset = (k: number) => (records[k] as LogRecord).offsets[at[k] as number] as number;
        const last = offset(at.length - 1);
        const parts: Uint8Array[] = [];
        at.forEach((j, k) => {
          // More than the history limit of newer messages in this very block: out of the window.
          if (at.length - k > limit) return;
          const rec = records[k] as LogRecord;
          if (parts.length > 0) parts.push(LINE);
          parts.push(rec.bytes.subarray(rec.starts[j], rec.ends[j]));
        });
        if (parts.length > 0) this.#history.putBlock(op, { room, epoch, last, bytes: concat(parts) }, budget);
      }
      await retryLocked(() => op.commit());
      batch.forEach(done);
      i += batch.length;
    }
  }

  /** Messages `at` of `rec` are filed (or dropped); a record with none left is done. */
  #mark(rec: LogRecord, at: number[]): void {
    for (const i of at) this.#markOne(rec, i);
    this.#retire(rec);
  }

  #markOne(rec: LogRecord, i: number): void {
    if (rec.filed[i]) return;
    rec.filed[i] = 1;
    rec.left--;
    this.#unfiled--;
    if (rec.left === 0) this.#retire(rec);
  }

  /** A record with nothing left to file leaves the log (and is deleted from the KV). */
  #retire(rec: LogRecord): void {
    if (rec.left > 0 || !this.#records.includes(rec)) return;
    this.#records = this.#records.filter((r) => r !== rec);
    this.#unfiledBytes -= rec.bytes.length;
    this.#done.push(rec);
  }

  async #deleteDone(): Promise<void> {
    while (this.#done.length > 0) {
      let n = 0;
      let deletes = 0;
      for (const rec of this.#done) {
        if (n > 0 && deletes + rec.chunks > DELETES_PER_OP) break;
        n++;
        deletes += rec.chunks;
      }
      const op = this.#history.kv.atomic();
      for (const { id, chunks } of this.#done.slice(0, n)) for (let i = 0; i < chunks; i++) op.delete(logKey(id, i));
      await retryLocked(() => op.commit());
      this.#done = this.#done.slice(n);
    }
  }
}
