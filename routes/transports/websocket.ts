/**
 * Accepting a WebSocket for the WebSocket transports (ws/, batch/, raw/): the opening steps every
 * transport takes (transport.ts: refused, admitted, identified) before the native
 * `Deno.upgradeWebSocket`, and the wiring of socket events to the hub. The transports differ only
 * in their peer and what a text frame means (`SocketKind`).
 */
import type { Connection } from "../../lib/connection.ts";
import type { Peer } from "../../lib/peer.ts";
import { CloseCode, errorFields, ProtocolError, type User } from "../../lib/protocol.ts";
import { parseStreamId, roomsParam, urlJoin } from "./sse/sse.ts";
import { connectionId } from "../../lib/ids.ts";
import type { Identity } from "../../lib/auth.ts";
import type { AppContext, AppDeps } from "../deps.ts";
import { jsonError } from "../errors.ts";
import {
  addressOf,
  awaitsToken,
  identify,
  isWebSocketUpgrade,
  nameParam,
  originRefusal,
  shuttingDown,
  vetConnect,
} from "./identity.ts";
import { BackendRefusal } from "../../lib/proxy.ts";
import { Admitted } from "./admitted.ts";

/** What a WebSocket transport (ws, batch, raw) makes of a socket: its peer, and what a text frame
 * means. */
export interface SocketKind {
  /** The transport's name, as `/metrics` counts its connections. */
  readonly transport: string;
  /** Who connects, where the protocol has its own way to say (Pusher: the app key in the path);
   * a `ProtocolError` refuses the client. Absent: `identify` (a JWT when auth is on, else a guest). */
  identify?(c: AppContext, deps: AppDeps, name: string | undefined, address: string): Promise<Identity>;
  /** Tells a refused client why in this protocol, and closes (`code`: 1008 for a policy, 1013 for
   * a server that can't take it now). Absent: an `error` frame, then the close. */
  refuse?(socket: WebSocket, error: ProtocolError, code: number): void;
  /** A new connection's id, where the protocol fixes its form (Pusher's `socket_id`). */
  connectionId?(): string;
  /** The WebSocket sub-protocol to answer, from those the client offered (STOMP's `v12.stomp`…). */
  protocol?(offered: string[]): string | undefined;
  /** One binary message within the hard size cap, where the protocol has them (STOMP's binary
   * bodies). Absent: a binary message is refused and closes the socket (1003). */
  binary?(connection: Connection, bytes: Uint8Array): void;
  /** The hub's peer for an open socket. */
  peer(socket: WebSocket, id: string, user: User): Peer;
  /** Called once the socket is open and the hub knows the connection. */
  opened(connection: Connection): void;
  /** Called once the socket has closed, before its slot is given back (WAMP: its procedures go). */
  closed?(connection: Connection): void;
  /** One text frame within the hard size cap. */
  text(connection: Connection, text: string): void;
  /** The JSON protocol's: `?room=` (and `?since=`, as SSE takes it) joins those rooms at once,
   * after `welcome`, as `join` frames would (Centrifugo's connect with its subscriptions). */
  readonly joinsInUrl?: boolean;
}

/** A join asked for in the connect URL. */
type UrlJoin = ReturnType<typeof urlJoin>;

/** `?room=a&room=b&since=…`, read as SSE reads them (docs/PROTOCOL.md, "SSE"): the joins, none (no
 * `room`), or why none are made (too many rooms, a bad name). */
function urlJoins(c: AppContext, maxRooms: number): UrlJoin[] | ProtocolError | undefined {
  const named = c.req.queries("room") ?? [];
  if (named.length === 0) return undefined;
  const rooms = roomsParam(named, maxRooms, "a connection");
  if (rooms instanceof ProtocolError) return new ProtocolError(rooms.code, `${rooms.message} (none joined)`);
  const resume = parseStreamId(c.req.query("since"), rooms);
  return rooms.map((room) => urlJoin(room, resume));
}

