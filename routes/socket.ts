/**
 * Accepting a WebSocket: the checks before the upgrade (origin, name, identity), the native
 * `Deno.upgradeWebSocket`, and the wiring of socket events to the hub. `/ws`, `/raw/:room` and
 * the raw `/` upgrade differ only in encoder, liveness and what a text frame means.
 */
import type { Connection } from "../lib/connection.ts";
import type { Encoder } from "../lib/peer.ts";
import { CloseCode, ProtocolError } from "../lib/protocol.ts";
import { connectionId } from "../lib/ids.ts";
import type { Identity } from "../lib/auth.ts";
import type { AppContext, AppDeps } from "./deps.ts";
import { jsonError } from "./errors.ts";
import { identify, isWebSocketUpgrade, nameParam, originAllowed } from "./identity.ts";
import { SocketPeer } from "./socket_peer.ts";
import { type BatchFlusher, BatchingSocketPeer } from "./batch.ts";

export interface SocketKind {
  encoder: Encoder;
  /** Batched mode: frames are coalesced by this flusher (routes/batch.ts). */
  batch?: BatchFlusher | undefined;
  liveness: "app" | "transport";
  /** Called once the socket is open and the hub knows the connection. */
  opened(connection: Connection): void;
  /** One text frame within the hard size cap. */
  text(connection: Connection, text: string): void;
}

/** Frames above this many times the frame limit close the socket with 1009 instead of an error frame. */
const HARD_CAP_FACTOR = 16;

export async function acceptSocket(c: AppContext, deps: AppDeps, kind: SocketKind): Promise<Response> {
  if (!isWebSocketUpgrade(c)) return jsonError(c, "bad_request", "Expected a WebSocket upgrade");
  if (deps.state.draining) return c.json({ error: { code: "internal", message: "Server is shutting down" } }, 503);
  if (!originAllowed(c, deps.config.origins)) return jsonError(c, "forbidden", "Origin not allowed");
  const name = nameParam(c);
  let identity: Identity | ProtocolError;
  try {
    identity = await identify(c, deps, name);
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    identity = error;
  }
  const idleTimeout = Math.max(1, Math.ceil(deps.config.heartbeatMs / 1000));
  const { socket, response } = Deno.upgradeWebSocket(c.req.raw, { idleTimeout });
  if (identity instanceof ProtocolError) {
    refuse(socket, identity);
  } else {
    wire(socket, deps, identity, kind);
  }
  return response;
}

/** Tells the client why (an `error` frame) and closes with 1008: browsers can't read a refused upgrade. */
function refuse(socket: WebSocket, error: ProtocolError): void {
  socket.onopen = () => {
    socket.send(JSON.stringify({ type: "error", code: error.code, message: error.message }));
    socket.close(CloseCode.policy, error.message.slice(0, 120));
  };
}

function wire(socket: WebSocket, deps: AppDeps, identity: Identity, kind: SocketKind): void {
  const { hub, config } = deps;
  const hardCap = config.limits.maxFrameBytes * HARD_CAP_FACTOR;
  let connection: Connection | undefined;
  socket.onopen = () => {
    const id = connectionId();
    const peer = kind.batch
      ? new BatchingSocketPeer(socket, kind.batch, id, identity.user, kind.encoder, kind.liveness)
      : new SocketPeer(socket, id, identity.user, kind.encoder, kind.liveness);
    connection = hub.connect(peer, { rooms: identity.rooms, expiresAt: identity.expiresAt });
    kind.opened(connection);
  };
  socket.onmessage = (event: MessageEvent) => {
    if (!connection || connection.closed) return;
    if (typeof event.data !== "string") {
      hub.touch(connection);
      connection.error("bad_request", "Binary frames are not supported: send text");
    } else if (event.data.length > hardCap) {
      connection.close(CloseCode.tooLarge, "Frame too large", "too_large");
    } else {
      kind.text(connection, event.data);
    }
  };
  socket.onclose = () => {
    if (connection) hub.disconnect(connection);
  };
  socket.onerror = () => {
    // A close event always follows; nothing to do twice.
  };
}
