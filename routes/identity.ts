/**
 * Checks that run before a WebSocket or SSE stream is accepted: the `Origin` allow-list, the
 * `?name=` parameter, and the connection's identity (a JWT when `ROOMCAST_AUTH_SECRET` is set,
 * a generated guest otherwise).
 */
import { type Identity, identityFromClaims, verifyToken } from "../lib/auth.ts";
import { guestId, guestName } from "../lib/ids.ts";
import { ProtocolError } from "../lib/protocol.ts";
import type { AppContext, AppDeps } from "./deps.ts";
import { jsonError } from "./errors.ts";

/** Why a WebSocket or SSE stream can't be opened now (shutting down, foreign origin), or undefined. */
export function refuseStream(c: AppContext, deps: AppDeps): Response | undefined {
  if (deps.state.draining) return c.json({ error: { code: "internal", message: "Server is shutting down" } }, 503);
  if (!originAllowed(c, deps.config.origins)) return jsonError(c, "forbidden", "Origin not allowed");
  return undefined;
}

/** Same origin, no origin, or one of `ROOMCAST_ORIGINS` (`*` allows any). */
export function originAllowed(c: AppContext, origins: string[] | undefined): boolean {
  const origin = c.req.header("origin");
  if (!origin) return true;
  if (origins) return origins.includes("*") || origins.includes(origin);
  return origin === new URL(c.req.url).origin;
}

/** `?name=` trimmed to 1–64 printable chars; absent or empty → undefined. */
export function nameParam(c: AppContext): string | undefined {
  const name = c.req.query("name")?.trim();
  if (!name) return undefined;
  if (name.length > 64 || /\p{Cc}/u.test(name)) {
    throw new ProtocolError("bad_request", "Query parameter name must be 1–64 printable characters");
  }
  return name;
}

/** The connecting user: from `?token=` when auth is on, else a fresh guest. */
export async function identify(c: AppContext, deps: AppDeps, name: string | undefined): Promise<Identity> {
  const secret = deps.config.authSecret;
  if (!secret) return { user: { id: guestId(), name: name ?? guestName() }, rooms: undefined, expiresAt: undefined };
  const token = c.req.query("token");
  if (!token) throw new ProtocolError("unauthorized", "A token is required: connect with ?token=<JWT>");
  return identityFromClaims(await verifyToken(token, secret, deps.clock), name);
}

export function isWebSocketUpgrade(c: AppContext): boolean {
  return c.req.header("upgrade")?.toLowerCase() === "websocket";
}