/** Frames above this many times the frame limit close the socket with 1009 instead of an error frame. */
const HARD_CAP_FACTOR = 16;

export async function acceptSocket(c: AppContext, deps: AppDeps, kind: SocketKind): Promise<Response> {
  if (!isWebSocketUpgrade(c)) return jsonError(c, "bad_request", "Expected a WebSocket upgrade");
  const draining = shuttingDown(c, deps);
  if (draining) return draining;
  // Another site's page, or this one at an address not in ROOMCAST_HOSTS: the upgrade completes and
  // the page is told which setting would allow it (a browser can't read a refused upgrade's status,
  // and would retry forever). The slot meters such upgrades as any other.
  const forbidden = originRefusal(c, deps);
  const name = nameParam(c);
  const address = addressOf(c, deps);
  const admitted = Admitted.take(deps, address);
  // Refused by the admission (1013) or by the identity check (1008): the upgrade completes, then
  // the client is told why.
  let refusal: [ProtocolError, number] | undefined;
  let identity: Identity | undefined;
  // Known before the socket opens: the app's backend is asked about this connection by its id.
  const id = kind.connectionId?.() ?? connectionId();
  let socket: WebSocket;
  let response: Response;
  try {
    if (forbidden) {
      refusal = [forbidden, CloseCode.policy];
    } else if (!(admitted instanceof Admitted)) {
      refusal = [new ProtocolError(admitted.code, admitted.message), CloseCode.tryAgainLater];
    } else {
      try {
        identity = kind.identify ? await kind.identify(c, deps, name, address) : await identify(c, deps, name, address);
        // A client whose token comes after the upgrade (STOMP, WAMP) is asked about when it comes.
        if (deps.proxy?.asks("connect") && !awaitsToken(identity.user)) {
          const headers = c.req.raw.headers;
          identity = await vetConnect(deps, identity, { client: id, transport: kind.transport, headers, address });
        }
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        identity = undefined;
        refusal = [error, refusalCode(error)];
      }
    }
    const idleTimeout = Math.max(1, Math.ceil(deps.config.heartbeatMs / 1000));
    const offered = (c.req.header("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim()).filter(Boolean);
    const protocol = kind.protocol?.(offered);
    ({ socket, response } = Deno.upgradeWebSocket(c.req.raw, protocol ? { idleTimeout, protocol } : { idleTimeout }));
  } catch (error) {
    if (admitted instanceof Admitted) admitted.release();
    // Deno refuses a malformed handshake (no Sec-WebSocket-Key, a wrong version…): the client's
    // mistake, answered as such, not logged as ours.
    if (error instanceof TypeError) {
      return jsonError(c, "bad_request", `Not a valid WebSocket upgrade: ${error.message}`);
    }
    throw error;
  }
  if (admitted instanceof Admitted && identity) {
    // The session gives the slot back itself: an open connection holds no closure for it.
    const joins = kind.joinsInUrl ? urlJoins(c, deps.config.limits.maxRooms) : undefined;
    wire(socket, deps, identity, kind, admitted, id, joins);
  } else if (refusal) {
    if (admitted instanceof Admitted) socket.addEventListener("close", () => admitted.release(), { once: true });
    // Browsers can't read a refused upgrade's status, so the upgrade completes first.
    const [error, code] = refusal;
    socket.onopen = () => (kind.refuse ?? tellAndClose)(socket, error, code);
  }
  return response;
}

/** The close code for a refusal: the app backend's own (a `disconnect`), 1013 where it could not be
 * asked (try again later), else 1008. */
function refusalCode(error: ProtocolError): number {
  if (error instanceof BackendRefusal && error.disconnect) return error.disconnect.code;
  return error.code === "unavailable" ? CloseCode.tryAgainLater : CloseCode.policy;
}

/** An `error` frame saying why (with the app backend's numeric code, where it gave one), then the close. */
function tellAndClose(socket: WebSocket, error: ProtocolError, code: number): void {
  socket.send(JSON.stringify({ type: "error", ...errorFields(error.code, error.message, error.backendCode) }));
  socket.close(code, error.message.slice(0, 120));
}

/** Connects a socket's events to the hub: one object per socket handles them all (no closures),
 * which keeps an idle connection small. */
class SocketSession {
  #connection: Connection | undefined;
  constructor(
    readonly socket: WebSocket,
    readonly deps: AppDeps,
    readonly identity: Identity,
    readonly kind: SocketKind,
    /** The admission slot this socket holds, given back when it closes. */
    readonly admitted: Admitted,
    readonly id: string,
    /** The joins the connect URL asked for, made once it opens. */
    public joins: UrlJoin[] | ProtocolError | undefined,
  ) {}

  handleEvent(event: Event): void {
    try {
      switch (event.type) {
        case "open":
          return this.#open();
        case "message":
          return this.#message(event as MessageEvent);
        case "close":
          if (this.#connection) this.kind.closed?.(this.#connection);
          // Its hub connection, if any, is forgotten with it.
          return this.admitted.release();
          // "error": a close event always follows.
      }
    } catch (error) {
      // A bug, not the client's doing: it ends this connection only, never the process (an
      // exception thrown from an event listener would).
      console.error(`roomcast: ${event.type} of connection ${this.#connection?.id ?? "(opening)"} failed:`, error);
      this.deps.metrics.errors.incLabel("internal");
      if (this.#connection) this.#connection.close(CloseCode.internal, "Internal error", "internal");
      else this.socket.close(CloseCode.internal, "Internal error");
    }
  }

  #open(): void {
    const { socket, identity, kind } = this;
    const peer = kind.peer(socket, this.id, identity.user);
    const connection = this.admitted.connect(peer, identity, kind.transport);
    // The slot can't connect (it was given back, or carries a connection): 1008.
    if (connection instanceof ProtocolError) return (kind.refuse ?? tellAndClose)(socket, connection, CloseCode.policy);
    this.#connection = connection;
    kind.opened(connection);
    const joins = this.joins;
    this.joins = undefined;
    if (joins instanceof ProtocolError) connection.error(joins.code, joins.message);
    else if (joins) { for (const join of joins) this.deps.hub.frames.submit(connection, join); }
  }

  #message(event: MessageEvent): void {
    const connection = this.#connection;
    if (!connection || connection.closed) return;
    const cap = this.deps.config.limits.maxFrameBytes * HARD_CAP_FACTOR;
    if (event.data instanceof ArrayBuffer && this.kind.binary) {
      if (event.data.byteLength <= cap) return this.kind.binary(connection, new Uint8Array(event.data));
      connection.close(CloseCode.tooLarge, "Frame too large", "too_large");
      this.admitted.offend();
    } else if (typeof event.data !== "string") {
      // Deno has read the whole message by now (it offers no early refusal, denoland/deno#15809):
      // closing makes a client that sends binary pay a new connection for each one, and an address
      // that keeps doing it is shut out for a while.
      connection.error("bad_request", "Binary frames are not supported: send text");
      connection.close(CloseCode.unsupported, "Binary frames are not supported", "binary");
      this.admitted.offend();
    } else if (event.data.length > cap) {
      connection.close(CloseCode.tooLarge, "Frame too large", "too_large");
      this.admitted.offend();
    } else {
      this.kind.text(connection, event.data);
    }
  }
}

function wire(
  socket: WebSocket,
  deps: AppDeps,
  identity: Identity,
  kind: SocketKind,
  admitted: Admitted,
  id: string,
  joins: UrlJoin[] | ProtocolError | undefined,
): void {
  // Binary messages come as bytes where the protocol takes them.
  if (kind.binary) socket.binaryType = "arraybuffer";
  const session = new SocketSession(socket, deps, identity, kind, admitted, id, joins);
  for (const type of ["open", "message", "close"]) socket.addEventListener(type, session);
}
