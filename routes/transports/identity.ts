/**
 * Checks that run before a WebSocket or SSE stream is accepted: the `Origin` allow-list, the
 * `?name=` parameter, and the connection's identity (a JWT when `ROOMCAST_AUTH_SECRET` is set,
 * a generated guest otherwise).
 */
import { type Identity, identityFromClaims, signGuest, verifyGuest, verifyToken } from "../../lib/auth.ts";
import { guestId, guestName } from "../../lib/ids.ts";
import { guestPrincipal, userPrincipal } from "../../lib/budgets.ts";
import { passedHeaders } from "../../lib/proxy.ts";
import { clientName } from "../../lib/names.ts";
import { ProtocolError, type User } from "../../lib/protocol.ts";
import type { Connection } from "../../lib/connection.ts";
import { type AppContext, type AppDeps, clientAddress } from "../deps.ts";
import { jsonError } from "../errors.ts";
import { originAllowed } from "../trust.ts";
import { hostName } from "../../lib/config.ts";

/** Why a WebSocket or SSE stream can't be opened now (shutting down, foreign origin), or undefined. */
export function refuseStream(c: AppContext, deps: AppDeps): Response | undefined {
  const draining = shuttingDown(c, deps);
  if (draining) return draining;
  const refused = originRefusal(c, deps);
  return refused ? jsonError(c, refused.code, refused.message) : undefined;
}

/** `503 unavailable` while the server drains, before anything else is done for a client. */
export function shuttingDown(c: AppContext, deps: AppDeps): Response | undefined {
  return deps.state.draining ? jsonError(c, "unavailable", "Server is shutting down") : undefined;
}

/** Why this page may not open a stream, in words its user can act on (the setting that would
 * allow it), or undefined: a page of a host not in `ROOMCAST_HOSTS` (opened by a LAN address),
 * another site's page not in `ROOMCAST_ORIGINS`, or a cross-site request with no `Origin`. The
 * server's log says it too, once a minute per host or origin. */
export function originRefusal(c: AppContext, deps: Pick<AppDeps, "config" | "clock">): ProtocolError | undefined {
  if (originAllowed(c, deps.config)) return undefined;
  const origin = c.req.header("origin");
  const host = new URL(c.req.url).host;
  let originHost: string | undefined;
  try {
    originHost = origin ? new URL(origin).host : undefined;
  } catch {
    originHost = undefined;
  }
  if (originHost === host) {
    const name = hostName(host);
    tellOnce(deps, `host ${name}`, `a page at ${JSON.stringify(name)}: add it to ROOMCAST_HOSTS to serve it`);
    return new ProtocolError("forbidden", `This server does not answer to ${name}: add it to ROOMCAST_HOSTS`);
  }
  if (origin) {
    const shown = origin.slice(0, 80);
    tellOnce(deps, `origin ${shown}`, `a page of ${JSON.stringify(shown)}: add it to ROOMCAST_ORIGINS to allow it`);
    return new ProtocolError("forbidden", `Pages of ${shown} may not connect: add it to ROOMCAST_ORIGINS`);
  }
  tellOnce(deps, "cross-site", "a cross-site request with no Origin (Sec-Fetch-Site): never allowed");
  return new ProtocolError("forbidden", "Requests from another site's page are refused");
}

/** When each refusal was last logged; bounded (a flood of made-up origins can't grow it). */
const told = new Map<string, number>();
const TELL_EVERY_MS = 60_000;
/** Refusals remembered for the log at most: a flood of made-up origins clears the memory, not grows it. */
export const TOLD_MAX = 256;

/** How many refusals the log remembers now (tests: it stays bounded). */
export function toldSize(): number {
  return told.size;
}

function tellOnce(deps: Pick<AppDeps, "clock">, key: string, what: string): void {
  const now = deps.clock.now();
  const last = told.get(key);
  if (last !== undefined && now - last < TELL_EVERY_MS) return;
  if (told.size >= TOLD_MAX) told.clear();
  told.set(key, now);
  console.warn(`roomcast: refused ${what}`);
}

/** The client's address for limits (lib/admission.ts, lib/budgets.ts); "local" without a socket. */
export function addressOf(c: AppContext, deps: AppDeps): string {
  return clientAddress(c, deps.config.trustedProxies) ?? "local";
}

/** `?name=`, normalised (lib/names.ts); absent, nothing visible in it, or reserved → undefined. */
export function nameParam(c: AppContext): string | undefined {
  return clientName(c.req.query("name") ?? "");
}

/** The connecting user: from `?token=` when auth is on, else a fresh guest, whose budgets are its
 * address's (lib/budgets.ts). */
export async function identify(
  c: AppContext,
  deps: AppDeps,
  name: string | undefined,
  address: string,
): Promise<Identity> {
  return await identifyToken(
    deps,
    c.req.query("token"),
    name,
    address,
    "connect with ?token=<JWT>",
    c.req.query("guest"),
  );
}

/** The user a token (when auth is on) or a fresh guest identity stands for; `how` tells a client
 * without a token where to put it. */
