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
 * is not set, the same origin. A browser request with no `Origin` that says it comes from another
 * site (`Sec-Fetch-Site`: an `<img>`, a `no-cors` fetch) is a foreign page's: refused, whatever
 * `ROOMCAST_ORIGINS` lists (a listed site's requests carry their `Origin`). */
export function originAllowed(c: AppContext, config: Pick<Config, "origins" | "hosts">): boolean {
  const origin = c.req.header("origin");
  if (!origin) {
    const site = c.req.header("sec-fetch-site");
    return site === undefined || site === "same-origin" || site === "none";
  }
  if (config.origins) return listedOrigin(config.origins, origin);
  return sameOrigin(c, origin, config.hosts);
}

/** Whether a proxy forwarded the request. */
export function forwarded(c: AppContext): boolean {
  return FORWARDING.some((name) => c.req.header(name) !== undefined);
}

/** Whether the server listens on loopback only (`HOSTNAME` 127.0.0.1, ::1 or localhost): only
 * then may a caller from loopback have the backend's powers without a key. Listening on any other
 * address, a proxy on this machine that adds no forwarding header (nginx's bare `proxy_pass`, a TCP
 * relay) would hand them to the world. */
export function listensOnLoopback(config: Pick<Config, "hostname">): boolean {
  return config.hostname.toLowerCase() === "localhost" || isLoopback(config.hostname);
}

/** Whether the request gets loopback trust: the server listens on loopback only, and the request
 * comes from this machine's loopback, straight (no forwarding headers, which a reverse proxy on
 * this machine adds), to a host of ours (a page on a rebound DNS name sends its own), and not from
 * another site's page in a browser (a foreign `Origin`, or `Sec-Fetch-Site` other than same-origin
 * or none). */
export function loopbackTrusted(c: AppContext, config: Pick<Config, "hosts" | "hostname">): boolean {
  if (!listensOnLoopback(config)) return false;
  const host = remoteHost(c);
  if (!host || !isLoopback(host) || forwarded(c) || !hostAllowed(c, config.hosts)) return false;
  const site = c.req.header("sec-fetch-site");
  if (site !== undefined && site !== "same-origin" && site !== "none") return false;
  const origin = c.req.header("origin");
  return origin === undefined || sameOrigin(c, origin, config.hosts);
}
