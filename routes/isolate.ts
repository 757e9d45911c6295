/**
 * One serving isolate of a cluster (routes/cluster.ts): a whole server on its share of the port
 * (`reusePort`), whose store and presence are the coordinator's, reached through an `IsolateLink`:
 * a Worker's `postMessage` (routes/worker.ts, `portLink`), or direct calls where the isolate is
 * the coordinator's own, which serves too. The coordinator pushes it the messages other isolates
 * store and their member events, directs, broadcasts and resets; signals come over
 * BroadcastChannel (lib/engine/backplane_relay.ts).
 */
import type { Config } from "../lib/config.ts";
import { BroadcastChannelBackplane, hasBroadcastChannel } from "../lib/engine/backplane_broadcast.ts";
import { ClusterBackplane } from "../lib/engine/backplane_relay.ts";
import { RemotePresence } from "../lib/engine/presence_nodes.ts";
import { type Caller, type Port, RpcClient, type RpcHandler, serveRpc } from "../lib/engine/rpc.ts";
import type { Store } from "../lib/engine/store.ts";
import { RemoteStore } from "../lib/engine/store_remote.ts";
import { type RunningServer, startServer } from "./server.ts";
import { createRedisEngine, type Engine } from "../lib/engine/engine.ts";
import { systemClock } from "../lib/clock.ts";
import { Metrics, metricsText } from "../lib/metrics.ts";
import { SharedCounts, type SharedCountsShare } from "../lib/shared_counts.ts";
import {
  type ForwardedRequest,
  type ForwardedResponse,
  forwardedResponse,
  type SessionRouting,
} from "./eio/forward.ts";

/** Socket.IO sessions across Workers: forwards go through the coordinator, which calls the owner. */
class WorkerRouting implements SessionRouting {
  readonly #controllers = new Map<string, AbortController>();
  #handler: ((request: ForwardedRequest, signal: AbortSignal) => Promise<Response>) | undefined;

  constructor(readonly node: string, readonly rpc: Caller) {}

  forward(owner: string, request: ForwardedRequest): Promise<ForwardedResponse> {
    return this.rpc.call("eio.forward", [owner, request]);
  }

  abort(owner: string, id: string): void {
    this.rpc.call("eio.abort", [owner, id]).catch(() => {});
  }

  serve(handler: (request: ForwardedRequest, signal: AbortSignal) => Promise<Response>): void {
    this.#handler = handler;
  }

  /** What the coordinator calls on this Worker. */
  handlers(): Record<string, RpcHandler> {
    return {
      "eio.request": async ([request]) => {
        const forwarded = request as ForwardedRequest;
        if (!this.#handler) throw new Error("this Worker serves no Socket.IO sessions");
        const controller = new AbortController();
        this.#controllers.set(forwarded.id, controller);
        try {
          return await forwardedResponse(await this.#handler(forwarded, controller.signal));
        } finally {
          this.#controllers.delete(forwarded.id);
        }
      },
      "eio.abort": ([id]) => {
        this.#controllers.get(id as string)?.abort();
      },
    };
  }
}

/** What the coordinator sends to start a serving isolate. */
export interface WorkerStart {
  control: "start";
  config: Config;
  node: string;
  namespace: string;
  renewMs: number;
  pollMs: number;
  /** The counts shared by every Worker (connections and budgets), and this one's region in them. */
  counts: SharedCountsShare;
}

/** What a Worker says back to the coordinator. */
export type WorkerReport =
  | { control: "listening"; node: string; port: number }
  | { control: "failed"; node: string; error: string }
  | { control: "drained"; node: string };

/** How a serving isolate and its coordinator reach each other. */
export interface IsolateLink {
  /** Calls to the coordinator. */
  caller: Caller;
  /** Serves the coordinator's calls to this isolate. */
  serve(handlers: Record<string, RpcHandler>): void;
  /** The coordinator's store itself, where this isolate shares the coordinator's thread; absent,
   * the store is called through `caller`. */
  store?: Store;
}

/** The link of a Worker: `postMessage` on `port`. */
export function portLink(port: Port): IsolateLink {
  return { caller: new RpcClient(port), serve: (handlers) => void serveRpc(port, handlers) };
}

/** Starts a serving isolate whose coordinator is at the other end of `link`. */
export async function startIsolate(
  link: IsolateLink,
  { config, node, namespace, renewMs, pollMs, counts }: WorkerStart,
): Promise<RunningServer> {
  let server: RunningServer | undefined;
  const rpc = link.caller;
  const sessions = new WorkerRouting(node, rpc);
  link.serve({
    ...sessions.handlers(),
    "metrics.text": () => server ? metricsText(server.metrics) : "",
  });
  let engine: Engine;
  if (config.redisUrl) {
    // With Redis every serving isolate is a process of its own to the engine: its store,
    // backplane and presence are Redis', reached directly.
    const redis = await createRedisEngine(config, { clock: systemClock, metrics: new Metrics(), node });
    engine = {
      ...redis,
      async close() {
        await redis.close();
        rpc.close();
      },
    };
  } else {
    const broadcast = hasBroadcastChannel() ? new BroadcastChannelBackplane({ node, namespace }) : undefined;
    const backplane = new ClusterBackplane(rpc, node, broadcast);
    const presence = new RemotePresence(rpc, node, renewMs);
    engine = {
      store: link.store ?? new RemoteStore(rpc),
      backplane,
      presence,
      async close() {
        await backplane.close();
        await presence.close();
        rpc.close();
      },
    };
  }
  const allMetrics = () => rpc.call<string>("metrics.all", []);
  try {
    server = await startServer({
      config,
      isolate: {
        engine,
        node,
        pollMs: engine.pollMs ?? pollMs,
        sessions,
        allMetrics,
        counts: new SharedCounts(counts),
      },
    });
  } catch (error) {
    await engine.close();
    throw error;
  }
  return server;
}
