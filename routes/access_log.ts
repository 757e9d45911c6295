/**
 * The access log (`ROOMCAST_ACCESS_LOG=text|json`): one line on stdout per HTTP request and
 * WebSocket upgrade, once its response is ready (an event stream's or an upgrade's when it starts).
 * What it holds: time, client address (through `ROOMCAST_TRUSTED_PROXIES`), method, path, status,
 * milliseconds. Never the query string (`?token=` carries a JWT), headers or bodies: no secrets.
 */
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "./deps.ts";
import { clientAddress } from "./deps.ts";

export function accessLog(format: "text" | "json", trustedProxies: readonly string[]): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const start = performance.now();
    // Read before the handler runs: after a WebSocket upgrade the request is closed.
    const path = new URL(c.req.url).pathname;
    const ip = clientAddress(c, trustedProxies) ?? "-";
    const method = c.req.method;
    await next();
    const ms = Math.round((performance.now() - start) * 10) / 10;
    const status = c.res.status;
    console.log(
      format === "json"
        ? JSON.stringify({ ts: new Date().toISOString(), ip, method, path, status, ms })
        : `${new Date().toISOString()} ${ip} ${method} ${JSON.stringify(path)} ${status} ${ms}ms`,
    );
  };
}
