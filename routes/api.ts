/**
 * The HTTP API under `/api`: publish and read room history, presence, direct and broadcast
 * pushes, token minting and history reset. Writes need the API key (or a loopback caller when no
 * key is set); room publishes and reads also take a user's JWT when auth is on.
 */
import { readBody } from "./body.ts";
import type { Hono } from "hono";
import {
  bearer,
  type Claims,
  type Identity,
  identityFromClaims,
  isRoomPattern,
  roomAllowed,
  sameSecret,
  signToken,
  verifyToken,
} from "../lib/auth.ts";
import { historyLimit, type JsonLimits, jsonObject } from "../lib/codec.ts";
import { isCleanId, normalizeName } from "../lib/names.ts";
import type { AppendOptions, ReadOptions } from "../lib/engine/store.ts";
import { FrameError, isRoomName, ProtocolError, ROOM_RULE, type User } from "../lib/protocol.ts";
import type { AppContext, AppDeps, AppEnv } from "./deps.ts";
import { jsonError } from "./errors.ts";
import { listensOnLoopback, loopbackTrusted } from "./trust.ts";

type Caller = { kind: "backend" } | { kind: "user"; identity: Identity };

const MAX_TOKEN_TTL_S = 30 * 86_400;

/** A bearer credential shaped as a JWT (three base64url parts): a user token, not an API key. */
const JWT_SHAPE = /^[\w-]+\.[\w-]+\.[\w-]*$/;

/** Who is calling: a backend (API key, or loopback when no key is set) or, where allowed, a user token.
 * A refusal names the credential that was wrong: the API key, or the user token and why. */
export async function caller(
  c: AppContext,
  deps: AppDeps,
  options: { users: boolean; open?: boolean },
): Promise<Caller> {
  const { apiKey, authSecret } = deps.config;
  const token = bearer(c.req.header("authorization"));
  if (apiKey && token && sameSecret(token, apiKey)) return { kind: "backend" };
  if (options.users && authSecret && token && (JWT_SHAPE.test(token) || !apiKey)) {
    try {
      return {
        kind: "user",
        identity: identityFromClaims(await verifyToken(token, authSecret, deps.clock), undefined),
      };
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      const not = apiKey ? "Not the API key, and not a valid user token" : "Invalid user token";
      throw new ProtocolError("unauthorized", `${not}: ${error.message}`);
    }
  }
  if (!apiKey && loopbackTrusted(c, deps.config)) return { kind: "backend" };
  if (options.open) return { kind: "backend" };
  if (apiKey) {
    throw new ProtocolError(
      "unauthorized",
      token
        ? "Invalid API key: Authorization: Bearer must carry ROOMCAST_API_KEY"
        : "This endpoint needs Authorization: Bearer <API key> (ROOMCAST_API_KEY)",
    );
  }
  if (!listensOnLoopback(deps.config)) {
    throw new ProtocolError(
      "forbidden",
      `This server listens on ${deps.config.hostname} without ROOMCAST_API_KEY: this endpoint is closed until the key is set`,
    );
  }
  throw new ProtocolError(
    "forbidden",
    token
      ? "No API key is set (ROOMCAST_API_KEY), so no Bearer key opens this endpoint: it accepts only direct loopback callers"
      : "Without ROOMCAST_API_KEY this endpoint accepts only direct loopback callers (no proxy, no other site's page)",
  );
}

function roomParam(c: AppContext): string {
  const room = c.req.param("room");
  if (!isRoomName(room)) throw new ProtocolError("bad_request", `Room name must match ${ROOM_RULE}`);
  return room;
}

/** The `:user` of the path: a user id of 1–128 characters. */
export function userParam(c: AppContext): string {
  const user = c.req.param("user") ?? "";
  if (user.length === 0 || user.length > 128) throw new ProtocolError("bad_request", "User id must be 1–128 chars");
  return user;
}

function mayUseRoom(who: Caller, room: string): void {
  if (who.kind === "user" && !roomAllowed(who.identity.rooms, room)) {
    throw new ProtocolError("forbidden", `Token does not allow room ${room}`);
  }
}

