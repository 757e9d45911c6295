/**
 * How `KvStore` lays messages out in Deno KV, and its retry on a busy SQLite file.
 *
 * Keys: `["rc1","meta",room]` → `Meta`; `["rc1","msg",room,epoch,last,chunk]` → `Uint8Array`: a
 * block of one or more stored messages of the room, oldest first, ending with offset `last`, as
 * UTF-8 JSON joined by "\n" (JSON text has no raw newline, and no UTF-8 sequence holds that
 * byte), split into chunks under the 64 KiB value limit. The `kv` sequencer writes a block per
 * message; the local sequencer's commit log (kv_log.ts, `["rc1","log",record,chunk]`, the same
 * encoding) files a block per room.
 */
import type { NewMessage, StoredMessage } from "../protocol.ts";
import { rememberJson } from "../peer.ts";
import { type OnDurable, stamp } from "./store.ts";

export const NS = "rc1";
const CHUNK_BYTES = 60_000;
const NEWLINE = 10;

export interface Meta {
  epoch: string;
  /** The latest offset stored. */
  offset: number;
  /** Local sequencer: offsets up to here may have been handed out (delivered) without being
   * stored yet. Whoever numbers next starts above it. Absent: equal to `offset`. */
  reserved?: number;
}

export function metaKey(room: string): Deno.KvKey {
  return [NS, "meta", room];
}

export function isMeta(value: unknown): value is Meta {
  return typeof value === "object" && value !== null && "epoch" in value && typeof value.epoch === "string" &&
    "offset" in value && typeof value.offset === "number" &&
    (!("reserved" in value) || value.reserved === undefined || typeof value.reserved === "number");
}

/** The first offset not yet handed out by anybody, minus one. */
export function highWater(meta: Meta): number {
  return Math.max(meta.offset, meta.reserved ?? 0);
}

/** An append waiting for its offset or its commit. The message JSON is split around the epoch and
 * offset, so that each message is encoded to JSON and UTF-8 exactly once. */
export interface Pending {
  message: NewMessage;
  head: string;
  tail: string;
  headBytes: Uint8Array;
  tailBytes: Uint8Array;
  resolve(stored: StoredMessage): void;
  reject(error: unknown): void;
  onDurable: OnDurable | undefined;
  /** Set once the message has its offset. */
  stored?: StoredMessage;
  bytes?: Uint8Array;
}

/** A numbered message and the bytes to store: what writing it into the KV needs. */
export type Numbered = Pick<Pending, "stored" | "bytes">;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** `JSON.stringify(stamp(message, epoch, offset))`, in two parts around `"epoch":…,"offset":…,`. */
export function pending(
  message: NewMessage,
  resolve: Pending["resolve"],
  reject: Pending["reject"],
  onDurable: OnDurable | undefined,
): Pending {
  const { room, id, from, data, ts } = message;
  const head = `{"type":"message","room":${JSON.stringify(room)},"id":${JSON.stringify(id)},`;
  const tail = `"from":${JSON.stringify(from)},"data":${JSON.stringify(data)},"ts":${JSON.stringify(ts)}}`;
  return {
    message,
    head,
    tail,
    headBytes: encoder.encode(head),
    tailBytes: encoder.encode(tail),
    resolve,
    reject,
    onDurable,
  };
}

/** Bytes a pending append adds to a commit (message and key overhead). */
export function pendingSize(p: Pending): number {
  return p.headBytes.length + p.tailBytes.length + 64;
}

/** Gives the append its offset: the stored message (its JSON remembered for the fan-out) and the
 * bytes to store. */
export function number(p: Pending, epoch: string, offset: number): StoredMessage {
  const mid = `"epoch":${JSON.stringify(epoch)},"offset":${offset},`;
  const midBytes = encoder.encode(mid);
  const bytes = new Uint8Array(p.headBytes.length + midBytes.length + p.tailBytes.length);
  bytes.set(p.headBytes, 0);
  bytes.set(midBytes, p.headBytes.length);
  bytes.set(p.tailBytes, p.headBytes.length + midBytes.length);
  const stored = stamp(p.message, epoch, offset);
  rememberJson(stored, p.head + mid + p.tail);
  p.stored = stored;
  p.bytes = bytes;
  return stored;
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
  return numberedOf(concat(chunks)).map((n) => n.stored as StoredMessage);
}

/** The messages in `bytes` (JSON texts joined by "\n"), each with its own bytes. */
export function numberedOf(bytes: Uint8Array): Numbered[] {
  const out: Numbered[] = [];
  for (let start = 0; start < bytes.length;) {
    const found = bytes.indexOf(NEWLINE, start);
    const end = found === -1 ? bytes.length : found;
    const line = bytes.subarray(start, end);
    if (line.length > 0) out.push({ bytes: line, stored: JSON.parse(decoder.decode(line)) as StoredMessage });
    start = end + 1;
  }
  return out;
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
      if (!locked || attempt >= 40) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.min(2 ** attempt, 50) * (0.5 + Math.random())));
    }
  }
}
