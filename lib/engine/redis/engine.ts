/**
 * The Redis engine: store, backplane and presence in the Redis at `ROOMCAST_REDIS_URL`, shared by
 * every process and isolate pointing at it. Redis' scripts number and store messages and publish
 * them (and member events) on each room's channel in the same step; rooms also check the store
 * every second for what pub/sub dropped.
 */
import type { Config } from "../../config.ts";
import type { Engine, EngineOptions } from "../engine.ts";
import { RedisBackplane } from "./backplane.ts";
import { RedisLink } from "./link.ts";
import { RedisPresence } from "./presence.ts";
import { RedisStore } from "./store.ts";

/** How often rooms with subscribers check Redis for what pub/sub did not bring. */
const REDIS_CHECK_MS = 1000;

export async function createRedisEngine(
  config: Config,
  { node, clock, onPresenceChange }: EngineOptions,
): Promise<Engine> {
  const link = new RedisLink({ url: config.redisUrl as string, log: (line) => console.warn(line) });
  await link.open();
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
    onChange: onPresenceChange,
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
