/**
 * Builds the engine the configuration asks for: the store (Deno KV at `kvPath`, or the platform's
 * KV) and the backplane that fans events out between isolates.
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

export async function createEngine(config: Config, options: EngineOptions): Promise<Engine> {
  const retention = { historyLimit: config.historyLimit, historyTtlMs: config.historyTtlMs };
  const store: Store = options.memory ? new MemoryStore(retention, options.clock) : await openKvStore(config.kvPath, {
    ...retention,
    clock: options.clock,
    sequencer: config.sequencer,
    lost: options.metrics.storeLost,
    appendLatency: options.metrics.storeAppendSeconds,
    appends: options.metrics.storeAppends,
  });
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
