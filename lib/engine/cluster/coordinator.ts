/**
 * The coordinator of a process's serving isolates (`ROOMCAST_WORKERS=N`): it owns the store (one
 * sequencer numbers every room's messages, whichever isolate publishes), the shared presence
 * (which tells member events as they take effect) and the relay that pushes each stored message
 * and each event nothing stores to the isolates subscribed to its room. It serves as one of the N
 * isolates itself (its calls to itself are direct) and runs N − 1 Workers, which it starts,
 * watches (a lease renewed every RENEW_MS) and replaces when they die or fall silent; the leaves of
 * a dead isolate's connections are told. How an isolate serves is the caller's (`IsolateStarter`).
 */
import { type Clock, systemClock } from "../../clock.ts";
import type { Config } from "../../config.ts";
import { nodeId, randomId } from "../../ids.ts";
import { gatherMetricsTexts, Metrics } from "../../metrics.ts";
import { type Webhooks, webhooksOf } from "../../webhooks.ts";
import { SharedCounts, type SharedCountsShare } from "../../shared_counts.ts";
import { createStore } from "../create.ts";
import type { Store } from "../store.ts";
import { Relay } from "./backplane.ts";
import type { ClusterLink } from "./engine.ts";
import { NodePresence } from "./presence.ts";
import { type Caller, DirectCaller, RpcClient, type RpcHandler, serveRpc } from "./rpc.ts";
import { storeHandlers, TellingStore } from "./store.ts";

/** How often isolates renew their presence lease, and how long a lapsed one lasts. */
export const RENEW_MS = 1000;
export const LEASE_MS = 5000;
/** How often a serving isolate's rooms check the store for a message no push brought (one stored
 * just as a Worker was replaced). */
const POLL_MS = 1000;
/** How long an isolate has to answer for its metrics before `/metrics` goes without them. */
const METRICS_TIMEOUT_MS = 2000;
/** How long a Worker has to start listening. */
const START_TIMEOUT_MS = 20_000;
/** The least time between two replacements of Workers that died (a Worker that fails at once
 * must not be restarted in a loop); replacements that fail to start wait twice as long each time,
 * up to RESPAWN_MAX_MS. */
const RESPAWN_MS = 1000;
const RESPAWN_MAX_MS = 30_000;
/** The node the coordinator's own events (member events) come from: no serving isolate's. */
const COORDINATOR = "coordinator";

/** What the coordinator sends to start a serving isolate. */
export interface IsolateStart {
  control: "start";
  config: Config;
  node: string;
  namespace: string;
  renewMs: number;
  pollMs: number;
  /** The counts shared by every isolate (connections and budgets), and this one's region in them. */
  counts: SharedCountsShare;
}

/** What a Worker says back to the coordinator. */
export type IsolateReport =
  | { control: "listening"; node: string; port: number }
  | { control: "failed"; node: string; error: string }
  | { control: "drained"; node: string };

/** What a serving isolate is to the coordinator once started on this thread. */
export interface LocalIsolate {
  drain(timeoutMs: number): Promise<void>;
}

/** Starts the coordinator's own serving isolate over `link` (its calls to the coordinator are
 * direct), serving the coordinator's calls to it with `serve`. */
export type IsolateStarter = (
  link: ClusterLink & { serve(handlers: Record<string, RpcHandler>): void },
  start: IsolateStart,
) => Promise<LocalIsolate>;

export interface CoordinatorOptions {
  config: Config;
  /** The port every isolate serves (SO_REUSEPORT). */
  port: number;
  /** Connections the process allows, all isolates together. */
  maxConnections: number;
  /** The Workers' module. */
  workerModule: URL;
  /** How this thread's own isolate serves. */
  startHere: IsolateStarter;
  /** @default systemClock */
  clock?: Clock | undefined;
  /** Keep history in process memory instead of Deno KV (tests). @default false */
  memory?: boolean | undefined;
}

/** A serving isolate as the coordinator tracks it. */
interface Isolate {
  node: string;
  /** Calls into the isolate (requests forwarded to it, its metrics). */
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

export class Coordinator {
  readonly metrics = new Metrics();
  readonly #options: CoordinatorOptions;
  readonly #namespace = `roomcast-${randomId(10)}`;
  readonly #relay = new Relay();
  readonly #presence: NodePresence;
  readonly #webhooks: Webhooks | undefined;
  readonly #counts: SharedCounts;
  /** Which serving isolate counts in each region of `#counts`. */
  readonly #regions: (string | undefined)[];
  readonly #isolates = new Map<string, Isolate>();
  #store: Store | undefined;
  #handlers: Record<string, RpcHandler> = {};
  /** Workers are replaced only once the cluster has started, never faster than every RESPAWN_MS. */
  #running = false;
  #draining = false;
  #lastSpawn = 0;
  /** Replacements in a row that did not start: the next waits longer. */
  #failedStarts = 0;
  readonly #respawns = new Set<ReturnType<typeof setTimeout>>();
  #lapses: ReturnType<typeof setInterval> | undefined;
  #checked = Date.now();
  #drained: Promise<void> | undefined;

