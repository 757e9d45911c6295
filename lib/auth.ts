/**
 * Who may do what: HS256 JWTs for connections (verified with WebCrypto, time from an injected
 * clock), the API key for backends, and the loopback rule that applies when no key is set.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import type { Clock } from "./clock.ts";
import { userPrincipal } from "./budgets.ts";
import { isCleanId, normalizeName } from "./names.ts";
import { isRoomName, ProtocolError, type User } from "./protocol.ts";

export interface Claims {
  sub: string;
  name?: string;
  /** Room names or prefixes ending in `*`; absent = any room. */
  rooms?: string[];
  /** Seconds since the epoch. */
  exp?: number;
}

export interface Identity {
  user: User;
  rooms: string[] | undefined;
  /** ms since the epoch */
  expiresAt: number | undefined;
  /** Whose budgets it spends (lib/budgets.ts). */
  principal: string;
  /** A guest's identity token, told in `welcome` (lib/hub.ts). */
  guest?: string;
  /** Where the app's backend set the expiry (connect proxy): asks it again before the expiry; its new
   * expiry (`undefined`: none), or `false` when it did not renew (the connection ends at expiry). */
  renew?: () => Promise<{ expiresAt: number | undefined } | false>;
}

/** How long a guest's identity token lasts (it is renewed at each connection). */
export const GUEST_TTL_S = 30 * 86_400;

/** A guest's identity token: its id and name, signed with the guest secret (not the auth secret:
 * it grants nothing but being the same guest again). An HS256 JWT, signed synchronously with
 * node:crypto's HMAC: every guest connection gets one, and WebCrypto's async sign costs ~46 µs
 * a connection against ~3 µs. */
export function signGuest(user: User, secret: string, clock: Clock): string {
  const claims = { sub: user.id, name: user.name, exp: Math.floor(clock.now() / 1000) + GUEST_TTL_S };
  const signed = `${GUEST_HEAD}.${base64url(encoder.encode(JSON.stringify(claims)))}`;
  return `${signed}.${createHmac("sha256", secret).update(signed).digest("base64url")}`;
}

const GUEST_HEAD = base64url(new TextEncoder().encode(JSON.stringify({ alg: "HS256", typ: "JWT" })));

/** The guest a token names, or undefined (forged, expired, not a guest's id: a new guest then). */
export function verifyGuest(token: string, secret: string, clock: Clock): User | undefined {
  const parts = token.split(".");
  if (parts.length !== 3 || parts[0] !== GUEST_HEAD) return undefined;
  const given = fromBase64url(parts[2] as string);
  const expected = createHmac("sha256", secret).update(`${parts[0]}.${parts[1]}`).digest();
  if (!given || given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  const payload = parseJson(parts[1] as string);
  const claims = payload && readClaims(payload);
  if (!claims || claims.exp === undefined || clock.now() / 1000 >= claims.exp) return undefined;
  if (!claims.sub.startsWith("guest-") || claims.sub.length > 64) return undefined;
  return { id: claims.sub, name: claims.name ?? claims.sub };
}

const encoder = new TextEncoder();
const keys = new Map<string, Promise<CryptoKey>>();

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
      "verify",
    ]);
    keys.set(secret, key);
  }
  return key;
}

