/**
 * `GET /ws`: the JSON protocol (docs/PROTOCOL.md) over a WebSocket, one frame per message.
 * `?batch=1` hands the socket to the batched transport (batch/batch.ts) instead.
 */
import type { Hono } from "hono";
import type { Connection } from "../../../lib/connection.ts";
import type { Hub } from "../../../lib/hub.ts";
import { jsonEncoder, type Peer } from "../../../lib/peer.ts";
import type { User } from "../../../lib/protocol.ts";
import type { AppDeps, AppEnv } from "../../deps.ts";
import { BatchKind } from "../batch/batch.ts";
import { acceptSocket, type SocketKind } from "../websocket.ts";
import { SocketPeer } from "./socket_peer.ts";

/** A `/ws` socket: JSON frames, one per message, pinged by the hub ("app" liveness). */
export class JsonKind implements SocketKind {
  readonly transport = "ws";
  readonly joinsInUrl = true;
  constructor(readonly hub: Hub) {}

  peer(socket: WebSocket, id: string, user: User): Peer {
    return new SocketPeer(socket, id, user, jsonEncoder, "app");
  }

  opened(): void {}

  text(connection: Connection, text: string): void {
    this.hub.frames.receive(connection, text);
  }
}

export function mountWs(app: Hono<AppEnv>, deps: AppDeps): void {
  const plain = new JsonKind(deps.hub);
  const batched = new BatchKind(deps.hub);
  app.get("/ws", (c) => acceptSocket(c, deps, c.req.query("batch") === "1" ? batched : plain));
}
