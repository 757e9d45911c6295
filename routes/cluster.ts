/**
 * `ROOMCAST_WORKERS=N` (N > 1): N isolates serve the port together (SO_REUSEPORT: the kernel
 * spreads connections over them): this one, the coordinator, and N - 1 Workers. The coordinator
 * owns the store (one sequencer numbers every room's messages, whichever isolate publishes) and the
 * shared presence; Workers call them over `postMessage`, the coordinator's own serving isolate
 * directly. The coordinator pushes each message it stores to the other isolates subscribed to its
 * room, and relays the events nothing stores (member events, directs, broadcasts, resets) the same
 * way; only signals go over BroadcastChannel, at most once (or through the coordinator where
 * BroadcastChannel is missing). A Worker that dies, or stops renewing its presence lease, is
 * replaced, and its connections leave its rooms.
 */
import { type Clock, systemClock } from "../lib/clock.ts";
import type { Config } from "../lib/config.ts";
import { Relay } from "../lib/engine/backplane_relay.ts";
import { createStore } from "../lib/engine/engine.ts";
import { NodePresence } from "../lib/engine/presence_nodes.ts";
import { type Caller, DirectCaller, type Port, RpcClient, type RpcHandler, serveRpc } from "../lib/engine/rpc.ts";
import { storeHandlers, TellingStore } from "../lib/engine/store_remote.ts";
import type { Store } from "../lib/engine/store.ts";
import { nodeId, randomId } from "../lib/ids.ts";
import { gatherMetricsTexts, Metrics } from "../lib/metrics.ts";
import { SharedCounts } from "../lib/shared_counts.ts";
import { defaultMaxConnections, fdLimit } from "./server.ts";
import { startIsolate, type WorkerReport, type WorkerStart } from "./isolate.ts";
import type { ForwardedRequest, ForwardedResponse } from "./eio/forward.ts";

/** The answer to a request for a session whose Worker is gone. */
const UNKNOWN_SESSION: ForwardedResponse = {
  status: 400,
  headers: [["content-type", "application/json"]],
  body: new TextEncoder().encode(JSON.stringify({ code: 1, message: "Session ID unknown" })),
};

/** The node the coordinator's own events (member events) come from: no serving isolate's. */
const COORDINATOR = "coordinator";
/** How often Workers renew their presence lease, and how long a lapsed one lasts. */
export const RENEW_MS = 1000;
export const LEASE_MS = 5000;
/** How often a serving isolate's rooms check the store for a message no push brought (one stored
 * just as a Worker was replaced). */
const POLL_MS = 1000;
/** How long a Worker has to answer for its metrics before `/metrics` goes without them. */
const METRICS_TIMEOUT_MS = 2000;
/** How long a Worker has to start listening. */
const START_TIMEOUT_MS = 20_000;
/** The least time between two replacements of Workers that died (a Worker that fails at once
 * must not be restarted in a loop). */
const RESPAWN_MS = 1000;
/** Replacements that fail to start are tried again, each wait twice the last, up to this. */
const RESPAWN_MAX_MS = 30_000;

