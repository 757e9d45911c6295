/** `GET /healthz` (503 while draining) and `GET /metrics` (Prometheus text format). */
import type { Hono } from "hono";
import type { AppDeps, AppEnv } from "./deps.ts";

export function mountHealth(app: Hono<AppEnv>, deps: AppDeps): void {
  app.get("/healthz", (c) => deps.state.draining ? c.json({ status: "draining" }, 503) : c.json({ status: "ok" }));
  app.get(
    "/metrics",
    (c) => c.body(deps.metrics.render(), 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }),
  );
}