  constructor(options: CoordinatorOptions) {
    this.#options = options;
    const { config } = options;
    // The isolates' presence changes take effect here: their webhooks are sent from here.
    this.#webhooks = webhooksOf(config, options.clock ?? systemClock, this.metrics);
    const webhooks = this.#webhooks;
    this.#presence = new NodePresence(LEASE_MS, {
      max: config.limits.memberEventsMax,
      tell: (event) => this.#relay.forward(event, COORDINATOR),
      changed: webhooks && ((change) => webhooks.memberChange(change)),
    });
    // The limits on connections (in all, per address, their rate) and the users' budgets hold for
    // the process, whichever isolate a client reaches.
    this.#counts = new SharedCounts({ regions: config.workers, maxConnections: options.maxConnections });
    this.#regions = Array(config.workers).fill(undefined);
  }

  /** The store every isolate's messages are numbered in. */
  get store(): Store {
    if (!this.#store) throw new Error("the coordinator has not started");
    return this.#store;
  }

  /** Opens the store and starts every isolate: this thread's, and the Workers. */
  async start(): Promise<void> {
    const { config, memory } = this.#options;
    this.#store = await createStore(config, {
      clock: this.#options.clock ?? systemClock,
      metrics: this.metrics,
      memory,
    });
    this.#handlers = {
      ...this.#presence.handlers(),
      ...this.#relay.handlers(),
      // A call for another isolate (a Socket.IO request for a session it holds) goes there.
      "isolate.call": ([node, op, args]) => {
        const isolate = this.#isolates.get(node as string);
        if (!isolate) throw new Error(`no isolate ${node}`);
        return isolate.client.call(op as string, args as unknown[]);
      },
      // `/metrics` on any isolate: the store's figures and every serving isolate's, merged.
      "metrics.all": () =>
        gatherMetricsTexts(
          this.metrics.render(),
          this.#serving().map(({ node, client }) => ({
            name: node,
            text: () => client.call<string>("metrics.text", []),
          })),
          METRICS_TIMEOUT_MS,
        ),
    };
    this.#lapses = setInterval(() => this.#checkLeases(), LEASE_MS / 2);
    try {
      await Promise.all([this.#startHere(), ...Array.from({ length: config.workers - 1 }, () => this.#spawn())]);
      this.#running = true;
    } catch (error) {
      clearInterval(this.#lapses);
      for (const isolate of this.#isolates.values()) isolate.stop();
      await this.#store.close();
      throw error;
    }
  }

  /** The serving isolates' node ids, as `welcome.node` names them (this thread's among them),
   * started and listening. */
  nodes(): string[] {
    return this.#serving().map((isolate) => isolate.node);
  }

  /** The Workers' node ids (the isolates that can die and be replaced), started and listening. */
  workers(): string[] {
    return this.#serving().filter((isolate) => isolate.worker).map((isolate) => isolate.node);
  }

  /** Ends a Worker as a crash would: it is replaced, and its connections leave. */
  kill(node: string): void {
    if (this.#isolates.get(node)?.worker === false) {
      throw new Error("the coordinator's own isolate ends with the process");
    }
    this.#replace(node);
  }

  #serving(): Isolate[] {
    return [...this.#isolates.values()].filter((isolate) => isolate.serving);
  }

  /** Takes a region of the shared counts for `node`, and says how it starts. */
  #starting(node: string): IsolateStart {
    const region = this.#regions.indexOf(undefined);
    if (region < 0) throw new Error("no free region of the shared counts: more isolates than configured");
    this.#regions[region] = node;
    return {
      control: "start",
      config: { ...this.#options.config, port: this.#options.port },
      node,
      namespace: this.#namespace,
      renewMs: RENEW_MS,
      pollMs: POLL_MS,
      counts: this.#counts.share(region),
    };
  }

  /** This thread's own serving isolate: the same server as a Worker's, but its calls to the
   * coordinator are direct (nothing crosses) and it uses the store itself. */
  async #startHere(): Promise<void> {
    const node = nodeId();
    const start = this.#starting(node);
    const toCoordinator = new DirectCaller();
    toCoordinator.serve(this.#handlers);
    this.#relay.add(node, (value) => toCoordinator.push(value));
    const toIsolate = new DirectCaller();
    const stop = () => {
      toCoordinator.close();
      toIsolate.close();
    };
    const link = {
      caller: toCoordinator,
      store: new TellingStore(this.store, this.#relay.appendedBy(node)),
      renewMs: RENEW_MS,
      namespace: this.#namespace,
      serve: (handlers: Record<string, RpcHandler>) => toIsolate.serve(handlers),
    };
    const server = await this.#options.startHere(link, start).catch((error) => {
      stop();
      throw error;
    });
    this.#isolates.set(node, {
      node,
      client: toIsolate,
      worker: false,
      serving: true,
      drain: () => server.drain(4000),
      stop,
    });
  }

  /** Starts a Worker; resolves once it listens. */
  #spawn(): Promise<void> {
    const node = nodeId();
    let start: IsolateStart;
    try {
      start = this.#starting(node);
    } catch (error) {
      return Promise.reject(error);
    }
    const worker = new Worker(this.#options.workerModule, { type: "module" });
    const serving = serveRpc(worker, { ...this.#handlers, ...storeHandlers(this.store, this.#relay.appendedBy(node)) });
    this.#relay.add(node, serving.push);
    const client = new RpcClient(worker);
    // Started below, or failed in time (`failed` is called once this has run).
    const timer = setTimeout(() => failed(`no answer in ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
    const isolate: Isolate = {
      node,
      client,
      worker: true,
      serving: false,
      drain: () =>
        new Promise<void>((resolve) => {
          worker.addEventListener("message", (event: MessageEvent) => {
            if ((event.data as Partial<IsolateReport>).control === "drained") resolve();
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
    this.#isolates.set(node, isolate);
    const started = Promise.withResolvers<void>();
    let answered = false;
    const failed = (why: string) => {
      if (answered) return;
      answered = true;
      this.#failedStarts++;
      started.reject(new Error(`worker ${node} did not start: ${why}`));
      // Once the cluster runs, a Worker that can't start is ended and tried again, later each time.
      if (this.#running) this.#replace(node);
    };
    worker.addEventListener("message", (event: MessageEvent) => {
      const report = event.data as Partial<IsolateReport>;
      if (report.control === "listening" && !answered) {
        answered = true;
        this.#failedStarts = 0;
        isolate.serving = true;
        started.resolve();
      }
      if (report.control === "failed") failed(String(report.error));
    });
    worker.addEventListener("error", (event) => {
      event.preventDefault();
      console.error(`roomcast: worker ${node} failed: ${event.message}; starting another`);
      if (answered) this.#replace(node);
      else failed(event.message);
    });
    worker.postMessage(start);
    return started.promise.finally(() => clearTimeout(timer));
  }

  /** The least time between two replacements: longer after each that did not start. */
  #respawnPause(): number {
    return Math.min(RESPAWN_MAX_MS, RESPAWN_MS * 2 ** this.#failedStarts);
  }

  /** Ends a Worker (crashed, lapsed, killed) and starts another in its place. */
  #replace(node: string): void {
    const isolate = this.#isolates.get(node);
    // The coordinator's own isolate ends only with the process.
    if (!isolate?.worker) return;
    this.#isolates.delete(node);
    isolate.stop();
    this.#expired(node);
    if (!this.#running || this.#draining) return;
    const wait = Math.max(0, this.#lastSpawn + this.#respawnPause() - Date.now());
    this.#lastSpawn = Date.now() + wait;
    const respawn = setTimeout(() => {
      this.#respawns.delete(respawn);
      if (this.#draining) return;
      this.#spawn().catch((error) =>
        console.error(
          `roomcast: replacing a worker failed (${error}); trying again in ${this.#respawnPause() / 1000} s`,
        )
      );
    }, wait);
    this.#respawns.add(respawn);
  }

  /** What an isolate that ended held goes: its subscriptions, its presence (the leaves told), and
   * its share of the connection counts. */
  #expired(node: string): void {
    this.#relay.remove(node);
    this.#presence.expire(node);
    const region = this.#regions.indexOf(node);
    if (region >= 0) {
      this.#counts.clear(region);
      this.#regions[region] = undefined;
    }
  }

  /** Replaces the Workers that stopped renewing their lease. */
  #checkLeases(): void {
    const now = Date.now();
    // Late by more than a renewal: this thread was held up (its own serving isolate busy), and the
    // Workers' renewals may still be waiting behind that, so a lapse now says nothing about them.
    // The next check judges. (On time, the last renewal handled is at most 4.5 s old.)
    const late = now - this.#checked > LEASE_MS / 2 + RENEW_MS;
    this.#checked = now;
    if (late) return;
    for (const node of this.#presence.lapsed()) {
      const isolate = this.#isolates.get(node);
      // This thread's own isolate renews on this thread: a lapse means this thread was held up.
      if (isolate?.worker === false) continue;
      if (isolate) {
        console.error(
          `roomcast: worker ${node} stopped renewing its lease; starting another (if its thread is stuck in a ` +
            "loop, Deno can't end it: it keeps a core and its connections until the process restarts)",
        );
        this.#replace(node);
      } else this.#expired(node);
    }
  }

  /** Drains every isolate (within `timeoutMs`), ends them and closes the store; safe to call twice. */
  drain(timeoutMs = 5000): Promise<void> {
    this.#drained ??= (async () => {
      this.#draining = true;
      clearInterval(this.#lapses);
      for (const respawn of this.#respawns) clearTimeout(respawn);
      const all = [...this.#isolates.values()];
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.all(all.map((isolate) => isolate.drain().catch(() => {}))),
        new Promise((resolve) => timer = setTimeout(resolve, timeoutMs)),
      ]);
      clearTimeout(timer);
      for (const isolate of all) isolate.stop();
      this.#isolates.clear();
      await this.#webhooks?.close();
      await this.#store?.close();
    })();
    return this.#drained;
  }
}
