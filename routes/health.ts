/** `GET /healthz` (503 while draining) and `GET /metrics` (Prometheus text format, every Worker's
 * figures merged; its key, or a loopback caller). */
import type { Hono } from "hono";
import { bearer, sameSecret } from "../lib/auth.ts";
import { jsonError } from "./errors.ts";
import { listensOnLoopback, loopbackTrusted } from "./trust.ts";
import type { AppDeps, AppEnv } from "./deps.ts";
import { metricsText } from "../lib/metrics.ts";
import { VERSION } from "../lib/version.ts";

export function mountHealth(app: Hono<AppEnv>, deps: AppDeps): void {
  // A storage that can't be reached (Redis away) is reported, with 503: this process can hold its
  // connections but store nothing; load balancers send new clients elsewhere if they can.
  app.get("/healthz", (c) => {
    if (deps.state.draining) return c.json({ status: "draining", version: VERSION }, 503);
    const health = deps.engineHealth?.();
    // The app's backend, where one is asked: whether its failures let actions through, and each
    // kind's circuit (an open one is no reason to take this server out: it says so, with 200).
    const proxy = deps.proxy && {
      failOpen: deps.proxy.failOpen,
      circuits: Object.fromEntries(
        Object.entries(deps.proxy.state()).filter(([, s]) => s.url).map(([kind, s]) => [kind, s.state]),
      ),
    };
    if (!health) return c.json(proxy ? { status: "ok", version: VERSION, proxy } : { status: "ok", version: VERSION });
    const status = health.state === "up" ? "ok" : "degraded";
    return c.json(
      proxy ? { status, version: VERSION, engine: health, proxy } : { status, version: VERSION, engine: health },
      health.state === "up" ? 200 : 503,
    );
  });
  // What a page needs to know before it connects: whether users bring a token (auth) or are guests.
  app.get("/api/info", (c) => c.json({ version: VERSION, auth: deps.config.authSecret ? "token" : "guest" }));
  app.get("/metrics", async (c) => {
    const key = deps.config.metricsKey;
    const token = bearer(c.req.header("authorization"));
    // A key that is given must be the right one, from loopback too: a mistyped key is told so.
    const wrongKey = key !== undefined && token !== undefined && !sameSecret(token, key);
    if (wrongKey || (!(key && token) && !loopbackTrusted(c, deps.config))) {
      return key
        ? jsonError(
          c,
          "unauthorized",
          token
            ? "Invalid metrics key: Authorization: Bearer must carry ROOMCAST_METRICS_KEY"
            : "Metrics need Authorization: Bearer <ROOMCAST_METRICS_KEY>",
        )
        : jsonError(
          c,
          "forbidden",
          listensOnLoopback(deps.config)
            ? "Metrics are for loopback callers, or set ROOMCAST_METRICS_KEY"
            : `This server listens on ${deps.config.hostname}: metrics need ROOMCAST_METRICS_KEY`,
        );
    }
    // With Workers, every isolate's figures merged; this one's alone if the coordinator can't answer.
    const text = deps.allMetrics
      ? await deps.allMetrics().catch((error) =>
        `# roomcast: this Worker's figures only: gathering the others' failed (${
          String(error).replace(/\n/g, " ")
        })\n` +
        metricsText(deps.metrics)
      )
      : metricsText(deps.metrics);
    return c.body(text, 200, {
      "content-type": "text/plain; version=0.0.4; charset=utf-8",
    });
  });
}
