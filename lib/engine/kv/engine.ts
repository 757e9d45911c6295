/**
 * The Deno KV engine: history in a KV file (or the platform's KV on Deno Deploy). One process that
 * numbers its messages itself (`ROOMCAST_SEQUENCER=local`) has a backplane and presence of its
 * own, in memory. Processes or instances sharing the KV (`sequencer: "kv"`: Deno Deploy) meet
 * through it: events under short-lived keys (kv/backplane.ts), presence under leased keys
 * (kv/presence.ts), and stored messages read from the store by every instance's rooms (watched,
 * and polled every `ROOMCAST_KV_POLL`).
 */
import type { Config } from "../../config.ts";
import { type Engine, engineOf, type EngineOptions } from "../engine.ts";
import { LocalBackplane } from "../memory/backplane.ts";
import { MemoryPresence } from "../memory/presence.ts";
import type { Backplane } from "../backplane.ts";
import { type Presence, tellingThrough } from "../presence.ts";
import { KvBackplane } from "./backplane.ts";
import type { KvStoreOptions } from "./history.ts";
import type { KvStore } from "./kv_store.ts";
import { openKvStore } from "./open.ts";
import { KvPresence } from "./presence.ts";

/** The store's options from the configuration. */
export function kvStoreOptions(
  config: Config,
  { clock, metrics }: Pick<EngineOptions, "clock" | "metrics">,
): KvStoreOptions {
  return {
    historyLimit: config.historyLimit,
    historyTtlMs: config.historyTtlMs,
    clock,
    sequencer: config.sequencer,
    lost: metrics.storeLost,
    appendLatency: metrics.storeAppendSeconds,
    appends: metrics.storeAppends,
  };
}

/** Whether other processes or instances may share the KV: numbered by its commits
 * (`ROOMCAST_SEQUENCER=kv`) in a file or the platform's KV (Deno Deploy). */
export function sharedKv(config: Config): boolean {
  return config.sequencer === "kv" && config.kvPath !== ":memory:";
}

export async function createKvEngine(config: Config, options: EngineOptions): Promise<Engine> {
  const store: KvStore = await openKvStore(config.kvPath, kvStoreOptions(config, options));
  const { node } = options;
  let backplane: Backplane;
  let presence: Presence;
  let pollMs: number | undefined;
  if (sharedKv(config)) {
    pollMs = config.kvPollMs;
    const shared = new KvBackplane({ kv: store.kv, node, pollMs, watchRooms: config.kvWatchRooms });
    backplane = shared;
    presence = new KvPresence({
      kv: store.kv,
      node,
      leaseMs: config.kvLeaseMs,
      telling: tellingThrough(shared, config.limits.memberEventsMax, options.onPresenceChange),
    });
  } else {
    const local = new LocalBackplane(node);
    backplane = local;
    presence = new MemoryPresence(tellingThrough(local, config.limits.memberEventsMax, options.onPresenceChange));
  }
  return engineOf({ store, backplane, presence, pollMs });
}