export async function identifyToken(
  deps: Pick<AppDeps, "config" | "clock">,
  token: string | undefined,
  name: string | undefined,
  address: string,
  how: string,
  guestToken?: string,
): Promise<Identity> {
  const secret = deps.config.authSecret;
  if (!secret) {
    // The same guest again when it brings its token (a reload, a reconnect); a new one otherwise.
    const known = guestToken && guestToken.length <= 1024
      ? verifyGuest(guestToken, deps.config.guestSecret, deps.clock)
      : undefined;
    const user = { id: known?.id ?? guestId(), name: name ?? known?.name ?? guestName() };
    const identity = { user, rooms: undefined, expiresAt: undefined, principal: guestPrincipal(address) };
    // A token only for clients that keep one (`?guest=`, empty the first time): signing costs ~16 µs.
    return guestToken === undefined
      ? identity
      : { ...identity, guest: signGuest(user, deps.config.guestSecret, deps.clock) };
  }
  if (!token) throw new ProtocolError("unauthorized", `A token is required: ${how}`);
  return identityFromClaims(await verifyToken(token, secret, deps.clock), name);
}

/** What the app's backend says of a connecting client (the connect proxy, lib/proxy.ts), where
 * `ROOMCAST_PROXY_CONNECT_URL` is set: the identity it sets (user id, name, the rest of its `info`,
 * expiry), or a thrown refusal (its own, or `unavailable` when it fails and the proxy fails closed).
 * The user a token named goes along as `user`; a guest's id does not (it is roomcast's own). */
export async function vetConnect(
  deps: Pick<AppDeps, "proxy" | "config">,
  identity: Identity,
  ask: { client: string; transport: string; headers?: Headers | undefined; address: string },
): Promise<Identity> {
  const proxy = deps.proxy;
  if (!proxy?.asks("connect")) return identity;
  const asker = { client: ask.client, transport: ask.transport, user: deps.config.authSecret ? identity.user.id : "" };
  const passed = passedHeaders(ask.headers);
  const asked = () => proxy.connect(asker, passed, ask.address);
  const verdict = await asked();
  if ("refused" in verdict) throw verdict.refused;
  if ("through" in verdict) return identity;
  const { user: id, name, info, expiresAt } = verdict.ok;
  // An expiry the backend set is renewed by asking it again, as at connect, before it passes.
  const renew = expiresAt === undefined ? undefined : async () => {
    const again = await asked();
    return "ok" in again ? { expiresAt: again.ok.expiresAt } : false as const;
  };
  const vetted: User = { id: id ?? identity.user.id, name: clientName(name ?? "") ?? identity.user.name };
  if (info !== undefined) vetted.info = info;
  const expiry = expiresAt === undefined ? identity.expiresAt : Math.min(expiresAt, identity.expiresAt ?? Infinity);
  const same = id === undefined || id === identity.user.id;
  // Another user than the guest it was: that user's budgets, and no guest token.
  const out: Identity = same
    ? { ...identity, user: vetted, expiresAt: expiry }
    : { user: vetted, rooms: identity.rooms, expiresAt: expiry, principal: userPrincipal(vetted.id) };
  if (renew && expiry === expiresAt) out.renew = renew;
  return out;
}

/** For protocols whose token may come after the upgrade (STOMP's passcode, WAMP's ticket): as
 * `identify` when there is a `?token=` or auth is off; else a guest that may join nothing until its
 * token comes and the connection takes it (`Hub.grant`). */
export async function identifyOrAwait(
  c: AppContext,
  deps: AppDeps,
  name: string | undefined,
  address: string,
): Promise<Identity> {
  const token = c.req.query("token");
  if (token || !deps.config.authSecret) return await identifyToken(deps, token, name, address, "");
  const guest = await identifyToken(
    { ...deps, config: { ...deps.config, authSecret: undefined } },
    undefined,
    name,
    address,
    "",
  );
  awaiting.add(guest.user);
  return { ...guest, rooms: [] };
}

/** The guests of `identifyOrAwait` whose token is still to come. */
const awaiting = new WeakSet<User>();

/** Whether `user` is a guest of `identifyOrAwait` whose token has not come yet. */
export function awaitsToken(user: User): boolean {
  return awaiting.has(user);
}

/** Takes a token that came after the upgrade: the connection becomes its user, with its rooms,
 * expiry and budgets (`Hub.grant`). Throws a `ProtocolError` for a missing or bad token. */
export async function takeToken(deps: AppDeps, connection: Connection, token: string | undefined, how: string) {
  const identity = await vetConnect(
    deps,
    await identifyToken(deps, token, undefined, "", how),
    { client: connection.id, transport: connection.transport, address: "" },
  );
  if (connection.closed) return;
  deps.hub.grant(connection, identity.user, {
    rooms: identity.rooms,
    expiresAt: identity.expiresAt,
    principal: identity.principal,
  });
}

export function isWebSocketUpgrade(c: AppContext): boolean {
  return c.req.header("upgrade")?.toLowerCase() === "websocket";
}
