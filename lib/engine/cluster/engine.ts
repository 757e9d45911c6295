/**
 * The engine of a cluster's serving isolate (`ROOMCAST_WORKERS`): its store and presence are the
 * coordinator's (cluster/coordinator.ts), called over the isolate's link (a Worker's `postMessage`,
 * or direct calls on the coordinator's own thread). The coordinator pushes it the messages other
 * isolates store and the events nothing stores; signals cross over BroadcastChannel.
 */
import type { ClusterLink, Engine } from "../engine.ts";
import { ClusterBackplane } from "./backplane.ts";
import { BroadcastChannelBackplane, hasBroadcastChannel } from "./broadcast.ts";
import { RemotePresence } from "./presence.ts";
import { RemoteStore } from "./store.ts";

export type { ClusterLink };

export function createClusterEngine(link: ClusterLink, node: string): Engine {
  const { caller } = link;
  const broadcast = hasBroadcastChannel()
    ? new BroadcastChannelBackplane({ node, namespace: link.namespace })
    : undefined;
  const backplane = new ClusterBackplane(caller, node, broadcast);
  const presence = new RemotePresence(caller, node, link.renewMs);
  return {
    store: link.store ?? new RemoteStore(caller),
    backplane,
    presence,
    async close() {
      await backplane.close();
      await presence.close();
    },
  };
}
