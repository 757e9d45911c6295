/**
 * Wires and serves one isolate: config → engine → hub → app → `Deno.serve`, with a graceful
 * `drain()` (healthz 503, close every socket with 1001, flush the store, stop listening).
 * main.ts and the integration tests start the server the same way.
 */
import type { SessionRouting } from "../transports/socketio/eio/forward.ts";
import { Admission } from "../../lib/admission.ts";
import type { SharedCounts } from "../../lib/shared_counts.ts";
import { type Clock, systemClock } from "../../lib/clock.ts";
import type { Config } from "../../lib/config.ts";
import { createEngine } from "../../lib/engine/create.ts";
import type { Engine } from "../../lib/engine/engine.ts";
import { proxyOf } from "../../lib/proxy.ts";
import { Hub } from "../../lib/hub.ts";
import { nodeId } from "../../lib/ids.ts";
import { Metrics } from "../../lib/metrics.ts";
import { type Webhooks, webhooksOf } from "../../lib/webhooks.ts";
import { CloseCode } from "../../lib/protocol.ts";
import { createApp } from "../app.ts";
import { serveHandler } from "./head.ts";
import type { AppEnv, ServerState } from "../deps.ts";
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
  /** A Worker of a cluster (routes/serve/worker.ts): the engine it was given, its node id, its share of
   * the port (`reusePort`) and how often its rooms check the store. @default undefined */
  isolate?: {
    engine: Engine;
    node: string;
    pollMs: number;
    sessions?: SessionRouting;
    /** Every isolate's metrics, merged, for `/metrics`. */
    allMetrics?: () => Promise<string>;
    /** The counts every Worker of the process limits connections and budgets against. */
    counts?: SharedCounts;
    /** Its webhooks (made with its engine, whose presence reports to them), and its metrics. */
    webhooks?: Webhooks | undefined;
    metrics?: Metrics;
  };
}

export interface RunningServer {
  /** `http://host:port` of the listening socket. */
  url: string;
  /** The Hono app, for in-process requests (tests that need a given remote address). */
  app: Hono<AppEnv>;
  /** The configuration it runs with. */
  config: Config;
  hub: Hub;
  admission: Admission;
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
  const metrics = options.isolate?.metrics ?? new Metrics();
  const node = options.isolate?.node ?? nodeId();
  const webhooks = options.isolate ? options.isolate.webhooks : webhooksOf(config, clock, metrics);
  const engine = options.isolate?.engine ??
    await createEngine(config, {
      clock,
      metrics,
      memory: options.memory ?? false,
      node,
      onPresenceChange: webhooks && ((change) => webhooks.memberChange(change)),
    });
  const proxy = proxyOf(config.proxy, clock, metrics, config.workers);
  const hub = new Hub({
    store: engine.store,
    backplane: engine.backplane,
    presence: engine.presence,
    clock,
    metrics,
    limits: config.limits,
    heartbeatMs: config.heartbeatMs,
    leaveGraceMs: config.leaveGraceMs,
    historyLimit: config.historyLimit,
    historyTtlMs: config.historyTtlMs,
    node,
    pollMs: options.isolate?.pollMs ?? engine.pollMs,
    shared: options.isolate?.counts,
    process: processName(),
    proxy,
  });
  const state: ServerState = { draining: false };
  const maxConnections = config.maxConnections ?? defaultMaxConnections(fdLimit());
  metrics.gauge("roomcast_connections_max", "WebSocket and SSE connections allowed at once", () => maxConnections);
  const admission = new Admission({
    maxConnections,
    maxPerAddress: config.maxConnectionsPerIp,
    connectBurst: config.connectBurst,
    connectWindowMs: config.connectWindowMs,
    clock,
    shared: options.isolate?.counts,
  });
  const app = createApp({
    hub,
    admission,
    config,
    metrics,
    clock,
    state,
    webhooks,
    sessions: options.isolate?.sessions,
    allMetrics: options.isolate?.allMetrics,
    proxy,
    engineName: options.memory ? "memory" : config.redisUrl ? "redis" : options.isolate ? "cluster" : "kv",
    engineHealth: engine.health ? () => engine.health?.() ?? { engine: "local", state: "up" } : undefined,
  });
  const server = new Listener(config, serveHandler(app), metrics, options.onListen, options.isolate !== undefined);
  if (options.heartbeat ?? true) hub.startHeartbeat();
  const host = server.addr.hostname.includes(":") ? `[${server.addr.hostname}]` : server.addr.hostname;
  let drained: Promise<void> | undefined;

  const drain = (timeoutMs = 5000): Promise<void> => {
    drained ??= (async () => {
      state.draining = true;
      hub.close(CloseCode.goingAway, "Server shutting down");
      for (const stop of state.stops ?? []) stop();
      // A turn of the event loop for the close frames to go out as sent (a Pusher client's 4200):
      // Deno's shutdown would close the sockets still open with 1001 first.
      await new Promise((resolve) => setTimeout(resolve, 0));
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<void>((resolve) => timer = setTimeout(resolve, timeoutMs));
      await Promise.race([server.shutdown(), timeout]);
      clearTimeout(timer);
      // The closed connections' presence is removed (a shared presence must not keep them), within a second.
      await Promise.race([hub.presenceWritten(), new Promise((resolve) => timer = setTimeout(resolve, 1000))]);
      clearTimeout(timer);
      // The last changes' webhooks get one more try.
      await webhooks?.close();
      await engine.close();
    })();
    return drained;
  };
  return {
    url: `http://${host}:${server.addr.port}`,
    app,
    config,
    hub,
    admission,
    metrics,
    engine,
    state,
    drain,
    [Symbol.asyncDispose]: () => drain(),
  };
}

