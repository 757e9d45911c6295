/**
 * Raw rooms: `GET /raw/:room` and a WebSocket upgrade on `/` (room `lobby`). Each text frame is
 * published as a message whose `data` is that text; members receive messages as plain text.
 */
import type { Hono } from "hono";
import { isRoomName, ROOM_RULE, type User } from "../../../lib/protocol.ts";
import { type Peer, rawEncoder } from "../../../lib/peer.ts";
import { SocketPeer } from "../ws/socket_peer.ts";
import type { AppContext, AppDeps, AppEnv } from "../../deps.ts";
import { jsonError } from "../../errors.ts";
import { acceptSocket, type SocketKind } from "../websocket.ts";
import type { Connection } from "../../../lib/connection.ts";
import type { Hub } from "../../../lib/hub.ts";

/** A raw room socket: joins `room` on open, publishes each text frame to it; its client is
 * pinged by the runtime's WebSocket idle timeout ("transport" liveness). */
class RawKind implements SocketKind {
  readonly transport = "raw";
  constructor(readonly hub: Hub, readonly room: string) {}

  peer(socket: WebSocket, id: string, user: User): Peer {
    return new SocketPeer(socket, id, user, rawEncoder, "transport");
  }

  opened(connection: Connection): void {
    this.hub.frames.submit(connection, { type: "join", room: this.room });
  }

  text(connection: Connection, text: string): void {
    if (this.hub.frames.inbound(connection, text)) {
      this.hub.frames.submit(connection, { type: "publish", room: this.room, data: text });
    }
  }
}

export function acceptRaw(c: AppContext, deps: AppDeps, room: string): Promise<Response> {
  return acceptSocket(c, deps, new RawKind(deps.hub, room));
}

export function mountRaw(app: Hono<AppEnv>, deps: AppDeps): void {
  app.get("/raw/:room", (c) => {
    const room = c.req.param("room");
    if (!isRoomName(room)) return jsonError(c, "bad_request", `Room name must match ${ROOM_RULE}`);
    return acceptRaw(c, deps, room);
  });
}
