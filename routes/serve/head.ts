/**
 * HEAD requests: answered as the GET they stand for, so that Deno sends that GET's headers (with
 * the body's length) and drops the body. Hono's own HEAD handling drops the body before Deno sees
 * it, which made every HEAD report `content-length: 0`.
 */
import type { Context, Hono } from "hono";
import type { AppEnv } from "../deps.ts";

/** GET requests made for a HEAD (see `serveHandler`). */
const headRequests = new WeakSet<Request>();

/** Whether this request is the GET a HEAD stands for: a route that would open a stream answers
 * its headers only. */
export function isHead(c: Context<AppEnv>): boolean {
  return headRequests.has(c.req.raw);
}

/** The handler for `Deno.serve`: the app's, with HEAD requests made GETs. */
export function serveHandler(app: Hono<AppEnv>): Deno.ServeHandler<Deno.NetAddr> {
  return (request, info) => {
    if (request.method !== "HEAD") return app.fetch(request, info);
    const get = new Request(request.url, { method: "GET", headers: request.headers });
    headRequests.add(get);
    return app.fetch(get, info);
  };
}
