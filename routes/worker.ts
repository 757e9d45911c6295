/**
 * One Worker of a cluster (routes/cluster.ts): a whole server on its share of the port
 * (`reusePort`), whose store and presence are the coordinator's (over `postMessage`): the
 * coordinator pushes it the messages other Workers store, and the other events come over
 * BroadcastChannel. It starts when the coordinator says so, and drains when told.
 */
/// <reference lib="deno.worker" />
import type { Config } from "../lib/config.ts";
import { BroadcastChannelBackplane, hasBroadcastChannel } from "../lib/engine/backplane_broadcast.ts";
import { ClusterBackplane } from "../lib/engine/backplane_relay.ts";
import { RemotePresence } from "../lib/engine/presence_nodes.ts";
import { RpcClient, type RpcHandler, serveRpc } from "../lib/engine/rpc.ts";
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

  constructor(readonly node: string, readonly rpc: RpcClient) {}

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

/** What the coordinator sends to start a Worker. */
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

/** What a Worker says back. */
export type WorkerReport =
  | { control: "listening"; node: string; port: number }
  | { control: "failed"; node: string; error: string }
  | { control: "drained"; node: string };

let server: RunningServer | undefined;

async function start({ config, node, namespace, renewMs, pollMs, counts }: WorkerStart): Promise<void> {
  const rpc = new RpcClient(self);
  const sessions = new WorkerRouting(node, rpc);
  serveRpc(self, {
    ...sessions.handlers(),
    "metrics.text": () => server ? metricsText(server.metrics) : "",
  });
  let engine: Engine;
  if (config.redisUrl) {
    // With Redis every Worker is a process of its own to the engine: its store, backplane and
    // presence are Redis', reached directly.
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
      store: new RemoteStore(rpc),
      backplane,
      presence,
      async close() {
        await backplane.close();
        await presence.close();
        rpc.close();
      },
    };
  }
  try {
    const allMetrics = () => rpc.call<string>("metrics.all", []);
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
    self.postMessage({ control: "listening", node, port: Number(new URL(server.url).port) } satisfies WorkerReport);
  } catch (error) {
    self.postMessage({ control: "failed", node, error: String(error) } satisfies WorkerReport);
  }
}

// An error no code path handled is a bug: logged, and this Worker goes on serving its connections
// (main.ts does the same for the coordinator).
for (const type of ["error", "unhandledrejection"] as const) {
  self.addEventListener(type, (event: Event) => {
    event.preventDefault();
    const error = event instanceof PromiseRejectionEvent ? event.reason : (event as ErrorEvent).error;
    server?.metrics.unexpected.inc();
    console.error(`roomcast: ${type === "error" ? "uncaught exception" : "unhandled rejection"} (a bug):`, error);
  });
}

self.addEventListener("message", (event: MessageEvent) => {
  const data = event.data as { control?: string };
  if (data?.control === "start") void start(event.data as WorkerStart);
  if (data?.control === "drain") {
    const node = (event.data as { node: string }).node;
    void (server?.drain(4000) ?? Promise.resolve()).finally(() =>
      self.postMessage({ control: "drained", node } satisfies WorkerReport)
    );
  }
});
