/**
 * The one place that picks an engine's kind from the configuration (engine.ts lists the kinds).
 */
import type { Config } from "../config.ts";
import { createClusterEngine } from "./cluster/engine.ts";
import type { Engine, EngineOptions } from "./engine.ts";
import { createKvEngine, kvStoreOptions } from "./kv/engine.ts";
import { openKvStore } from "./kv/open.ts";
import { createMemoryEngine } from "./memory/engine.ts";
import { MemoryStore } from "./memory/store.ts";
import { createRedisEngine } from "./redis/engine.ts";
import type { Store } from "./store.ts";

/** The engine the configuration asks for. Redis wherever `ROOMCAST_REDIS_URL` is set (each isolate
 * of a cluster reaches it itself); else a cluster's serving isolate gets its coordinator's; else
 * memory (tests) or Deno KV. */
export async function createEngine(config: Config, options: EngineOptions): Promise<Engine> {
  if (config.redisUrl && !options.memory) return await createRedisEngine(config, options);
  if (options.cluster) return createClusterEngine(options.cluster, options.node);
  if (options.memory) return createMemoryEngine(config, options);
  return await createKvEngine(config, options);
}

/** The store a cluster's coordinator owns for its isolates: Deno KV, or memory (tests; and with
 * Redis, where the isolates reach Redis themselves, a placeholder). */
export async function createStore(config: Config, options: Omit<EngineOptions, "node">): Promise<Store> {
  if (options.memory || config.redisUrl) {
    return new MemoryStore({ historyLimit: config.historyLimit, historyTtlMs: config.historyTtlMs }, options.clock);
  }
  return await openKvStore(config.kvPath, kvStoreOptions(config, options));
}
