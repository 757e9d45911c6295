/**
 * The Deno KV store: a local SQLite file by default, the platform's KV on Deno Deploy (layout:
 * format.ts; history mechanics: history.ts). Two ways to number messages, two stores:
 *
 * - `sequencer: "local"` (`LocalKvStore`, local_kv_store.ts): this process numbers messages itself,
 *   resolves the append at once and commits right after, so storage is off the delivery path. It
 *   holds `<path>.lock`, so one process owns a KV file.
 * - `sequencer: "kv"` (`SharedKvStore`, shared_kv_store.ts): the commit assigns the offsets, so
 *   any number of isolates and processes can share the KV; an append resolves after its commit.
 */
import type { KvStoreOptions } from "./history.ts";
import type { KvStore } from "./kv_store.ts";
import { NS } from "./format.ts";
import { LocalKvStore } from "./local_kv_store.ts";
import { SharedKvStore } from "./shared_kv_store.ts";

export type { KvStoreOptions } from "./history.ts";
export type { KvStore } from "./kv_store.ts";

function lockPath(path: string): string {
  return `${path}.lock`;
}

/** Opens the KV at `path` (`undefined`: the platform's default KV). The local sequencer takes
 * `<path>.lock` and fails at once if another process holds it. */
export async function openKvStore(path: string | undefined, options: KvStoreOptions): Promise<KvStore> {
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
    const kv = await Deno.openKv(path).catch((error) => {
      throw file ? damaged(path, error) : error;
    });
    if (file) await readWhole(kv, path);
    if (path === undefined) await sharedOrRefused(kv);
    return await kvStoreOver(kv, options, lock);
  } catch (error) {
    lock?.close();
    throw error;
  }
}

/** Whether an error is SQLite's for a file it can't read (a damaged page, a cut tail). */
function isDamage(error: unknown): boolean {
  return error instanceof Error && /malformed|corrupt|not a database/i.test(error.message);
}

function damaged(path: string, error: unknown): Error {
  if (!isDamage(error)) return error as Error;
  return new Error(
    `the KV file ${path} is damaged (${(error as Error).message}): stop, and restore it from a backup or move it ` +
      "(and its -wal and -shm files) aside to start with no history",
  );
}

/** Reads every entry of a KV file once: a damaged one would otherwise open, take publishes, and
 * fail some history reads for good. The KV is closed when it fails. */
async function readWhole(kv: Deno.Kv, path: string): Promise<void> {
  try {
    for await (const _ of kv.list({ prefix: [] }, { batchSize: 1000 })) {
      // Each entry read is a page checked.
    }
  } catch (error) {
    kv.close();
    throw damaged(path, error);
  }
}

/** A store over a KV already open (the store closes it): `openKvStore` uses it; so do tests that
 * hand it a KV that fails on purpose. */
export async function kvStoreOver(kv: Deno.Kv, options: KvStoreOptions, lock?: Deno.FsFile): Promise<KvStore> {
  const store = options.sequencer === "local"
    ? new LocalKvStore(kv, options, lock)
    : new SharedKvStore(kv, options, lock);
  await store.start();
  return store;
}

/** Commit versions of a KV shared by instances (Deno Deploy's: its distributed store's versions,
 * which advance about a million a second, e.g. 0x619c4832d3e) are far past this; a SQLite KV's
 * count its own commits from 1. */
const SHARED_VERSIONS = 10n ** 10n;

/** Whether a versionstamp comes from a KV that other instances share: Deno Deploy's, not a SQLite
 * KV of this instance's own (what `Deno.openKv()` gives where no database is assigned to the app). */
export function sharedVersionstamp(versionstamp: string): boolean {
  return /^[0-9a-f]{20}$/.test(versionstamp) && BigInt(`0x${versionstamp.slice(0, 16)}`) >= SHARED_VERSIONS;
}

/** The platform's KV must be one every instance shares: with none assigned to the app, Deno Deploy
 * hands each instance a database of its own, silently, and instances would never see each
 * other's messages. */
async function sharedOrRefused(kv: Deno.Kv): Promise<void> {
  const { versionstamp } = await kv.set([NS, "instance-probe"], Date.now(), { expireIn: 60_000 });
  if (sharedVersionstamp(versionstamp)) return;
  kv.close();
  throw new Error(
    "Deno.openKv() gave a database that only this instance sees (no KV database is assigned to the app): assign " +
      "one in the Deno Deploy console (Databases), or set ROOMCAST_REDIS_URL",
  );
}
