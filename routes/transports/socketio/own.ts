/**
 * Who speaks Socket.IO on routes/eio by default (`ROOMCAST_SIO_LAYER=own`; `official` binds the
 * official `socket.io` Server instead): a layer of our own on the official `socket.io-parser`, for
 * the default namespace only, with the small part of the Server/Socket API that
 * routes/transports/socketio/socketio.ts uses (`use`, `on("connection")`, and on a socket `handshake`,
 * `data`, `conn`, `connected`, `emit`, `onAny`, `on("disconnect")`, `disconnect`), and what the
 * official Server keeps to itself: a middleware may set the socket's `id`, `pid` and `recovered`
 * (connection state recovery, recovery.ts). It does what the bridge needs: CONNECT (with auth; 2.x
 * clients are connected at once; `{sid, pid}` answered), CONNECT_ERROR for a failed auth or another
 * namespace, EVENT and BINARY_EVENT with their acks (ACK or BINARY_ACK), DISCONNECT, and a connect
 * timeout.
 */
import { Decoder, Encoder, type Packet, PacketType } from "socket.io-parser";
import type { EngineServer } from "./eio/server.ts";
import { sessionId } from "../../../lib/ids.ts";
import type { EngineSocket, SessionLayer } from "./eio/socket.ts";

type Listener = (...args: unknown[]) => void;

/** What a socket's recovery log hears of the heartbeat (`SessionLog`). */
export interface HeartbeatLog {
  pinged(): void;
  ponged(): void;
}
type Middleware = (socket: OwnSocket, next: (error?: Error) => void) => void | Promise<void>;

const encoder = new Encoder();

/** The decoder every socket's text packets share: one without binary decodes a whole packet in
 * `add`, synchronously. */
const shared = new Decoder();
let lastDecoded: Packet | undefined;
shared.on("decoded", (packet: Packet) => lastDecoded = packet);

/** A text packet (not BINARY_EVENT or BINARY_ACK), decoded; throws on a malformed one. */
function decodeText(text: string): Packet | undefined {
  lastDecoded = undefined;
  shared.add(text);
  const packet = lastDecoded;
  lastDecoded = undefined;
  return packet;
}

export class OwnSocket {
  /** Its id, and with connection state recovery its private session id and whether it was
   * recovered: a middleware may set them (routes/transports/socketio/recovery.ts). */
  id = sessionId();
  pid: string | undefined;
  recovered = false;
  readonly data: Record<string, unknown> = {};
  connected = false;
  /** Its recovery log (routes/transports/socketio/recovery.ts), told of the session's heartbeats:
   * a pong shows what the client has read. */
  log: HeartbeatLog | undefined = undefined;
  readonly handshake: { auth: Record<string, unknown>; query: Record<string, string>; address: string };
  /** Listeners, made on the first (the bridge adds two: `onAny` and `disconnect`). */
  #any: Listener[] | undefined;
  #listeners: [event: string, listener: Listener][] | undefined;

  constructor(readonly conn: EngineSocket, auth: Record<string, unknown>) {
    this.handshake = { auth, query: conn.query, address: conn.remoteAddress };
  }

  /** Sends a packet for the default namespace. */
  packet(packet: Omit<Packet, "nsp">): void {
    if (this.conn.readyState !== "open") return;
    for (const part of encoder.encode({ ...packet, nsp: "/" })) this.conn.write(part);
  }

  emit(event: string, ...args: unknown[]): boolean {
    this.packet({ type: PacketType.EVENT, data: [event, ...args] });
    return true;
  }

