/**
 * One serving isolate of a cluster (routes/serve/cluster.ts): a whole server on its share of the
 * port (`reusePort`), whose engine is its coordinator's (lib/engine/cluster/), reached over a link:
 * a Worker's `postMessage` (`portLink`), or direct calls where the isolate is the coordinator's
 * own. It serves the coordinator's calls: its metrics, and Socket.IO requests for the sessions it
 * holds that reached another isolate.
 */
import { webhooksOf } from "../../lib/webhooks.ts";
import type { ClusterLink } from "../../lib/engine/cluster/engine.ts";
import type { IsolateStart, LocalIsolate } from "../../lib/engine/cluster/coordinator.ts";
import { type Caller, type Port, RpcClient, type RpcHandler, serveRpc } from "../../lib/engine/cluster/rpc.ts";
import { createEngine } from "../../lib/engine/create.ts";
import { systemClock } from "../../lib/clock.ts";
import { Metrics, metricsText } from "../../lib/metrics.ts";
import { SharedCounts } from "../../lib/shared_counts.ts";
import { type RunningServer, startServer } from "./server.ts";
import {
  type ForwardedRequest,
  type ForwardedResponse,
  forwardedResponse,
  type SessionRouting,
} from "../transports/socketio/eio/forward.ts";

/** The answer to a request for a session whose isolate is gone. */
const UNKNOWN_SESSION: ForwardedResponse = {
  status: 400,
  headers: [["content-type", "application/json"]],
  body: new TextEncoder().encode(JSON.stringify({ code: 1, message: "Session ID unknown" })),
};

/** Socket.IO sessions across isolates: a request goes through the coordinator to the owner. */
class IsolateRouting implements SessionRouting {
  readonly #controllers = new Map<string, AbortController>();
  #handler: ((request: ForwardedRequest, signal: AbortSignal) => Promise<Response>) | undefined;

  constructor(readonly node: string, readonly rpc: Caller) {}

  forward(owner: string, request: ForwardedRequest): Promise<ForwardedResponse> {
    return this.rpc.call<ForwardedResponse>("isolate.call", [owner, "eio.request", [request]])
      .catch(() => UNKNOWN_SESSION);
  }

  abort(owner: string, id: string): void {
    this.rpc.call("isolate.call", [owner, "eio.abort", [id]]).catch(() => {});
  }

  serve(handler: (request: ForwardedRequest, signal: AbortSignal) => Promise<Response>): void {
    this.#handler = handler;
  }

  /** What the coordinator calls on this isolate for the others. */
  handlers(): Record<string, RpcHandler> {
    return {
      "eio.request": async ([request]) => {
        const forwarded = request as ForwardedRequest;
        if (!this.#handler) throw new Error("this isolate serves no Socket.IO sessions");
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

/** How a serving isolate and its coordinator reach each other. */
export type IsolateLink = ClusterLink & {
  /** Serves the coordinator's calls to this isolate. */
  serve(handlers: Record<string, RpcHandler>): void;
};

/** The link of a Worker: `postMessage` on `port`. */
export function portLink(port: Port, start: IsolateStart): IsolateLink {
  return {
    caller: new RpcClient(port),
    serve: (handlers) => void serveRpc(port, handlers),
    renewMs: start.renewMs,
    namespace: start.namespace,
  };
}

/** Starts a serving isolate whose coordinator is at the other end of `link`. */
export async function startIsolate(link: IsolateLink, start: IsolateStart): Promise<RunningServer & LocalIsolate> {
  const { config, node, pollMs, counts } = start;
  let server: RunningServer | undefined;
  const rpc = link.caller;
  const sessions = new IsolateRouting(node, rpc);
  link.serve({
    ...sessions.handlers(),
    "metrics.text": () => server ? metricsText(server.metrics) : "",
  });
  // With Redis every isolate reaches it itself (and its presence changes are made, and their
  // webhooks sent, here); otherwise the engine is the coordinator's.
  const metrics = new Metrics();
  const webhooks = webhooksOf(config, systemClock, metrics);
  const engine = await createEngine(config, {
    clock: systemClock,
    metrics,
    node,
    cluster: link,
    onPresenceChange: webhooks && ((change) => webhooks.memberChange(change)),
  });
  const close = engine.close;
  engine.close = async () => {
    await close();
    rpc.close();
  };
  try {
    server = await startServer({
      config,
      isolate: {
        engine,
        node,
        pollMs: engine.pollMs ?? pollMs,
        sessions,
        allMetrics: () => rpc.call<string>("metrics.all", []),
        counts: new SharedCounts(counts),
        webhooks,
        metrics,
      },
    });
  } catch (error) {
    await engine.close();
    throw error;
  }
  return server;
}