function offsetParam(c: AppContext, name: string): number | undefined {
  const text = c.req.query(name);
  if (text === undefined || text === "") return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new ProtocolError("bad_request", `Query parameter ${name} must be an integer ≥ 0`);
  }
  return value;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });

/** `application/json` or `application/<anything>+json`, parameters allowed. */
const JSON_TYPE = /^application\/(?:[\w.-]+\+)?json\s*(?:;|$)/i;

/** What a JSON body may be: its size in bytes, its nesting and values, and how long it may take to
 * arrive (a body dripped a byte at a time would otherwise hold its connection forever). */
export interface BodyLimits extends JsonLimits {
  maxBytes: number;
  timeoutMs: number;
}

/** Reads a JSON object body: `Content-Type: application/json` (what a page on another site can't
 * send without a CORS preflight), within `limits`. */
export async function readJson(c: AppContext, limits: BodyLimits): Promise<Record<string, unknown>> {
  if (!JSON_TYPE.test(c.req.header("content-type") ?? "")) {
    throw new ProtocolError("unsupported_media_type", "Send the body as JSON, with Content-Type: application/json");
  }
  let text: string;
  try {
    text = UTF8.decode(await readBody(c.req.raw, limits));
  } catch (error) {
    // Decoded leniently, invalid bytes would become U+FFFD: stored three times their size.
    if (error instanceof TypeError) throw new ProtocolError("bad_request", "Body is not valid UTF-8");
    throw error;
  }
  const value = jsonObject(text, limits, "Body");
  if (typeof value === "string") throw new ProtocolError("bad_request", value);
  return { ...value };
}

/** A history page size from the query: see `historyLimit`. */
function pageSize(value: number | undefined): number {
  try {
    return historyLimit(value);
  } catch (error) {
    throw error instanceof FrameError ? error.toError() : error;
  }
}

/** `Idempotency-Key`: 1–128 visible ASCII characters. A retried publish with the key gets the
 * first one's answer (same id and offset) and stores nothing, for a day. */
function idempotency(c: AppContext): AppendOptions {
  const key = c.req.header("idempotency-key");
  if (key === undefined) return {};
  if (!/^[\x21-\x7e]{1,128}$/.test(key)) {
    throw new ProtocolError("bad_request", "Idempotency-Key must be 1–128 visible ASCII characters");
  }
  return { idempotencyKey: key };
}

function requireData(body: Record<string, unknown>): unknown {
  if (!("data" in body)) throw new ProtocolError("bad_request", "Field data is required");
  return body.data;
}

function fromField(value: unknown): User {
  if (value === undefined) return { id: "server", name: "server" };
  if (typeof value === "object" && value !== null && "id" in value && "name" in value && isCleanId(value.id)) {
    const name = typeof value.name === "string" ? normalizeName(value.name) : undefined;
    if (name !== undefined) return { id: value.id, name };
  }
  throw new ProtocolError(
    "bad_request",
    "Field from must be {id: 1–128 visible characters, name: a name with something visible in it}",
  );
}

function tokenClaims(body: Record<string, unknown>): { claims: Claims; ttl: number } {
  const { sub, name, rooms, ttl = 3600 } = body;
  if (!isCleanId(sub)) throw new ProtocolError("bad_request", "Field sub must be a user id (1–128 visible chars)");
  const claims: Claims = { sub };
  if (name !== undefined) {
    const shown = typeof name === "string" ? normalizeName(name) : undefined;
    if (shown === undefined) throw new ProtocolError("bad_request", "Field name must have something visible in it");
    claims.name = shown;
  }
  if (rooms !== undefined) {
    if (!Array.isArray(rooms) || !rooms.every(isRoomPattern)) {
      throw new ProtocolError("bad_request", "Field rooms must be an array of room names or prefixes ending in *");
    }
    claims.rooms = rooms;
  }
  if (typeof ttl !== "number" || !Number.isInteger(ttl) || ttl <= 0 || ttl > MAX_TOKEN_TTL_S) {
    throw new ProtocolError("bad_request", `Field ttl must be seconds from 1 to ${MAX_TOKEN_TTL_S}`);
  }
  return { claims, ttl };
}

