/**
 * Builds the engine of a single isolate: the store (Deno KV at `kvPath`, or the platform's KV), a
 * backplane and presence of its own. A cluster's Workers get theirs from routes/worker.ts.
 */
import type { Clock } from "../clock.ts";
import type { Config } from "../config.ts";
import type { Metrics } from "../metrics.ts";
import type { Backplane } from "./backplane.ts";
import { LocalBackplane } from "./backplane_local.ts";
import { KvBackplane } from "./backplane_kv.ts";
import { KvPresence } from "./presence_kv.ts";
import { KvStore } from "./store_kv_base.ts";
import type { Presence } from "./presence.ts";
import { MemoryPresence } from "./presence_memory.ts";
import type { Store } from "./store.ts";
import { openKvStore } from "./store_kv.ts";
import { MemoryStore } from "./store_memory.ts";

export interface Engine {
  store: Store;
  backplane: Backplane;
  presence: Presence;
  /** How often (ms) rooms with subscribers check the store for messages the backplane did not
   * carry; `undefined`: never (everything is in this isolate). */
  pollMs?: number | undefined;
  close(): Promise<void>;
}

export interface EngineOptions {
  clock: Clock;
  metrics: Metrics;
  /** Use an in-process store instead of Deno KV (tests). @default false */
  memory?: boolean;
  /** This isolate's id (`welcome.node`, and on every backplane event). */
  node: string;
}

/** The store the configuration asks for: Deno KV at `kvPath` (or the platform's), or memory. */
export async function createStore(config: Config, options: Omit<EngineOptions, "node">): Promise<Store> {
  const retention = { historyLimit: config.historyLimit, historyTtlMs: config.historyTtlMs };
  if (options.memory) return new MemoryStore(retention, options.clock);
  return await openKvStore(config.kvPath, {
    ...retention,
    clock: options.clock,
    sequencer: config.sequencer,
    lost: options.metrics.storeLost,
    appendLatency: options.metrics.storeAppendSeconds,
    appends: options.metrics.storeAppends,
  });
}

/** Whether other processes or instances may share this store: a KV numbered by its commits
 * (`ROOMCAST_SEQUENCER=kv`) in a file or the platform's KV (Deno Deploy). */
export function sharedKv(config: Config, memory = false): boolean {
  return !memory && config.sequencer === "kv" && config.kvPath !== ":memory:";
}

/** One isolate's engine: the store, and a backplane and presence of its own; or, where the KV is
 * shared (`sharedKv`), a backplane and presence through the KV, and rooms that poll it. */
export async function createEngine(config: Config, options: EngineOptions): Promise<Engine> {
  const store = await createStore(config, options);
  let backplane: Backplane = new LocalBackplane(options.node);
  let presence: Presence = new MemoryPresence();
  let pollMs: number | undefined;
  if (sharedKv(config, options.memory) && store instanceof KvStore) {
    pollMs = config.kvPollMs;
    backplane = new KvBackplane({ kv: store.kv, node: options.node, pollMs });
    presence = new KvPresence({ kv: store.kv, node: options.node, leaseMs: config.kvLeaseMs });
  }
  return {
    store,
    backplane,
    presence,
    pollMs,
    async close() {
      await backplane.close();
      await presence.close();
      await store.close();
    },
  };
}