export interface ClusterOptions {
  config: Config;
  clock?: Clock;
  /** Keep history in process memory instead of Deno KV (tests). @default false */
  memory?: boolean;
  onListen?: (addr: Deno.NetAddr) => void;
  /** The Workers' module (tests: one that wraps routes/worker.ts). @default routes/worker.ts */
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

interface Member {
  node: string;
  /** Calls into the isolate (Socket.IO requests forwarded to it, its metrics). */
  client: Caller;
  /** Asks it to drain; resolves once it has. */
  drain(): Promise<void>;
  /** Stops the calls both ways and ends it (a Worker is terminated). */
  stop(): void;
  /** A Worker (replaced when it dies), not the coordinator's own serving isolate. */
  worker: boolean;
  /** Started and listening (a Worker being started is not yet). */
  serving: boolean;
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
  const metrics = new Metrics();
  // With Redis the Workers reach it themselves: the coordinator's store is a placeholder.
  const store = await createStore(config, {
    clock: options.clock ?? systemClock,
    metrics,
    memory: (options.memory ?? false) || config.redisUrl !== undefined,
  });
  const port = config.port === 0 ? freePort(config.hostname) : config.port;
  const namespace = `roomcast-${randomId(10)}`;
  // The coordinator's fan-out: stored messages, and the member events of the shared presence.
  const relay = new Relay();
  const presence = new NodePresence(LEASE_MS, {
    max: config.limits.memberEventsMax,
    tell: (event) => relay.forward(event, COORDINATOR),
  });
  // The limits on connections (in all, per address, their rate) and the users' budgets hold for
  // the process, whichever Worker a client reaches.
  const counts = new SharedCounts({
    regions: config.workers,
    maxConnections: config.maxConnections ?? defaultMaxConnections(fdLimit()),
  });
  /** Which serving isolate counts in each region of `counts`. */
  const regions: (string | undefined)[] = Array(config.workers).fill(undefined);
  // Socket.IO polling requests that reached an isolate other than their session's go to that one.
  const sessions: Record<string, RpcHandler> = {
    "eio.forward": ([owner, request]) => {
      const member = members.get(owner as string);
      if (!member) return UNKNOWN_SESSION;
      return member.client.call<ForwardedResponse>("eio.request", [request as ForwardedRequest])
        .catch(() => UNKNOWN_SESSION);
    },
    "eio.abort": ([owner, id]) => {
      members.get(owner as string)?.client.call("eio.abort", [id]).catch(() => {});
    },
  };
  // `/metrics` on any isolate: the store's figures and every serving isolate's, merged.
  const gather: Record<string, RpcHandler> = {
    "metrics.all": () =>
      gatherMetricsTexts(
        // The store's figures; this isolate's memory is in its serving isolate's text.
        metrics.render(),
        [...members.values()].filter((m) => m.serving).map(({ node, client }) => ({
          name: node,
          text: () => client.call<string>("metrics.text", []),
        })),
        METRICS_TIMEOUT_MS,
      ),
  };
  const handlers = { ...presence.handlers(), ...relay.handlers(), ...sessions, ...gather };
  const members = new Map<string, Member>();
  /** Workers are replaced only once the cluster has started, never faster than every RESPAWN_MS. */
  let running = false;
  let draining = false;
  let lastSpawn = 0;
  /** Replacements in a row that did not start: the next waits longer. */
  let failedStarts = 0;
  /** Replacements waiting for their turn. */
  const respawns = new Set<ReturnType<typeof setTimeout>>();
  /** The least time between two replacements: longer after each that did not start. */
  const respawnPause = () => Math.min(RESPAWN_MAX_MS, RESPAWN_MS * 2 ** failedStarts);

  const expired = (node: string) => {
    relay.remove(node);
    presence.expire(node);
  };

  /** Takes a region of the shared counts for `node`, and says how it starts. */
  const starting = (node: string): WorkerStart => {
    const region = regions.indexOf(undefined);
    if (region < 0) throw new Error("no free region of the shared counts: more isolates than configured");
    regions[region] = node;
    return {
      control: "start",
      config: { ...config, port },
      node,
      namespace,
      renewMs: RENEW_MS,
      pollMs: POLL_MS,
      counts: counts.share(region),
    };
  };

  /** Serves `port`'s calls for `node`: what it stores goes to the other isolates in its room. */
  const serve = (node: string, to: Port) => {
    const serving = serveRpc(to, { ...handlers, ...storeHandlers(store, relay.storedBy(node)) });
    relay.add(node, serving.push);
    return serving;
  };

  /** The coordinator's own serving isolate: the same server as a Worker's, on this thread, so its
   * calls to the coordinator are direct (nothing crosses) and it uses the store itself. */
  const local = async (): Promise<Member> => {
    const node = nodeId();
    const start = starting(node);
    const toCoordinator = new DirectCaller();
    toCoordinator.serve(handlers);
    relay.add(node, (value) => toCoordinator.push(value));
    const toLocal = new DirectCaller();
    const stop = () => {
      toCoordinator.close();
      toLocal.close();
    };
    const server = await startIsolate({
      caller: toCoordinator,
      serve: (handlers) => toLocal.serve(handlers),
      store: new TellingStore(store, relay.storedBy(node)),
    }, start).catch((error) => {
      stop();
      throw error;
    });
    const member: Member = {
      node,
      client: toLocal,
      worker: false,
      serving: true,
      drain: () => server.drain(4000),
      stop,
    };
    members.set(node, member);
    return member;
  };

