/**
 * Builds the engine of a single isolate: the store (Deno KV at `kvPath`, or the platform's KV), a
 * backplane and presence of its own. A cluster's Workers get theirs from routes/worker.ts.
 */
import type { Clock } from "../clock.ts";
import type { Config } from "../config.ts";
import type { Metrics } from "../metrics.ts";
import type { Backplane } from "./backplane.ts";
import { LocalBackplane } from "./backplane_local.ts";
import type { Presence } from "./presence.ts";
import { MemoryPresence } from "./presence_memory.ts";
import type { Store } from "./store.ts";
import { openKvStore } from "./store_kv.ts";
import { MemoryStore } from "./store_memory.ts";

export interface Engine {
  store: Store;
  backplane: Backplane;
  presence: Presence;
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

/** One isolate's engine: the store, a backplane to itself, presence in its memory. */
export async function createEngine(config: Config, options: EngineOptions): Promise<Engine> {
  const store = await createStore(config, options);
  const backplane = new LocalBackplane(options.node);
  const presence = new MemoryPresence();
  return {
    store,
    backplane,
    presence,
    async close() {
      await backplane.close();
      await presence.close();
      await store.close();
    },
  };
}
