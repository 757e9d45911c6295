/**
 * How `KvStore` lays messages out in Deno KV, and its retry on a busy SQLite file.
 *
 * Keys: `["rc1","meta",room]` → `Meta`; `["rc1","msg",room,epoch,last,chunk]` → `Uint8Array`: a
 * block of one or more stored messages of the room, oldest first, ending with offset `last`, as
 * UTF-8 JSON joined by "\n" (JSON text has no raw newline, and no UTF-8 sequence holds that
 * byte), split into chunks under the 64 KiB value limit. The `kv` sequencer writes a block per
 * message; the local sequencer's commit log (commit_log.ts, `["rc1","log",record,chunk]`, the same
 * encoding) files a block per room.
 */
import type { NewMessage, StoredMessage } from "../../protocol.ts";
import { type Appended, EngineUnavailable, type OnDurable, stamp } from "../store.ts";

export const NS = "rc1";
const CHUNK_BYTES = 60_000;
const NEWLINE = 10;

export interface Meta {
  epoch: string;
  /** The latest offset settled: stored, or known to be lost (then it is in `holes`). */
  offset: number;
  /** Local sequencer: offsets up to here may have been handed out (delivered) without being
   * stored yet. Whoever numbers next starts above it. Absent: equal to `offset`. */
  reserved?: number;
  /** Offsets up to `offset` that name no message (`Holes`: flat pairs `[from, to, …]`), as far as
   * they reach into the retained window: retention counts messages, not offsets. Absent: none. */
  holes?: number[];
}

export function metaKey(room: string): Deno.KvKey {
  return [NS, "meta", room];
}

/** The key of chunk `chunk` of the room's block ending with offset `last`. */
export function blockKey(room: string, epoch: string, last: number, chunk: number): Deno.KvKey {
  return [NS, "msg", room, epoch, last, chunk];
}

export function isMeta(value: unknown): value is Meta {
  return typeof value === "object" && value !== null && "epoch" in value && typeof value.epoch === "string" &&
    "offset" in value && typeof value.offset === "number" &&
    (!("reserved" in value) || value.reserved === undefined || typeof value.reserved === "number") &&
    (!("holes" in value) || value.holes === undefined ||
      (Array.isArray(value.holes) && value.holes.length % 2 === 0 && value.holes.every(Number.isSafeInteger)));
}

/** The first offset not yet handed out by anybody, minus one. */
export function highWater(meta: Meta): number {
  return Math.max(meta.offset, meta.reserved ?? 0);
}

/** An append waiting for its offset or its commit. Its JSON is made once, when it is numbered,
 * and encoded to UTF-8 with the rest of its commit (one encoding per commit, not per message). */
export interface Pending {
  message: NewMessage;
  resolve(appended: Appended): void;
  reject(error: unknown): void;
  onDurable: OnDurable | undefined;
  /** Set once numbered: the stored message and its JSON. */
  stored: StoredMessage | undefined;
  json: string | undefined;
  /** Before numbering: its size for batching, once asked for. */
  size: number | undefined;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeUtf8(text: string): Uint8Array {
  return encoder.encode(text);
}

export function decodeUtf8(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

const NON_ASCII = /[\u0080-\uffff]/;

/** The length of `text` in UTF-8, without encoding it. */
export function utf8Length(text: string): number {
  if (!NON_ASCII.test(text)) return text.length;
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d < 0xe000) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

export function pending(
  message: NewMessage,
  resolve: Pending["resolve"],
  reject: Pending["reject"],
  onDurable: OnDurable | undefined,
): Pending {
  return { message, resolve, reject, onDurable, stored: undefined, json: undefined, size: undefined };
}

/** Bytes a pending append adds to a commit: its JSON (before numbering, without epoch and offset),
 * and room for those and the key. */
export function pendingSize(p: Pending): number {
  if (p.json !== undefined) return utf8Length(p.json) + 64;
  return p.size ??= utf8Length(JSON.stringify(p.message)) + 128;
}

/** Gives the append its offset: the stored message and its JSON (throws, changing nothing, for a
 * message that can't be encoded). */
export function number(p: Pending, epoch: string, offset: number): StoredMessage {
  const stored = stamp(p.message, epoch, offset);
  const json = JSON.stringify(stored);
  p.stored = stored;
  p.json = json;
  return stored;
}

/** What the append of a numbered `p` resolves with. */
export function appended(p: Pending): Appended {
  return { message: p.stored as StoredMessage, json: p.json as string };
}

/** Chunks a message needs. */
export function chunkCount(bytes: number): number {
  return Math.max(1, Math.ceil(bytes / CHUNK_BYTES));
}

export function split(bytes: Uint8Array): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += CHUNK_BYTES) chunks.push(bytes.subarray(i, i + CHUNK_BYTES));
  return chunks.length ? chunks : [bytes];
}

export const LINE = Uint8Array.of(NEWLINE);

/** The messages of a block (or log record) split in `chunks`, oldest first. */
export function messagesOf(chunks: Uint8Array[]): StoredMessage[] {
  const bytes = concat(chunks);
  const { starts, ends } = lineBounds(bytes);
  return Array.from(starts, (start, i) => JSON.parse(decoder.decode(bytes.subarray(start, ends[i]))) as StoredMessage);
}

/** Where the non-empty lines of `bytes` (JSON texts joined or ended by "\n") start and end. */
export function lineBounds(bytes: Uint8Array): { starts: Uint32Array; ends: Uint32Array } {
  const found: number[] = [];
  for (let start = 0; start < bytes.length;) {
    const newline = bytes.indexOf(NEWLINE, start);
    const end = newline === -1 ? bytes.length : newline;
    if (end > start) found.push(start, end);
    start = end + 1;
  }
  const starts = new Uint32Array(found.length / 2);
  const ends = new Uint32Array(found.length / 2);
  for (let i = 0; i < starts.length; i++) {
    starts[i] = found[2 * i] as number;
    ends[i] = found[2 * i + 1] as number;
  }
  return { starts, ends };
}

/** The chunks (or any byte arrays) as one. */
export function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1 && parts[0]) return parts[0];
  const bytes = new Uint8Array(parts.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of parts) {
    bytes.set(c, at);
    at += c.length;
  }
  return bytes;
}

/** SQLite answers "database is locked" while another handle (isolate, process) writes: wait and retry. */
export async function retryLocked<T>(work: () => Promise<T>): Promise<T> {
  for (let attempt = 0;; attempt++) {
    try {
      return await work();
    } catch (error) {
      const locked = error instanceof Error && /database is locked|SQLITE_BUSY/i.test(error.message);
      if (!locked) throw error;
      // Still locked after about two seconds: nothing was done, and the caller may try again.
      if (attempt >= 40) throw new EngineUnavailable("The KV store stayed locked by another writer: try again");
      await new Promise((resolve) => setTimeout(resolve, Math.min(2 ** attempt, 50) * (0.5 + Math.random())));
    }
  }
}

/** A room's new epoch, and the one it replaced (none for a room that had none). */
export interface NewEpoch {
  epoch: string;
  replaced: string | undefined;
}
