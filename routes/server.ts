/**
 * Wires and serves one isolate: config → engine → hub → app → `Deno.serve`, with a graceful
 * `drain()` (healthz 503, close every socket with 1001, flush the store, stop listening).
 * main.ts and the integration tests start the server the same way.
 */
import { type Clock, systemClock } from "../lib/clock.ts";
import type { Config } from "../lib/config.ts";
import { createEngine, type Engine } from "../lib/engine/engine.ts";
import { Hub } from "../lib/hub.ts";
import { nodeId } from "../lib/ids.ts";
import { Metrics } from "../lib/metrics.ts";
import { CloseCode } from "../lib/protocol.ts";
import { createApp } from "./app.ts";
import type { AppEnv, ServerState } from "./deps.ts";
import type { Hono } from "hono";

export interface ServerOptions {
  config: Config;
  /** @default systemClock */
  clock?: Clock;
  /** Keep history in process memory instead of Deno KV. @default false */
  memory?: boolean;
  /** Start the heartbeat timer (tests with a manual clock call `hub.tick()` instead). @default true */
  heartbeat?: boolean;
  onListen?: (addr: Deno.NetAddr) => void;
}

export interface RunningServer {
  /** `http://host:port` of the listening socket. */
  url: string;
  /** The Hono app, for in-process requests (tests that need a given remote address). */
  app: Hono<AppEnv>;
  hub: Hub;
  metrics: Metrics;
  engine: Engine;
  state: ServerState;
  /** Stops gracefully within `timeoutMs`; safe to call twice. */
  drain(timeoutMs?: number): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { config } = options;
  const clock = options.clock ?? systemClock;
  const metrics = new Metrics();
  const engine = await createEngine(config, { clock, metrics, memory: options.memory ?? false });
  const hub = new Hub({
    store: engine.store,
    backplane: engine.backplane,
    clock,
    metrics,
    limits: config.limits,
    heartbeatMs: config.heartbeatMs,
    historyLimit: config.historyLimit,
    historyTtlMs: config.historyTtlMs,
    node: nodeId(),
  });
  const state: ServerState = { draining: false };
  const app = createApp({ hub, config, metrics, clock, state });
  const server = Deno.serve({
    hostname: config.hostname,
    port: config.port,
    onListen: (addr) => options.onListen?.(addr),
  }, (request, info) => app.fetch(request, info));
  if (options.heartbeat ?? true) hub.startHeartbeat();
  const host = server.addr.hostname.includes(":") ? `[${server.addr.hostname}]` : server.addr.hostname;
  let drained: Promise<void> | undefined;

  const drain = (timeoutMs = 5000): Promise<void> => {
    drained ??= (async () => {
      state.draining = true;
      hub.close(CloseCode.goingAway, "Server shutting down");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<void>((resolve) => timer = setTimeout(resolve, timeoutMs));
      await Promise.race([server.shutdown(), timeout]);
      clearTimeout(timer);
      await engine.close();
    })();
    return drained;
  };
  return {
    url: `http://${host}:${server.addr.port}`,
    app,
    hub,
    metrics,
    engine,
    state,
    drain,
    [Symbol.asyncDispose]: () => drain(),
  };
}
