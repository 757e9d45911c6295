/**
 * `ROOMCAST_WORKERS=N` (N > 1): N isolates serve the port together (SO_REUSEPORT: the kernel
 * spreads connections over them), run by a coordinator (lib/engine/cluster/coordinator.ts) on this
 * thread, which serves as one of them; the others are Workers (routes/serve/worker.ts). Each
 * isolate serves as routes/serve/isolate.ts says.
 */
import type { Clock } from "../../lib/clock.ts";
import type { Config } from "../../lib/config.ts";
import { Coordinator } from "../../lib/engine/cluster/coordinator.ts";
import type { Store } from "../../lib/engine/store.ts";
import type { Metrics } from "../../lib/metrics.ts";
import { startIsolate } from "./isolate.ts";
import { defaultMaxConnections, fdLimit } from "./server.ts";

export interface ClusterOptions {
  config: Config;
  clock?: Clock;
  /** Keep history in process memory instead of Deno KV (tests). @default false */
  memory?: boolean;
  onListen?: (addr: Deno.NetAddr) => void;
  /** The Workers' module (tests: one that wraps routes/serve/worker.ts). @default routes/serve/worker.ts */
  workerModule?: URL;
}

export interface RunningCluster {
  url: string;
  metrics: Metrics;
  store: Store;
  /** The serving isolates' node ids, as `welcome.node` names them (the coordinator's own among them):
   * those started and listening. */
  nodes(): string[];
  /** The Workers' node ids (the serving isolates that can die and be replaced), started and listening. */
  workers(): string[];
  /** Ends a Worker as a crash would (tests): it is replaced, and its connections leave. */
  kill(node: string): void;
  drain(timeoutMs?: number): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** A free port on `hostname`: for Workers that share it (each binding port 0 would get its own),
 * and for servers a test or the bench restarts on the same address. */
export function freePort(hostname = "127.0.0.1"): number {
  const listener = Deno.listen({ hostname, port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

export async function startCluster(options: ClusterOptions): Promise<RunningCluster> {
  const { config } = options;
  const port = config.port === 0 ? freePort(config.hostname) : config.port;
  const coordinator = new Coordinator({
    config,
    port,
    maxConnections: config.maxConnections ?? defaultMaxConnections(fdLimit()),
    workerModule: options.workerModule ?? new URL("./worker.ts", import.meta.url),
    startHere: startIsolate,
    clock: options.clock,
    memory: options.memory,
  });
  await coordinator.start();
  const { hostname } = config;
  options.onListen?.({ transport: "tcp", hostname, port });
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  return {
    url: `http://${host}:${port}`,
    metrics: coordinator.metrics,
    store: coordinator.store,
    nodes: () => coordinator.nodes(),
    workers: () => coordinator.workers(),
    kill: (node) => coordinator.kill(node),
    drain: (timeoutMs) => coordinator.drain(timeoutMs),
    [Symbol.asyncDispose]: () => coordinator.drain(),
  };
}
