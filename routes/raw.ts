/**
 * Raw rooms: `GET /raw/:room` and a WebSocket upgrade on `/` (room `lobby`). Each text frame is
 * published as a message whose `data` is that text; members receive messages as plain text.
 */
import type { Hono } from "hono";
import { isRoomName } from "../lib/protocol.ts";
import { rawEncoder } from "../lib/peer.ts";
import type { AppContext, AppDeps, AppEnv } from "./deps.ts";
import { jsonError } from "./errors.ts";
import { acceptSocket } from "./socket.ts";

export function acceptRaw(c: AppContext, deps: AppDeps, room: string): Promise<Response> {
  const { hub } = deps;
  return acceptSocket(c, deps, {
    encoder: rawEncoder,
    liveness: "transport",
    opened: (connection) => hub.submit(connection, { type: "join", room }),
    text: (connection, text) => {
      if (hub.inbound(connection, text)) hub.submit(connection, { type: "publish", room, data: text });
    },
  });
}

export function mountRaw(app: Hono<AppEnv>, deps: AppDeps): void {
  app.get("/raw/:room", (c) => {
    const room = c.req.param("room");
    if (!isRoomName(room)) return jsonError(c, "bad_request", "Room name must match [A-Za-z0-9_.:@-]{1,128}");
    return acceptRaw(c, deps, room);
  });
}
