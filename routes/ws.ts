/**
 * `GET /ws`: the JSON protocol (docs/PROTOCOL.md) over a WebSocket. `?batch=1` selects batched
 * mode: the server may put several frames in one WebSocket message, one per line, and the
 * client may do the same.
 */
import type { Hono } from "hono";
import { jsonEncoder } from "../lib/peer.ts";
import { BatchFlusher } from "./batch.ts";
import type { AppDeps, AppEnv } from "./deps.ts";
import { acceptSocket, type SocketKind } from "./socket.ts";

export function mountWs(app: Hono<AppEnv>, deps: AppDeps): void {
  const { hub } = deps;
  const plain: SocketKind = {
    encoder: jsonEncoder,
    liveness: "app",
    opened: () => {},
    text: (connection, text) => hub.receive(connection, text),
  };
  const batched: SocketKind = {
    ...plain,
    batch: new BatchFlusher(),
    text: (connection, text) => {
      for (const line of text.split("\n")) if (line.trim()) hub.receive(connection, line);
    },
  };
  app.get("/ws", (c) => acceptSocket(c, deps, c.req.query("batch") === "1" ? batched : plain));
}
