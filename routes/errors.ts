/** JSON error bodies `{error: {code, message}}` with the status the contract gives each code. */
import type { Context } from "hono";
import { type ErrorCode, errorStatus, ProtocolError } from "../lib/protocol.ts";

export function jsonError(c: Context, code: ErrorCode, message: string): Response {
  return c.json({ error: { code, message } }, errorStatus[code]);
}

/** Turns anything thrown in a route into a JSON error; unexpected ones are logged once. */
export function onError(error: unknown, c: Context): Response {
  if (error instanceof ProtocolError) return jsonError(c, error.code, error.message);
  console.error(`roomcast: ${c.req.method} ${new URL(c.req.url).pathname} failed:`, error);
  return jsonError(c, "internal", "Internal error");
}