  onAny(listener: Listener): this {
    (this.#any ??= []).push(listener);
    return this;
  }

  on(event: string, listener: Listener): this {
    (this.#listeners ??= []).push([event, listener]);
    return this;
  }

  fire(event: string, ...args: unknown[]): void {
    for (const [name, listener] of this.#listeners ?? []) if (name === event) listener(...args);
  }

  /** An EVENT from the client: to `onAny` listeners, then to the event's own. */
  onEvent(args: unknown[]): void {
    for (const listener of this.#any ?? []) listener(...args);
    const [event, ...rest] = args;
    this.fire(String(event), ...rest);
  }

  disconnect(close = false): this {
    if (this.connected) {
      this.packet({ type: PacketType.DISCONNECT });
      this.onClose("server namespace disconnect");
    }
    if (close) this.conn.close();
    return this;
  }

  onClose(reason: string): void {
    if (!this.connected) return;
    this.connected = false;
    this.fire("disconnect", reason);
  }
}

export class OwnSocketIo {
  readonly middlewares: Middleware[] = [];
  readonly listeners: ((socket: OwnSocket) => void)[] = [];
  /** Sessions yet to CONNECT, with when they must have: one sweep for them all rather than a timer
   * each (a session that doesn't is closed, as socket.io's `connectTimeout` does). */
  readonly #waiting = new Map<OwnSession, number>();
  #sweep: ReturnType<typeof setTimeout> | undefined;

  constructor(engine: EngineServer, readonly options: { connectTimeoutMs: number }) {
    engine.on("connection", (conn: EngineSocket) => this.#accept(conn));
  }

  use(middleware: Middleware): this {
    this.middlewares.push(middleware);
    return this;
  }

  on(_event: "connection", listener: (socket: OwnSocket) => void): this {
    this.listeners.push(listener);
    return this;
  }

  #accept(conn: EngineSocket): void {
    const session = new OwnSession(conn, this);
    conn.layer = session;
    // Socket.IO v4 (2.x clients) connects to the default namespace at once, auth in the query.
    if (conn.protocol === 3) return void session.connect({});
    this.#waiting.set(session, Date.now() + this.options.connectTimeoutMs);
    this.#sweepSoon();
  }

  /** `session` connected, or ended: no longer waited for. */
  settled(session: OwnSession): void {
    if (!this.#waiting.delete(session) || this.#waiting.size > 0) return;
    clearTimeout(this.#sweep);
    this.#sweep = undefined;
  }

  #sweepSoon(): void {
    if (this.#sweep !== undefined) return;
    // Within a quarter of the timeout (at most a second) of when it is due.
    const step = Math.max(10, Math.min(1000, this.options.connectTimeoutMs / 4));
    this.#sweep = setTimeout(() => {
      this.#sweep = undefined;
      const now = Date.now();
      // Waiting in the order they came, all with the same timeout: the first not due ends the sweep.
      for (const [session, due] of this.#waiting) {
        if (due > now) break;
        this.#waiting.delete(session);
        session.conn.close();
      }
      if (this.#waiting.size > 0) this.#sweepSoon();
    }, step);
  }
}

/** One Engine.IO session's Socket.IO side: one object that hears the session's messages and its end
 * (`SessionLayer`), which keeps an idle session small (no listeners, no closures, no timer). */
class OwnSession implements SessionLayer {
  /** A decoder of its own only once the client sends binary (its attachments follow in other
   * messages); text packets go through the shared one. */
  #decoder: Decoder | undefined;
  #socket: OwnSocket | undefined;
  #connecting = false;

  constructor(readonly conn: EngineSocket, readonly server: OwnSocketIo) {}

  #refuse(message: string, data?: unknown): void {
    const error = this.conn.protocol === 3 ? message : data === undefined ? { message } : { message, data };
    for (const part of encoder.encode({ type: PacketType.CONNECT_ERROR, nsp: "/", data: error })) this.conn.write(part);
  }

  async connect(auth: Record<string, unknown>): Promise<void> {
    const conn = this.conn;
    this.#connecting = true;
    const candidate = new OwnSocket(conn, auth);
    for (const middleware of this.server.middlewares) {
      const error = await new Promise<Error | undefined>((resolve) => {
        Promise.resolve(middleware(candidate, resolve)).catch(resolve);
      });
      if (error) {
        this.#connecting = false;
        return this.#refuse(error.message, (error as Error & { data?: unknown }).data);
      }
    }
    if (conn.readyState !== "open") return;
    const socket = this.#socket = candidate;
    socket.connected = true;
    this.server.settled(this);
    const data = socket.pid === undefined ? { sid: socket.id } : { sid: socket.id, pid: socket.pid };
    socket.packet(conn.protocol === 3 ? { type: PacketType.CONNECT } : { type: PacketType.CONNECT, data });
    for (const listener of this.server.listeners) listener(socket);
  }

  #packet(packet: Packet): void {
    const socket = this.#socket;
    if (packet.type === PacketType.CONNECT) {
      if (packet.nsp !== "/") return this.#refuse("Invalid namespace");
      if (socket || this.#connecting) return void this.conn.close();
      return void this.connect((packet.data ?? {}) as Record<string, unknown>);
    }
    if (!socket?.connected || packet.nsp !== "/") return void this.conn.close();
    switch (packet.type) {
      case PacketType.EVENT:
      case PacketType.BINARY_EVENT: {
        const args = [...(packet.data as unknown[])];
        if (packet.id !== undefined) {
          const id = packet.id;
          let sent = false;
          args.push((...reply: unknown[]) => {
            if (sent) return;
            sent = true;
            socket.packet({ type: PacketType.ACK, id, data: reply });
          });
        }
        return socket.onEvent(args);
      }
      case PacketType.DISCONNECT:
        // The client may CONNECT again on this session, as it may with socket.io's Server.
        socket.onClose("client namespace disconnect");
        this.#socket = undefined;
        this.#connecting = false;
        return;
      default:
        return; // ACKs: this server asks for none.
    }
  }

  data(data: string | ArrayBuffer): void {
    try {
      if (!this.#decoder && typeof data === "string" && data[0] !== "5" && data[0] !== "6") {
        const packet = decodeText(data);
        if (packet) this.#packet(packet);
        return;
      }
      if (!this.#decoder) {
        this.#decoder = new Decoder();
        this.#decoder.on("decoded", (packet: Packet) => this.#packet(packet));
      }
      this.#decoder.add(data);
    } catch {
      this.conn.close();
    }
  }

  pinged(): void {
    this.#socket?.log?.pinged();
  }

  ponged(): void {
    this.#socket?.log?.ponged();
  }

  closed(reason: string): void {
    this.server.settled(this);
    this.#decoder?.destroy();
    this.#socket?.onClose(reason);
  }
}
