/**
 * Pusher's signatures (https://pusher.com/docs/channels/library_auth_reference/): HMAC-SHA256 in
 * hex with an app's secret, over a channel subscription (`socket_id:channel[:channel_data]`), a
 * sign-in (`socket_id::user::user_data`), an HTTP API request (`METHOD\nPATH\nsorted query`) or a
 * webhook body. Compared in constant time.
 */
import { Buffer } from "node:buffer";
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { PusherApp } from "../../../lib/config.ts";

export function hmacHex(secret: string, text: string): string {
  return createHmac("sha256", secret).update(text).digest("hex");
}

export function md5Hex(body: Uint8Array | string): string {
  return createHash("md5").update(body).digest("hex");
}

/** Whether `given` is the hex HMAC of `text` with `secret`. */
export function signedBy(secret: string, text: string, given: string): boolean {
  if (!/^[0-9a-f]{64}$/.test(given)) return false;
  return timingSafeEqual(Buffer.from(hmacHex(secret, text), "hex"), Buffer.from(given, "hex"));
}

/** A client's `auth` (`key:signature`) for a channel subscription or a sign-in, checked against
 * the app's key and secret. */
export function authorized(app: PusherApp, auth: unknown, text: string): boolean {
  if (typeof auth !== "string") return false;
  const colon = auth.indexOf(":");
  return colon > 0 && auth.slice(0, colon) === app.key && signedBy(app.secret, text, auth.slice(colon + 1));
}

/** How far an HTTP API request's `auth_timestamp` may be from now, in seconds (Pusher's 600). */
export const TIMESTAMP_WINDOW_S = 600;

/** Why a signed HTTP API request (the `pusher` SDKs') is not the app's, or undefined when it is.
 * `rawQuery` is the request's query string as sent; `body` its bytes (POST). */
export function requestProblem(
  app: PusherApp,
  method: string,
  path: string,
  rawQuery: string,
  body: Uint8Array | undefined,
  nowMs: number,
): string | undefined {
  const query = new URLSearchParams(rawQuery);
  if (query.get("auth_key") !== app.key) return "Unknown auth_key";
  if (query.get("auth_version") !== "1.0") return "auth_version must be 1.0";
  const timestamp = Number(query.get("auth_timestamp"));
  if (!Number.isInteger(timestamp) || Math.abs(nowMs / 1000 - timestamp) > TIMESTAMP_WINDOW_S) {
    return `auth_timestamp must be within ${TIMESTAMP_WINDOW_S} s of the server's time`;
  }
  if (body && body.length > 0) {
    if (query.get("body_md5") !== md5Hex(body)) return "body_md5 does not match the body";
  } else if (query.has("body_md5") && query.get("body_md5") !== md5Hex("")) {
    return "body_md5 does not match the body";
  }
  const signature = query.get("auth_signature") ?? "";
  // The SDKs sign the values unescaped; some send them escaped: either reading of the query will do.
  const raw: [string, string][] = rawQuery.split("&").filter(Boolean).map((pair) => {
    const eq = pair.indexOf("=");
    return eq < 0 ? [pair, ""] : [pair.slice(0, eq), pair.slice(eq + 1)];
  });
  for (const pairs of [[...query], raw]) {
    if (signedBy(app.secret, `${method}\n${path}\n${signedQuery(pairs)}`, signature)) return undefined;
  }
  return "Invalid signature";
}

/** The query as signed: every parameter but `auth_signature`, keys lower-cased, sorted by key,
 * `key=value` joined by `&`. */
export function signedQuery(pairs: Iterable<[string, string]>): string {
  const kept: [string, string][] = [];
  for (const [key, value] of pairs) if (key !== "auth_signature") kept.push([key.toLowerCase(), value]);
  kept.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return kept.map(([key, value]) => `${key}=${value}`).join("&");
}
