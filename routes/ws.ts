/**
 * `GET /ws`: the JSON protocol (docs/PROTOCOL.md) over a WebSocket. `?batch=1` selects batched
 * mode: the server may put several frames in one WebSocket message, one per line, and the
 * client may do the same.
 */
import type { Hono } from "hono";
import type { Connection } from "../lib/connection.ts";
import type { Hub } from "../lib/hub.ts";
import { jsonEncoder } from "../lib/peer.ts";
import { CloseCode, FrameError } from "../lib/protocol.ts";
import { BatchFlusher } from "./batch.ts";
import type { AppDeps, AppEnv } from "./deps.ts";
import { acceptSocket, type SocketKind } from "./socket.ts";

export function mountWs(app: Hono<AppEnv>, deps: AppDeps): void {
  const { hub } = deps;
  const plain: SocketKind = {
    encoder: jsonEncoder,
    liveness: "app",
    opened: () => {},
    text: (connection, text) => hub.frames.receive(connection, text),
  };
  const batched: SocketKind = {
    ...plain,
    batch: new BatchFlusher(),
    text: (connection, text) => receiveBatch(hub, connection, text),
  };
  app.get("/ws", (c) => acceptSocket(c, deps, c.req.query("batch") === "1" ? batched : plain));
}

/** Frames one batched message may carry. */
export const MAX_BATCH_FRAMES = 100;

/** Handles a batched message line by line, in order, until the connection is closed (a line may
 * close it). A message of more than MAX_BATCH_FRAMES lines is refused whole and closes the
 * connection (1008): counting its lines costs nothing, handling them could cost the event loop. */
function receiveBatch(hub: Hub, connection: Connection, text: string): void {
  // Lines, not newlines: a message whose last line ends with "\n" carries no extra frame.
  let lines = text.endsWith("\n") ? 0 : 1;
  for (let at = text.indexOf("\n"); at !== -1; at = text.indexOf("\n", at + 1)) {
    if (++lines > MAX_BATCH_FRAMES) {
      hub.frames.refuse(
        connection,
        new FrameError("too_large", `A batched message may carry at most ${MAX_BATCH_FRAMES} frames`),
      );
      return connection.close(CloseCode.policy, "Too many frames in one message", "batch_too_large");
    }
  }
  for (const line of text.split("\n")) {
    if (connection.closed) return;
    if (line.trim()) hub.frames.receive(connection, line);
  }
}
