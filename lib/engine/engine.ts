/**
 * An isolate's engine: its store, backplane and presence. One folder per kind, each with one
 * factory:
 *
 * - memory/: one isolate, nothing kept (tests);
 * - kv/: Deno KV, one process on a file, or instances sharing it (Deno Deploy);
 * - redis/: processes (and their isolates) on one Redis;
 * - cluster/: the serving isolates of one process (`ROOMCAST_WORKERS`), whose store and presence
 *   are their coordinator's (cluster/coordinator.ts), which owns a store of the configured kind.
 *
 * How another node's stored messages reach this one is the kind's: `Backplane.messages` says which.
 * `createEngine` (create.ts) picks the kind from the configuration, in one place.
 */
import type { Clock } from "../clock.ts";
import type { Metrics } from "../metrics.ts";
import type { Backplane } from "./backplane.ts";
import type { Presence, PresenceChange } from "./presence.ts";
import type { Store } from "./store.ts";
import type { Caller } from "./cluster/rpc.ts";

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

/** How a serving isolate of a cluster reaches its coordinator (cluster/engine.ts). */
export interface ClusterLink {
  /** Calls to the coordinator. */
  caller: Caller;
  /** The coordinator's store itself, where this isolate shares the coordinator's thread; absent,
   * the store is called through `caller`. */
  store?: Store | undefined;
  /** How often the isolate renews its presence lease. */
  renewMs: number;
  /** The BroadcastChannel namespace the process's isolates share (signals). */
  namespace: string;
}

export interface EngineOptions {
  clock: Clock;
  metrics: Metrics;
  /** Keep history in this process's memory instead of Deno KV (tests). @default false */
  memory?: boolean | undefined;
  /** This isolate's id (`welcome.node`, and on every backplane event). */
  node: string;
  /** A serving isolate of a cluster: how it reaches its coordinator. @default undefined */
  cluster?: ClusterLink | undefined;
  /** Hears every presence change this node makes take effect (webhooks). @default undefined */
  onPresenceChange?: ((change: PresenceChange) => void) | undefined;
}

/** An engine of `parts` whose `close` closes the backplane, the presence, then the store. */
export function engineOf(parts: Omit<Engine, "close">): Engine {
  return {
    ...parts,
    async close() {
      await parts.backplane.close();
      await parts.presence.close();
      await parts.store.close();
    },
  };
}
