/**
 * Serving an `EngineServer` from a Hono app: every method under `path` (with or without the
 * trailing slash) goes to `engine.handle`, with the client's address and the Hono context.
 */
import type { Hono } from "hono";
import type { EngineServer } from "./server.ts";

// deno-lint-ignore no-explicit-any
export function mountEngine(app: Hono<any>, path: string, engine: EngineServer, address: (c: any) => string): void {
  const base = path.replace(/\/+$/, "");
  const handler = (c: { req: { raw: Request } }) => engine.handle(c.req.raw, { remoteAddress: address(c), context: c });
  app.all(base, handler);
  app.all(`${base}/`, handler);
}
