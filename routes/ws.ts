/**
 * `GET /ws`: the JSON protocol (docs/PROTOCOL.md) over a WebSocket. `?batch=1` selects batched
 * mode: the server may put several frames in one WebSocket message, one per line, and the
 * client may do the same.
 */
import type { Hono } from "hono";
import { jsonEncoder } from "../lib/peer.ts";
import { BatchFlusher } from "./batch.ts";
import type { AppDeps, AppEnv } from "./deps.ts";
import { acceptSocket } from "./socket.ts";

export function mountWs(app: Hono<AppEnv>, deps: AppDeps): void {
  const { hub } = deps;
  const flusher = new BatchFlusher();
  app.get("/ws", (c) => {
    const batch = c.req.query("batch") === "1";
    return acceptSocket(c, deps, {
      encoder: jsonEncoder,
      liveness: "app",
      batch: batch ? flusher : undefined,
      opened: () => {},
      text: batch
        ? (connection, text) => {
          for (const line of text.split("\n")) if (line.trim()) hub.receive(connection, line);
        }
        : (connection, text) => hub.receive(connection, text),
    });
  });
}