function base64url(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64url(text: string): Uint8Array<ArrayBuffer> | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return undefined;
  try {
    const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}

function parseJson(part: string): Record<string, unknown> | undefined {
  const bytes = fromBase64url(part);
  if (!bytes) return undefined;
  try {
    const value: unknown = JSON.parse(new TextDecoder().decode(bytes));
    return typeof value === "object" && value !== null && !Array.isArray(value) ? { ...value } : undefined;
  } catch {
    return undefined;
  }
}

/** A room name, or a prefix ending in `*` (`*` alone allows every room). */
export function isRoomPattern(value: unknown): value is string {
  if (typeof value !== "string") return false;
  if (!value.endsWith("*")) return isRoomName(value);
  return value === "*" || isRoomName(value.slice(0, -1));
}

function readClaims(payload: Record<string, unknown>): Claims | undefined {
  const { sub, name, rooms, exp } = payload;
  if (!isCleanId(sub)) return undefined;
  const claims: Claims = { sub };
  if (name !== undefined) {
    if (typeof name !== "string") return undefined;
    const shown = normalizeName(name);
    if (shown !== undefined) claims.name = shown;
  }
  if (rooms !== undefined) {
    if (!Array.isArray(rooms) || !rooms.every(isRoomPattern)) return undefined;
    claims.rooms = rooms;
  }
  if (exp !== undefined) {
    if (typeof exp !== "number" || !Number.isFinite(exp)) return undefined;
    claims.exp = exp;
  }
  return claims;
}

/** Verifies an HS256 token; throws `ProtocolError("unauthorized")` saying why not. */
export async function verifyToken(token: string, secret: string, clock: Clock): Promise<Claims> {
  const parts = token.split(".");
  const [head, body, signature] = parts;
  if (parts.length !== 3 || head === undefined || body === undefined || signature === undefined) {
    throw new ProtocolError("unauthorized", "Token is not a JWT");
  }
  const header = parseJson(head);
  if (header?.alg !== "HS256") throw new ProtocolError("unauthorized", "Token must be signed with HS256");
  // RFC 7515 §4.1.11: extensions marked critical must be understood, and this server knows none.
  if ("crit" in header) throw new ProtocolError("unauthorized", "Token header names critical extensions (crit)");
  const sig = fromBase64url(signature);
  const valid = sig !== undefined &&
    await crypto.subtle.verify("HMAC", await hmacKey(secret), sig, encoder.encode(`${head}.${body}`));
  if (!valid) throw new ProtocolError("unauthorized", "Token signature is invalid");
  const payload = parseJson(body);
  const claims = payload && readClaims(payload);
  if (!claims) throw new ProtocolError("unauthorized", "Token claims are invalid (sub is required)");
  const now = clock.now() / 1000;
  if (claims.exp !== undefined && now >= claims.exp) throw new ProtocolError("unauthorized", "Token expired");
  const nbf = payload?.nbf;
  if (typeof nbf === "number" && now < nbf) throw new ProtocolError("unauthorized", "Token is not valid yet");
  return claims;
}

export async function signToken(claims: Claims, secret: string): Promise<string> {
  const head = base64url(encoder.encode(JSON.stringify({ alg: "HS256", typ: "JWT" })));
  const body = base64url(encoder.encode(JSON.stringify(claims)));
  const sig = await crypto.subtle.sign("HMAC", await hmacKey(secret), encoder.encode(`${head}.${body}`));
  return `${head}.${body}.${base64url(new Uint8Array(sig))}`;
}

/** Whether `room` is allowed by a token's `rooms` claim (`undefined` allows any room). */
export function roomAllowed(patterns: string[] | undefined, room: string): boolean {
  if (!patterns) return true;
  return patterns.some((p) => p.endsWith("*") ? room.startsWith(p.slice(0, -1)) : p === room);
}

export function identityFromClaims(claims: Claims, fallbackName: string | undefined): Identity {
  return {
    user: { id: claims.sub, name: claims.name ?? fallbackName ?? claims.sub },
    rooms: claims.rooms,
    expiresAt: claims.exp === undefined ? undefined : claims.exp * 1000,
    principal: userPrincipal(claims.sub),
  };
}

/** 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  return host === "::1" || host === "0:0:0:0:0:0:0:1" || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Compares secrets without an early exit on the first differing character. */
export function sameSecret(given: string, expected: string): boolean {
  const a = encoder.encode(given);
  const b = encoder.encode(expected);
  let diff = a.length ^ b.length;
  for (let i = 0; i < b.length; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

/** The token of an `Authorization: Bearer …` header. */
export function bearer(header: string | null | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return match?.[1];
}
