/** What every route gets: the hub and the configuration, plus shared state of the running server. */
import type { Context } from "hono";
import type { Clock } from "../lib/clock.ts";
import type { Config } from "../lib/config.ts";
import type { Hub } from "../lib/hub.ts";
import type { Metrics } from "../lib/metrics.ts";

export interface ServerState {
  /** True once shutdown began: `/healthz` answers 503, new connections are refused. */
  draining: boolean;
}

export interface AppDeps {
  hub: Hub;
  config: Config;
  metrics: Metrics;
  clock: Clock;
  state: ServerState;
}

/** `Deno.serve` passes its handler info as Hono's `env`. */
export type AppEnv = { Bindings: { remoteAddr?: Deno.Addr } };

export type AppContext = Context<AppEnv>;

/** The caller's address, or undefined when the app runs without a socket (in-process fetch). */
export function remoteHost(c: AppContext): string | undefined {
  const addr = c.env?.remoteAddr;
  return addr && (addr.transport === "tcp" || addr.transport === "udp") ? addr.hostname : undefined;
}