  const spawn = (): Promise<Member> => {
    const node = nodeId();
    let start: WorkerStart;
    try {
      start = starting(node);
    } catch (error) {
      return Promise.reject(error);
    }
    const worker = new Worker(options.workerModule ?? new URL("./worker.ts", import.meta.url), { type: "module" });
    const serving = serve(node, worker);
    const client = new RpcClient(worker);
    // Started below, or failed in time (`failed` is called once this has run).
    const timer = setTimeout(() => failed(`no answer in ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
    const member: Member = {
      node,
      client,
      worker: true,
      serving: false,
      drain: () =>
        new Promise<void>((resolve) => {
          worker.addEventListener("message", (event: MessageEvent) => {
            if ((event.data as Partial<WorkerReport>).control === "drained") resolve();
          });
          worker.postMessage({ control: "drain", node });
        }),
      stop() {
        clearTimeout(timer);
        serving.stop();
        client.close();
        worker.terminate();
      },
    };
    members.set(node, member);
    const started = Promise.withResolvers<Member>();
    let settled = false;
    const failed = (why: string) => {
      if (settled) return;
      settled = true;
      failedStarts++;
      started.reject(new Error(`worker ${node} did not start: ${why}`));
      // Once the cluster runs, a Worker that can't start is ended and tried again, later each time.
      if (running) replace(node);
    };
    worker.addEventListener("message", (event: MessageEvent) => {
      const report = event.data as Partial<WorkerReport>;
      if (report.control === "listening" && !settled) {
        settled = true;
        failedStarts = 0;
        member.serving = true;
        started.resolve(member);
      }
      if (report.control === "failed") failed(String(report.error));
    });
    worker.addEventListener("error", (event) => {
      event.preventDefault();
      console.error(`roomcast: worker ${node} failed: ${event.message}; starting another`);
      if (settled) replace(node);
      else failed(event.message);
    });
    worker.postMessage(start);
    return started.promise.finally(() => clearTimeout(timer));
  };

  /** Ends a Worker (crashed, lapsed, killed) and starts another in its place. */
  const replace = (node: string) => {
    const member = members.get(node);
    // The coordinator's own isolate ends only with the process.
    if (!member?.worker) return;
    members.delete(node);
    member.stop();
    expired(node);
    // Its connections are gone: their slots are free.
    const region = regions.indexOf(node);
    if (region >= 0) {
      counts.clear(region);
      regions[region] = undefined;
    }
    if (!running || draining) return;
    const wait = Math.max(0, lastSpawn + respawnPause() - Date.now());
    lastSpawn = Date.now() + wait;
    const respawn = setTimeout(() => {
      respawns.delete(respawn);
      if (draining) return;
      spawn().catch((error) =>
        console.error(
          `roomcast: replacing a worker failed (${error}); trying again in ${respawnPause() / 1000} s`,
        )
      );
    }, wait);
    respawns.add(respawn);
  };

  let checked = Date.now();
  const lapses = setInterval(() => {
    const now = Date.now();
    // Late by more than a renewal: this thread was held up (its own serving isolate busy), and the
    // Workers' renewals may still be waiting behind that, so a lapse now says nothing about them.
    // The next check judges. (On time, the last renewal handled is at most 4.5 s old.)
    const late = now - checked > LEASE_MS / 2 + RENEW_MS;
    checked = now;
    if (late) return;
    for (const node of presence.lapsed()) {
      // This thread's own isolate renews on this thread: a lapse means this thread was held up.
      if (members.get(node)?.worker === false) continue;
      if (members.has(node)) {
        console.error(
          `roomcast: worker ${node} stopped renewing its lease; starting another (if its thread is stuck in a ` +
            "loop, Deno can't end it: it keeps a core and its connections until the process restarts)",
        );
        replace(node);
      } else expired(node);
    }
  }, LEASE_MS / 2);

  try {
    // config.workers isolates serve: this one, and Workers for the rest.
    await Promise.all([local(), ...Array.from({ length: config.workers - 1 }, () => spawn())]);
    running = true;
  } catch (error) {
    clearInterval(lapses);
    for (const member of members.values()) member.stop();
    await store.close();
    throw error;
  }
  const hostname = config.hostname;
  options.onListen?.({ transport: "tcp", hostname, port });
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;

  let drained: Promise<void> | undefined;
  const drain = (timeoutMs = 5000): Promise<void> => {
    drained ??= (async () => {
      draining = true;
      clearInterval(lapses);
      for (const respawn of respawns) clearTimeout(respawn);
      const all = [...members.values()];
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.all(all.map((member) => member.drain().catch(() => {}))),
        new Promise((resolve) => timer = setTimeout(resolve, timeoutMs)),
      ]);
      clearTimeout(timer);
      for (const member of all) member.stop();
      members.clear();
      await store.close();
    })();
    return drained;
  };

  return {
    url: `http://${host}:${port}`,
    metrics,
    store,
    nodes: () => [...members.values()].filter((m) => m.serving).map((m) => m.node),
    workers: () => [...members.values()].filter((m) => m.worker && m.serving).map((m) => m.node),
    kill(node) {
      if (members.get(node)?.worker === false) throw new Error("the coordinator's own isolate ends with the process");
      replace(node);
    },
    drain,
    [Symbol.asyncDispose]: () => drain(),
  };
}
