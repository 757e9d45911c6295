/** Test helpers that look inside a KV file written by `KvStore` (layout: lib/engine/kv/format.ts). */
import { messagesOf } from "../lib/engine/kv/format.ts";

/** The values under `prefix`, grouped by the first `depth` parts of their keys (a block or a log
 * record, whose last key part is the chunk), in key order; and how many keys there are. */
async function groups(
  path: string,
  prefix: Deno.KvKey,
  depth: number,
): Promise<{ values: Uint8Array[][]; keys: number }> {
  const kv = await Deno.openKv(path);
  const grouped = new Map<string, Uint8Array[]>();
  let keys = 0;
  try {
    for await (const entry of kv.list<Uint8Array>({ prefix })) {
      const group = JSON.stringify(entry.key.slice(0, depth));
      grouped.set(group, [...grouped.get(group) ?? [], entry.value]);
      keys++;
    }
  } finally {
    kv.close();
  }
  return { values: [...grouped.values()], keys };
}

/** The offsets stored under the room's keys (in its blocks), ascending, and how many keys hold them. */
export async function stored(path: string, room: string): Promise<{ offsets: number[]; keys: number }> {
  const { values, keys } = await groups(path, ["rc1", "msg", room], 5);
  return { offsets: values.flatMap((chunks) => messagesOf(chunks).map((m) => m.offset)), keys };
}

/** The offsets stored under the room's keys, ascending. */
export async function keysOf(path: string, room: string): Promise<number[]> {
  return (await stored(path, room)).offsets;
}

/** The messages in the commit log (not filed under their rooms' keys yet), in log order. */
export async function logged(path: string): Promise<{ room: string; offset: number }[]> {
  return (await groups(path, ["rc1", "log"], 3)).values.flatMap((chunks) => messagesOf(chunks));
}

/** The offsets of the room stored anywhere: in the commit log or under the room's keys, ascending. */
export async function durable(path: string, room: string): Promise<number[]> {
  const inLog = (await logged(path)).filter((m) => m.room === room).map((m) => m.offset);
  return [...new Set([...inLog, ...await keysOf(path, room)])].sort((a, b) => a - b);
}
