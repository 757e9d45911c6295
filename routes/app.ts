/** `createApp(deps)`: the Hono app with every route mounted, CORS for the listed sites, and errors
 * as JSON. */
import { type Context, Hono, type MiddlewareHandler } from "hono";
import type { Config } from "../lib/config.ts";
import type { AppDeps, AppEnv } from "./deps.ts";
import { jsonError, onError } from "./errors.ts";
import { mountApi } from "./api.ts";
import { mountAdmin } from "./admin.ts";
import { accessLog } from "./access_log.ts";
import { mountHealth } from "./health.ts";
import { isWebSocketUpgrade } from "./transports/identity.ts";
import { acceptRaw } from "./transports/raw/raw.ts";
import { TRANSPORTS } from "./transports/transports.ts";
import { staticFile } from "./static.ts";
import { listedOrigin } from "./trust.ts";

export function createApp(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.onError(onError);
  if (deps.config.accessLog !== "off") app.use(accessLog(deps.config.accessLog, deps.config.trustedProxies));
  app.use("/api/*", cors(deps.config));
  app.use("/events", cors(deps.config));
  // The client module, for pages of the listed sites (a cross-origin module script needs CORS).
  app.use("/roomcast.js", cors(deps.config));
  mountHealth(app, deps);
  for (const transport of TRANSPORTS) {
    const service = transport.mount(app, deps);
    if (service) (deps.state.stops ??= []).push(() => service.close());
  }
  mountApi(app, deps);
  const admin = mountAdmin(app, deps);
  (deps.state.stops ??= []).push(() => admin.close());
  app.get("/", async (c) => {
    if (isWebSocketUpgrade(c)) return acceptRaw(c, deps, "lobby");
    return await staticFile(c, "index.html") ?? jsonError(c, "not_found", "No chat page");
  });
  app.get("/admin", async (c) => await staticFile(c, "admin.html") ?? jsonError(c, "not_found", "No dashboard page"));
  app.get("/admin/:file", async (c, next) => (await staticFile(c, `admin/${c.req.param("file")}`)) ?? next());
  app.get("/chat/:file", async (c, next) => (await staticFile(c, `chat/${c.req.param("file")}`)) ?? next());
  app.get("/:file", async (c, next) => (await staticFile(c, c.req.param("file"))) ?? next());
  app.notFound((c) => jsonError(c, "not_found", `No route for ${c.req.method} ${new URL(c.req.url).pathname}`));
  return app;
}

const CORS_METHODS = "GET, POST, DELETE";
const CORS_HEADERS = "authorization, content-type, last-event-id, idempotency-key";

/** CORS for the sites `ROOMCAST_ORIGINS` lists (`*`: any), preflights included; no credentials
 * (roomcast uses bearer tokens, never cookies). A preflight from another site is refused. */
function cors(config: Pick<Config, "origins">): MiddlewareHandler<AppEnv> {
  return async (c: Context<AppEnv>, next) => {
    const origin = c.req.header("origin");
    if (c.req.method === "OPTIONS") {
      if (!listedOrigin(config.origins, origin)) {
        const response = jsonError(
          c,
          "forbidden",
          "Origin not allowed: ROOMCAST_ORIGINS lists the sites that may call",
        );
        response.headers.set("vary", "Origin");
        return response;
      }
      return new Response(null, {
        status: 204,
        headers: {
          "access-control-allow-origin": origin,
          "access-control-allow-methods": CORS_METHODS,
          "access-control-allow-headers": CORS_HEADERS,
          "access-control-max-age": "600",
          vary: "Origin",
        },
      });
    }
    await next();
    c.res.headers.append("vary", "Origin");
    if (listedOrigin(config.origins, origin)) {
      c.res.headers.set("access-control-allow-origin", origin);
      c.res.headers.set("access-control-expose-headers", "retry-after");
    }
  };
}
