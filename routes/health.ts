/** `GET /healthz` (503 while draining) and `GET /metrics` (Prometheus text format; its key, or a
 * loopback caller). */
import type { Hono } from "hono";
import { bearer, sameSecret } from "../lib/auth.ts";
import { jsonError } from "./errors.ts";
import { loopbackTrusted } from "./trust.ts";
import type { AppDeps, AppEnv } from "./deps.ts";

/** Process memory, so that an operator sees overload coming (the hub's own figures are in Metrics). */
function processMetrics(): string {
  const { rss, heapUsed, external } = Deno.memoryUsage();
  const gauge = (name: string, help: string, value: number) =>
    `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${name} ${value}\n`;
  return gauge("roomcast_process_resident_bytes", "Resident memory of the process", rss) +
    gauge("roomcast_process_heap_used_bytes", "JavaScript heap in use", heapUsed) +
    gauge("roomcast_process_external_bytes", "Memory of JavaScript objects held outside the heap", external);
}

export function mountHealth(app: Hono<AppEnv>, deps: AppDeps): void {
  // A storage that can't be reached (Redis away) is reported, with 503: this process can hold its
  // connections but store nothing; load balancers send new clients elsewhere if they can.
  app.get("/healthz", (c) => {
    if (deps.state.draining) return c.json({ status: "draining" }, 503);
    const health = deps.engineHealth?.();
    if (!health) return c.json({ status: "ok" });
    const status = health.state === "up" ? "ok" : "degraded";
    return c.json({ status, engine: health }, health.state === "up" ? 200 : 503);
  });
  app.get("/metrics", (c) => {
    const key = deps.config.metricsKey;
    const token = bearer(c.req.header("authorization"));
    if (!(key && token && sameSecret(token, key)) && !loopbackTrusted(c, deps.config)) {
      return key
        ? jsonError(c, "unauthorized", "Metrics need Authorization: Bearer <ROOMCAST_METRICS_KEY>")
        : jsonError(c, "forbidden", "Metrics are for loopback callers, or set ROOMCAST_METRICS_KEY");
    }
    return c.body(deps.metrics.render() + processMetrics(), 200, {
      "content-type": "text/plain; version=0.0.4; charset=utf-8",
    });
  });
}
