/** What every route gets: the hub and the configuration, plus shared state of the running server. */
import type { Webhooks } from "../lib/webhooks.ts";
import type { Context } from "hono";
import type { Admission } from "../lib/admission.ts";
import type { Clock } from "../lib/clock.ts";
import type { Config } from "../lib/config.ts";
import type { Hub } from "../lib/hub.ts";
import type { BackendProxy } from "../lib/proxy.ts";
import type { Metrics } from "../lib/metrics.ts";
import type { SessionRouting } from "./transports/socketio/eio/forward.ts";

export interface ServerState {
  /** True once shutdown began: `/healthz` answers 503, new connections are refused. */
  draining: boolean;
  /** What routes ask to be stopped when the server drains (after every connection was closed). */
  stops?: (() => void)[];
}

export interface AppDeps {
  hub: Hub;
  admission: Admission;
  config: Config;
  metrics: Metrics;
  clock: Clock;
  state: ServerState;
  /** The engine's storage state (Redis: up or down), for `/healthz`. */
  engineHealth?: (() => { engine: string; state: "up" | "down" }) | undefined;
  /** With several Workers: how Socket.IO polling reaches sessions other Workers hold. */
  sessions?: SessionRouting | undefined;
  /** The app's backend in the loop, where a `ROOMCAST_PROXY_*_URL` is set (lib/proxy.ts). */
  proxy?: BackendProxy | undefined;
  /** The engine's kind (`kv`, `redis`, `cluster`, `memory`), as the dashboard names it. */
  engineName?: string | undefined;
  /** With several Workers: every isolate's metrics, merged (the coordinator gathers them). */
  allMetrics?: (() => Promise<string>) | undefined;
  /** Where `ROOMCAST_WEBHOOK_URL` is set: client events and cache misses are told here (presence
   * changes are told by the engine's presence). */
  webhooks?: Webhooks | undefined;
}

/** `Deno.serve` passes its handler info as Hono's `env`. */
export type AppEnv = { Bindings: { remoteAddr?: Deno.Addr } };

export type AppContext = Context<AppEnv>;

/** The caller's address, or undefined when the app runs without a socket (in-process fetch). */
export function remoteHost(c: AppContext): string | undefined {
  const addr = c.env?.remoteAddr;
  return addr && (addr.transport === "tcp" || addr.transport === "udp") ? addr.hostname : undefined;
}

const bare = (host: string) => host.replace(/^\[|\]$/g, "").replace(/^::ffff:(?=\d)/i, "").toLowerCase();

/** The client's address: the socket's, or, when the socket is one of `trustedProxies`, the last
 * address in `X-Forwarded-For` that is not a trusted proxy. `undefined` without a socket. */
export function clientAddress(c: AppContext, trustedProxies: readonly string[]): string | undefined {
  const peer = remoteHost(c);
  if (peer === undefined || trustedProxies.length === 0) return peer;
  const trusted = new Set(trustedProxies.map(bare));
  if (!trusted.has(bare(peer))) return peer;
  const hops = (c.req.header("x-forwarded-for") ?? "").split(",").map((hop) => hop.trim()).filter((hop) => hop);
  for (let i = hops.length - 1; i >= 0; i--) {
    if (!trusted.has(bare(hops[i] as string))) return hops[i];
  }
  return hops[0] ?? peer;
}