/** This process as the dashboard names it: `host:pid` (the host where the platform tells it). */
function processName(): string {
  try {
    return `${Deno.hostname()}:${Deno.pid}`;
  } catch {
    return `pid ${Deno.pid}`;
  }
}

/** The soft limit on open files where the platform tells, else `undefined`. Deno raises the soft
 * limit to the hard one when it starts, so this is as high as the process may go. Deno lets only
 * `--allow-all` read /proc/self, so `deno task start` asks util-linux's `prlimit`, which it may run
 * (`--allow-run=prlimit`), and nothing else. */
export function fdLimit(): number | undefined {
  try {
    return openFiles(/^Max open files\s+(\d+|unlimited)/m.exec(Deno.readTextFileSync("/proc/self/limits"))?.[1]);
  } catch {
    // Not Linux, or not allowed: prlimit, where it may run.
  }
  try {
    if (Deno.permissions.querySync({ name: "run", command: "prlimit" }).state !== "granted") return undefined;
    const { success, stdout } = new Deno.Command("prlimit", {
      args: ["--pid", String(Deno.pid), "--nofile", "--raw", "--noheadings", "--output=SOFT"],
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    return success ? openFiles(new TextDecoder().decode(stdout).trim()) : undefined;
  } catch {
    return undefined;
  }
}

function openFiles(text: string | undefined): number | undefined {
  if (text === "unlimited") return Infinity;
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : undefined;
}

/** Connections allowed by default: 80 % of the file descriptors less 64 (the KV files, the
 * listener, HTTP requests and connections not yet past their headers need the rest), at least 16;
 * 10,000 where the limit is unknown. */
export function defaultMaxConnections(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit)) return 10_000;
  return Math.max(16, Math.floor(limit * 0.8) - 64);
}

/** Retry delays after the server stopped accepting (ms): doubling, at most a second. */
const RELISTEN_MIN_MS = 50;
const RELISTEN_MAX_MS = 1000;
const RELISTEN_LOG_EVERY_MS = 10_000;

/**
 * `Deno.serve`, listening again when its accept loop dies. Out of file descriptors (EMFILE), that
 * loop ends with an error that would end the process (denoland/deno#10148 made `Listener.accept`
 * survive it; `Deno.serve` still gives up); connections already open are not affected. The
 * listener then serves again on the same address as soon as the system lets it, retrying with a
 * growing pause meanwhile.
 */
class Listener {
  readonly addr: Deno.NetAddr;
  #server: Deno.HttpServer<Deno.NetAddr>;
  #stopped = false;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #delay = RELISTEN_MIN_MS;
  #failedAt = -Infinity;
  #loggedAt = -Infinity;

  constructor(
    readonly config: Config,
    readonly handler: Deno.ServeHandler<Deno.NetAddr>,
    readonly metrics: Metrics,
    onListen?: (addr: Deno.NetAddr) => void,
    /** Share the port with the other Workers of this process (SO_REUSEPORT). */
    readonly reusePort = false,
  ) {
    // The first listen may fail (port in use): start-up fails with it.
    this.#server = this.#serve(config.port, (addr) => onListen?.(addr));
    this.addr = this.#server.addr;
  }

  #serve(port: number, onListen: (addr: Deno.NetAddr) => void): Deno.HttpServer<Deno.NetAddr> {
    const { hostname } = this.config;
    const server = Deno.serve({ hostname, port, onListen, reusePort: this.reusePort }, this.handler);
    server.finished.catch((error) => this.#failed(error));
    return server;
  }

  #failed(error: unknown): void {
    if (this.#stopped) return;
    this.metrics.acceptErrors.inc();
    const now = Date.now();
    // A failure long after the last one starts the pauses over.
    if (now - this.#failedAt >= RELISTEN_LOG_EVERY_MS) this.#delay = RELISTEN_MIN_MS;
    this.#failedAt = now;
    if (now - this.#loggedAt >= RELISTEN_LOG_EVERY_MS) {
      this.#loggedAt = now;
      const why = error instanceof Error ? error.message : String(error);
      console.error(
        `roomcast: the server stopped accepting connections (${why}); listening again as soon as it can ` +
          `(lower ROOMCAST_MAX_CONNECTIONS or raise ulimit -n if this recurs)`,
      );
    }
    this.#retry = setTimeout(() => this.#relisten(), this.#delay);
    this.#delay = Math.min(this.#delay * 2, RELISTEN_MAX_MS);
  }

  #relisten(): void {
    this.#retry = undefined;
    if (this.#stopped) return;
    try {
      this.#server = this.#serve(this.addr.port, () => {});
    } catch (error) {
      this.#failed(error);
    }
  }

  /** Stops accepting and finishes the requests in flight. */
  async shutdown(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retry);
    await this.#server.shutdown().catch(() => {});
  }
}
