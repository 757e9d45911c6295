/**
 * The memory engine: one isolate, nothing kept across a restart (tests, `ROOMCAST_KV_PATH` aside).
 * The store numbers and holds messages in this process, the backplane hands events to this
 * isolate's hub, presence is this isolate's maps.
 */
import type { Config } from "../../config.ts";
import { type Engine, engineOf, type EngineOptions } from "../engine.ts";
import { LocalBackplane } from "./backplane.ts";
import { MemoryPresence } from "./presence.ts";
import { MemoryStore } from "./store.ts";
import { tellingThrough } from "../presence.ts";

export function createMemoryEngine(config: Config, { clock, node, onPresenceChange }: EngineOptions): Engine {
  const store = new MemoryStore({ historyLimit: config.historyLimit, historyTtlMs: config.historyTtlMs }, clock);
  const backplane = new LocalBackplane(node);
  const presence = new MemoryPresence(tellingThrough(backplane, config.limits.memberEventsMax, onPresenceChange));
  return engineOf({ store, backplane, presence });
}
