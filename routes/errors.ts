/** JSON error bodies `{error: {code, message}}` with the status the contract gives each code. */
import type { Context } from "hono";
import { type ErrorCode, errorFields, errorStatus, ProtocolError } from "../lib/protocol.ts";
import { EngineUnavailable } from "../lib/engine/store.ts";

export function jsonError(c: Context, code: ErrorCode, message: string): Response {
  return c.json({ error: { code, message } }, errorStatus[code]);
}

/** Turns anything thrown in a route into a JSON error; unexpected ones are logged once. */
export function onError(error: unknown, c: Context): Response {
  if (error instanceof ProtocolError) {
    // Where the app's backend refused (connect proxy), its numeric code goes along.
    return c.json({ error: errorFields(error.code, error.message, error.backendCode) }, errorStatus[error.code]);
  }
  if (error instanceof EngineUnavailable) {
    const response = jsonError(
      c,
      "unavailable",
      error.unanswered
        ? "The store did not answer in time: this may still take effect; retry with the same Idempotency-Key"
        : "The store is unavailable: nothing was done; try again shortly",
    );
    response.headers.set("retry-after", "1");
    return response;
  }
  console.error(`roomcast: ${c.req.method} ${new URL(c.req.url).pathname} failed:`, error);
  return jsonError(c, "internal", "Internal error");
}
