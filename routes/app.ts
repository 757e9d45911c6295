/** `createApp(deps)`: the Hono app with every route mounted and errors as JSON. */
import { Hono } from "hono";
import type { AppDeps, AppEnv } from "./deps.ts";
import { jsonError, onError } from "./errors.ts";
import { mountApi } from "./api.ts";
import { mountHealth } from "./health.ts";
import { isWebSocketUpgrade } from "./identity.ts";
import { acceptRaw, mountRaw } from "./raw.ts";
import { mountSse } from "./sse.ts";
import { staticFile } from "./static.ts";
import { mountWs } from "./ws.ts";

export function createApp(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.onError(onError);
  mountHealth(app, deps);
  mountWs(app, deps);
  mountRaw(app, deps);
  mountSse(app, deps);
  mountApi(app, deps);
  app.get("/", async (c) => {
    if (isWebSocketUpgrade(c)) return acceptRaw(c, deps, "lobby");
    return await staticFile(c, "index.html") ?? jsonError(c, "not_found", "No chat page");
  });
  app.get("/:file", async (c, next) => (await staticFile(c, c.req.param("file"))) ?? next());
  app.notFound((c) => jsonError(c, "not_found", `No route for ${c.req.method} ${new URL(c.req.url).pathname}`));
  return app;
}
