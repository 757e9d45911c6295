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
import type { MemberTelling, Presence } from "./presence.ts";
import { MemoryPresence } from "./presence_memory.ts";
import type { Store } from "./store.ts";
import { openKvStore } from "./store_kv.ts";
import { MemoryStore } from "./store_memory.ts";
import { RedisLink } from "./redis.ts";
import { RedisStore } from "./store_redis.ts";
import { RedisBackplane } from "./backplane_redis.ts";
import { RedisPresence } from "./presence_redis.ts";

export interface Engine {
  store: Store;
  backplane: Backplane;
  presence: Presence;
  /** How often (ms) rooms with subscribers check the store for messages the backplane did not
   * carry; `undefined`: never (everything is in this isolate). */
  pollMs?: number | undefined;
  /** The storage's state, for `/healthz`: `up`, or `down` while it can't be reached. */
  health?(): { engine: string; state: "up" | "down" };
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

/** Member events told through `backplane` (which delivers them here at once), in rooms up to the
 * configured size. */
function telling(backplane: Backplane, config: Config): MemberTelling {
  return { max: config.limits.memberEventsMax, tell: (event) => backplane.publish(event) };
}

/** How often rooms with subscribers check Redis for what pub/sub did not bring. */
const REDIS_CHECK_MS = 1000;

/** The Redis engine: store, backplane and presence in the Redis at `config.redisUrl`, shared by
 * every process and isolate pointing at it. */
export async function createRedisEngine(config: Config, options: EngineOptions): Promise<Engine> {
  const link = new RedisLink({ url: config.redisUrl as string });
  await link.open();
  const { node, clock } = options;
  const store = new RedisStore({
    link,
    node,
    clock,
    historyLimit: config.historyLimit,
    historyTtlMs: config.historyTtlMs,
  });
  const backplane = new RedisBackplane(link, node);
  // Its scripts tell the member events on the rooms' channels.
  const presence = new RedisPresence({
    link,
    node,
    leaseMs: config.redisLeaseMs,
    memberEventsMax: config.limits.memberEventsMax,
  });
  return {
    store,
    backplane,
    presence,
    pollMs: REDIS_CHECK_MS,
    health: () => ({ engine: "redis", state: link.state }),
    async close() {
      await backplane.close();
      await presence.close();
      await store.close();
      await link.close();
    },
  };
}

/** One isolate's engine: Redis where `redisUrl` is set; else the store, and a backplane and
 * presence of its own; or, where the KV is shared (`sharedKv`), a backplane and presence through
 * the KV, and rooms that poll it. */
export async function createEngine(config: Config, options: EngineOptions): Promise<Engine> {
  if (config.redisUrl && !options.memory) return await createRedisEngine(config, options);
  const store = await createStore(config, options);
  let backplane: Backplane = new LocalBackplane(options.node);
  let presence: Presence = new MemoryPresence(telling(backplane, config));
  let pollMs: number | undefined;
  if (sharedKv(config, options.memory) && store instanceof KvStore) {
    pollMs = config.kvPollMs;
    const shared = new KvBackplane({ kv: store.kv, node: options.node, pollMs, watchRooms: config.kvWatchRooms });
    backplane = shared;
    presence = new KvPresence({
      kv: store.kv,
      node: options.node,
      leaseMs: config.kvLeaseMs,
      telling: telling(shared, config),
    });
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
