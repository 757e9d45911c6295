/**
 * What a request's headers say about where it comes from, and the trust that follows: whether
 * its `Host` is one of ours (`ROOMCAST_HOSTS`, against DNS rebinding), whether a browser page of
 * another origin sent it (`Origin`, `Sec-Fetch-Site`), whether it passed through a proxy
 * (forwarding headers), and so whether it gets loopback trust: the backend's powers that a caller
 * on this machine has when no API key is set.
 */
import { isLoopback } from "../lib/auth.ts";
import { type Config, hostName } from "../lib/config.ts";
import { type AppContext, remoteHost } from "./deps.ts";

/** Headers a proxy adds: their presence means the socket's address is not the client's. */
const FORWARDING = ["forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip"];

/** Whether the request's `Host` is one this server answers to as itself (`*`: any). */
export function hostAllowed(c: AppContext, hosts: readonly string[]): boolean {
  if (hosts.includes("*")) return true;
  return hosts.includes(hostName(new URL(c.req.url).host));
}

/** Whether the `Origin` (if any) is the request's own: the same host and port, on a host of ours.
 * The scheme is not compared: behind a TLS proxy the page is https and the request reaches us as
 * http. */
export function sameOrigin(c: AppContext, origin: string, hosts: readonly string[]): boolean {
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return false;
  }
  return host === new URL(c.req.url).host && hostAllowed(c, hosts);
}

/** Whether `origin` is one of `ROOMCAST_ORIGINS` (`*`: any): the sites given CORS. */
export function listedOrigin(origins: Config["origins"], origin: string | null | undefined): origin is string {
  return !!origin && !!origins && (origins.includes("*") || origins.includes(origin));
}

/** No origin (not a browser page), or one of `ROOMCAST_ORIGINS` (`*` allows any), or, when that
 * is not set, the same origin. */
export function originAllowed(c: AppContext, config: Pick<Config, "origins" | "hosts">): boolean {
  const origin = c.req.header("origin");
  if (!origin) return true;
  if (config.origins) return listedOrigin(config.origins, origin);
  return sameOrigin(c, origin, config.hosts);
}

/** Whether a proxy forwarded the request. */
export function forwarded(c: AppContext): boolean {
  return FORWARDING.some((name) => c.req.header(name) !== undefined);
}

/** Whether the request gets loopback trust: it comes from this machine's loopback, straight (no
 * forwarding headers, which a reverse proxy on this machine adds), to a host of ours (a page on a
 * rebound DNS name sends its own), and not from another site's page in a browser (a foreign
 * `Origin`, or `Sec-Fetch-Site` other than same-origin or none). */
export function loopbackTrusted(c: AppContext, config: Pick<Config, "hosts">): boolean {
  const host = remoteHost(c);
  if (!host || !isLoopback(host) || forwarded(c) || !hostAllowed(c, config.hosts)) return false;
  const site = c.req.header("sec-fetch-site");
  if (site !== undefined && site !== "same-origin" && site !== "none") return false;
  const origin = c.req.header("origin");
  return origin === undefined || sameOrigin(c, origin, config.hosts);
}