export function mountApi(app: Hono<AppEnv>, deps: AppDeps): void {
  const { hub, config, clock } = deps;
  const { limits } = config;
  const bodyLimits: BodyLimits = { ...limits, maxBytes: limits.maxFrameBytes, timeoutMs: config.bodyTimeoutMs };
  const readers = { users: true, open: !config.authSecret };

  app.post("/api/rooms/:room/messages", async (c) => {
    const room = roomParam(c);
    const who = await caller(c, deps, { users: true });
    mayUseRoom(who, room);
    if (who.kind === "user") {
      // A user's HTTP publishes spend the budget its connections spend.
      const budget = hub.budgets.of(who.identity.principal).publishes;
      if (!budget.take()) {
        c.header("retry-after", String(Math.max(1, Math.ceil(budget.waitMs / 1000))));
        return jsonError(c, "rate_limited", "Too many messages: slow down");
      }
    }
    const body = await readJson(c, bodyLimits);
    const data = requireData(body);
    const from = who.kind === "user" ? who.identity.user : fromField(body.from);
    const stored = await hub.publishAs(room, data, from, idempotency(c));
    return c.json({ id: stored.id, room, offset: stored.offset, epoch: stored.epoch }, 201);
  });

  app.get("/api/rooms/:room/messages", async (c) => {
    const room = roomParam(c);
    mayUseRoom(await caller(c, deps, readers), room);
    const read: ReadOptions = { limit: pageSize(offsetParam(c, "limit")) };
    const after = offsetParam(c, "after");
    const before = offsetParam(c, "before");
    if (after !== undefined) read.after = after;
    if (before !== undefined) read.before = before;
    const page = await hub.history(room, read);
    return c.json({ room, epoch: page.epoch, messages: page.messages });
  });

  app.delete("/api/rooms/:room/messages", async (c) => {
    const room = roomParam(c);
    await caller(c, deps, { users: false });
    // A reset deletes the room's history for good: the caller names the room twice, from loopback too.
    if (c.req.query("confirm") !== room) {
      throw new ProtocolError(
        "bad_request",
        `Resetting deletes room ${room}'s history for good: repeat its name as ?confirm=${room} to do it`,
      );
    }
    const position = await hub.reset(room);
    return c.json({ room, ...position });
  });

  app.get("/api/rooms/:room/presence", async (c) => {
    const room = roomParam(c);
    mayUseRoom(await caller(c, deps, readers), room);
    return c.json({ room, members: await hub.presence(room) });
  });

  app.get("/api/rooms", async (c) => {
    const who = await caller(c, deps, readers);
    const rooms = (await hub.rooms()).filter(({ room }) =>
      who.kind === "backend" || roomAllowed(who.identity.rooms, room)
    );
    return c.json({ rooms });
  });

  app.post("/api/users/:user/messages", async (c) => {
    await caller(c, deps, { users: false });
    const to = userParam(c);
    const body = await readJson(c, bodyLimits);
    const result = await hub.directAs(fromField(body.from), to, requireData(body));
    return c.json(result, 202);
  });

  app.post("/api/broadcast", async (c) => {
    await caller(c, deps, { users: false });
    const body = await readJson(c, bodyLimits);
    return c.json(hub.broadcast(requireData(body)), 202);
  });

  app.post("/api/tokens", async (c) => {
    await caller(c, deps, { users: false });
    const secret = config.authSecret;
    if (!secret) throw new ProtocolError("bad_request", "Tokens need ROOMCAST_AUTH_SECRET to be set");
    const { claims, ttl } = tokenClaims(await readJson(c, bodyLimits));
    claims.exp = Math.floor(clock.now() / 1000) + ttl;
    return c.json({ token: await signToken(claims, secret), expires: claims.exp });
  });
}
