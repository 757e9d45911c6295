/** `GET /ws`: the JSON protocol (docs/PROTOCOL.md) over a WebSocket. */
import type { Hono } from "hono";
import { jsonEncoder } from "../lib/peer.ts";
import type { AppDeps, AppEnv } from "./deps.ts";
import { acceptSocket } from "./socket.ts";

export function mountWs(app: Hono<AppEnv>, deps: AppDeps): void {
  const { hub } = deps;
  app.get("/ws", (c) =>
    acceptSocket(c, deps, {
      encoder: jsonEncoder,
      liveness: "app",
      opened: () => {},
      text: (connection, text) => hub.receive(connection, text),
    }));
}
