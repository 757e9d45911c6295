/** Test helpers that look inside a KV file written by `KvStore` (layout: lib/engine/kv_format.ts). */
import { messagesOf } from "../lib/engine/kv_format.ts";

/** The offsets stored under the room's keys (in its blocks), ascending, and how many keys hold them. */
export async function stored(path: string, room: string): Promise<{ offsets: number[]; keys: number }> {
  const kv = await Deno.openKv(path);
  const blocks = new Map<string, Uint8Array[]>();
  let keys = 0;
  try {
    for await (const entry of kv.list<Uint8Array>({ prefix: ["rc1", "msg", room] })) {
      const block = JSON.stringify(entry.key.slice(0, 5));
      blocks.set(block, [...blocks.get(block) ?? [], entry.value]);
      keys++;
    }
  } finally {
    kv.close();
  }
  const offsets = [...blocks.values()].flatMap((chunks) => messagesOf(chunks).map((m) => m.offset));
  return { offsets, keys };
}

/** The offsets stored under the room's keys, ascending. */
export async function keysOf(path: string, room: string): Promise<number[]> {
  return (await stored(path, room)).offsets;
}

/** The messages in the commit log (not filed under their rooms' keys yet), in log order. */
export async function logged(path: string): Promise<{ room: string; offset: number }[]> {
  const kv = await Deno.openKv(path);
  const records = new Map<unknown, Uint8Array[]>();
  try {
    for await (const entry of kv.list<Uint8Array>({ prefix: ["rc1", "log"] })) {
      records.set(entry.key[2], [...records.get(entry.key[2]) ?? [], entry.value]);
    }
  } finally {
    kv.close();
  }
  return [...records.values()].flatMap((chunks) => messagesOf(chunks));
}

/** The offsets of the room stored anywhere: in the commit log or under the room's keys, ascending. */
export async function durable(path: string, room: string): Promise<number[]> {
  const inLog = (await logged(path)).filter((m) => m.room === room).map((m) => m.offset);
  return [...new Set([...inLog, ...await keysOf(path, room)])].sort((a, b) => a - b);
}
