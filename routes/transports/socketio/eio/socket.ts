/**
 * An Engine.IO session: what the official `socket.io` Server calls a `conn`. It owns a transport
 * (polling, then perhaps a WebSocket after an upgrade), a write buffer, and the heartbeat, which
 * runs in each protocol's direction: in EIO=4 the server pings and the client must pong within
 * `pingTimeout`; in EIO=3 the client pings and the server must hear one within `pingInterval +
 * pingTimeout`. Events (a node EventEmitter, as socket.io expects): `data` (a message: string or
 * ArrayBuffer), `close` (reason, description), `upgrade`, `drain`, `packet`, `heartbeat`.
 */
import { EventEmitter } from "node:events";
import type { Packet, PacketData, Protocol } from "./parser.ts";
import type { Beat, Beating, Heartbeats } from "./heartbeats.ts";
import {
  PAYLOAD_TOO_LARGE,
  type PollingTransport,
  type Transport,
  type TransportOwner,
  type WebSocketTransport,
} from "./transports.ts";

export type ReadyState = "opening" | "open" | "closing" | "closed";

/** The parts of a node `IncomingMessage` socket.io reads to build a handshake. */
export interface EngineRequest {
  headers: Record<string, string>;
  url: string;
  method: string;
  _query: Record<string, string>;
  connection: { encrypted: boolean };
}

/** What a session keeps of its handshake request (its `request` is made from it when asked). */
export interface Handshake {
  /** A few of its headers (read before an upgrade: after it, they are gone). */
  headers: Record<string, string>;
  /** Its path and query. */
  url: string;
  query: Record<string, string>;
  encrypted: boolean;
}

const ENCRYPTED = Object.freeze({ encrypted: true });
const PLAIN = Object.freeze({ encrypted: false });

export interface SessionOptions {
  pingInterval: number;
  pingTimeout: number;
  upgradeTimeout: number;
  maxPayload: number;
}

/** What a session's admission holds for it (`EngineServer`'s `admit`), released once it ends. */
export interface SessionSlot {
  release(): void;
  /** The client sent a message over the payload cap, read whole before it could be refused. */
  offend?(): void;
}

/** The layer above's look at a session's messages before anyone parses them (routes/transports/socketio/gate.ts). */
export interface PacketGate {
  /** A message from the client: why the session must end (it broke the rules), or undefined. */
  inbound(data: string | Uint8Array): string | undefined;
  /** A message to the client, as written. */
  outbound(data: string | Uint8Array): void;
}

/** The data a caller may write: text, or binary in any of its usual shapes. */
export type WriteData = string | ArrayBuffer | ArrayBufferView;

function toPacketData(data: WriteData): PacketData {
  if (typeof data === "string") return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Who hears of a session's messages and its end directly, without listeners (the own Socket.IO
 * layer, routes/transports/socketio/own.ts): called before the `data` and `close` events. */
export interface SessionLayer {
  data(data: string | ArrayBuffer): void;
  closed(reason: string): void;
  /** EIO=4 heartbeat: a ping is about to be written after everything before it, and its pong came
   * (the client has read all that came before the ping). */
  pinged?(): void;
  ponged?(): void;
}

/** The server a session belongs to: its heartbeat queues, and who is told when it ends. */
export interface SessionServer {
  readonly heartbeats: Heartbeats;
  ended(socket: EngineSocket): void;
}

export class EngineSocket extends EventEmitter implements TransportOwner, Beating {
  readonly id: string;
  readonly protocol: Protocol;
  /** The handshake's query, as socket.io reads it (`handshake.query`). */
  readonly query: Record<string, string>;
  readonly #handshake: Handshake;
  readonly remoteAddress: string;
  /** The admission slot this session holds (given back by the server when it ends). */
  readonly slot: SessionSlot | undefined;
  gate: PacketGate | undefined;
  layer: SessionLayer | undefined;
  readyState: ReadyState = "opening";
  transport: Transport;
  upgrading = false;
  upgraded = false;
  readonly #options: SessionOptions;
  #buffer: Packet[] = [];
  /** When the next ping is due (EIO 4), and when the client's answer (EIO 4: its pong; EIO 3: its
   * ping) is late: deadlines on the server's heartbeat queues, not timers of the session's own. */
  #pingDue: number | undefined;
  #pongDue: number | undefined;
  #upgradeTimer: ReturnType<typeof setTimeout> | undefined;
  #probe: WebSocketTransport | undefined;
  /** Its server: its heartbeat queues, told once the session ends. */
  readonly #server: SessionServer;

  constructor(
    id: string,
    protocol: Protocol,
    handshake: Handshake,
    remoteAddress: string,
    transport: Transport,
    options: SessionOptions,
    slot: SessionSlot | undefined,
    server: SessionServer,
  ) {
    super();
    this.#server = server;
    this.slot = slot;
    this.id = id;
    this.protocol = protocol;
    this.#handshake = handshake;
    this.query = handshake.query;
    this.remoteAddress = remoteAddress;
    this.transport = transport;
    this.#options = options;
    transport.owner = this;
  }

  /** The handshake request node-style, as the official `socket.io` Server reads it (made when
   * asked: a session keeps only its parts). */
  get request(): EngineRequest {
    const { headers, url, query, encrypted } = this.#handshake;
    return { headers, url, method: "GET", _query: query, connection: encrypted ? ENCRYPTED : PLAIN };
  }

  /** Sends the open packet and starts the heartbeat. */
  open(upgrades: string[]): void {
    const { pingInterval, pingTimeout, maxPayload } = this.#options;
    this.readyState = "open";
    this.#sendPacket({
      type: "open",
      data: JSON.stringify({ sid: this.id, upgrades, pingInterval, pingTimeout, maxPayload }),
    });
    this.emit("open");
    if (this.protocol === 4) this.#schedulePing();
    else this.#expectPing();
  }

  // ── heartbeat ───────────────────────────────────────────────────────────────

  /** EIO=4: a ping every `pingInterval`, answered within `pingTimeout` (counted from when it is queued). */
  #schedulePing(): void {
    this.#pingDue = this.#server.heartbeats.set(this, "ping");
  }

  /** EIO=3: the client's ping must come within `pingInterval + pingTimeout`. */
  #expectPing(): void {
    this.#pongDue = this.#server.heartbeats.set(this, "expect");
  }

  /** When a heartbeat deadline of this session is due (`Heartbeats`). */
  beatDue(beat: Beat): number | undefined {
    return beat === "ping" ? this.#pingDue : this.#pongDue;
  }

  /** A heartbeat deadline has come: a ping to send, or an answer that did not come. */
  onBeat(beat: Beat): void {
    if (beat !== "ping") {
      this.#pongDue = undefined;
      return this.#onClose("ping timeout");
    }
    this.#pingDue = undefined;
    this.layer?.pinged?.();
    this.#sendPacket({ type: "ping" });
    this.#pongDue = this.#server.heartbeats.set(this, "pong");
  }

  // ── packets in ─────────────────────────────────────────────────────────────

  onPacket(packet: Packet): void {
    if (this.readyState !== "open") return;
    this.emit("packet", packet);
    switch (packet.type) {
      case "ping":
        if (this.protocol === 4) return this.#onError("invalid heartbeat direction");
        this.#expectPing();
        this.#sendPacket({ type: "pong" });
        this.emit("heartbeat");
        return;
      case "pong":
        if (this.protocol === 3) return this.#onError("invalid heartbeat direction");
        // Only the answer to a ping out tells what the client has read.
        if (this.#pongDue !== undefined) this.layer?.ponged?.();
        this.#pongDue = undefined;
        this.#schedulePing();
        this.emit("heartbeat");
        return;
      case "message": {
        const data = packet.data ?? "";
        const broken = this.gate?.inbound(data);
        if (broken !== undefined) return this.#onError("parse error", broken);
        const message = typeof data === "string" ? data : data.slice().buffer;
        this.layer?.data(message);
        this.emit("data", message);
        this.emit("message", message);
        return;
      }
      case "close":
        return this.#onClose("transport close");
      default:
        // open, upgrade and noop mean nothing from a client on an open transport.
        return this.#onError("parse error");
    }
  }

  onTransportError(reason: string, description?: string): void {
    this.#onError(reason, description);
  }

  onTransportClose(): void {
    this.#onClose("transport close");
  }

  onWritable(): void {
    this.flush();
  }

  #onError(reason: string, description?: string): void {
    if (description === PAYLOAD_TOO_LARGE) this.slot?.offend?.();
    this.#onClose(reason === "parse error" ? "parse error" : "transport error", description ?? reason);
  }

  // ── packets out ────────────────────────────────────────────────────────────

  /** Queues a message (socket.io's `conn.write`). */
  write(data: WriteData, _options?: unknown, callback?: () => void): this {
    const packet = toPacketData(data);
    if (this.readyState === "open") this.gate?.outbound(packet);
    this.#sendPacket({ type: "message", data: packet });
    if (callback) queueMicrotask(callback);
    return this;
  }

  send(data: WriteData, options?: unknown, callback?: () => void): this {
    return this.write(data, options, callback);
  }

  #sendPacket(packet: Packet): void {
    if (this.readyState === "closing" || this.readyState === "closed") return;
    this.emit("packetCreate", packet);
    this.#buffer.push(packet);
    this.flush();
  }

  /** Hands the buffer to the transport if it can take it now. */
  flush(): void {
    if (this.readyState === "closed" || !this.transport.writable || this.#buffer.length === 0) return;
    const packets = this.#buffer;
    this.#buffer = [];
    this.transport.send(packets);
    this.emit("drain");
  }

  /** What waits to be sent: the buffer (an estimate of its bytes) plus what the transport holds. */
  get bufferedAmount(): number {
    let bytes = this.transport.bufferedAmount;
    for (const packet of this.#buffer) {
      const data = packet.data;
      bytes += 1 + (data === undefined ? 0 : typeof data === "string" ? data.length : data.byteLength);
    }
    return bytes;
  }

  // ── upgrade ────────────────────────────────────────────────────────────────

  /** A WebSocket came for this polling session: it probes, then takes over. */
  probe(transport: WebSocketTransport): void {
    const polling = this.transport as PollingTransport;
    this.upgrading = true;
    this.#probe = transport;
    const abort = (why: string) => {
      if (this.#probe !== transport) return;
      this.#probe = undefined;
      this.upgrading = false;
      polling.upgrading = false;
      clearTimeout(this.#upgradeTimer);
      transport.owner = undefined;
      transport.close();
      void why;
    };
    this.#upgradeTimer = setTimeout(() => abort("upgrade timeout"), this.#options.upgradeTimeout);
    transport.owner = {
      onPacket: (packet) => {
        if (packet.type === "ping" && packet.data === "probe") {
          transport.send([{ type: "pong", data: "probe" }]);
          this.emit("upgrading", transport);
          // A held poll must return so that the client can send the upgrade: a noop does it.
          polling.upgrading = true;
          if (polling.writable) polling.send([{ type: "noop" }]);
        } else if (packet.type === "upgrade" && this.readyState !== "closed" && this.readyState !== "closing") {
          clearTimeout(this.#upgradeTimer);
          this.#probe = undefined;
          this.upgrading = false;
          this.upgraded = true;
          polling.owner = undefined;
          polling.discard();
          transport.owner = this;
          this.transport = transport;
          if (this.protocol === 3) this.#expectPing();
          this.emit("upgrade", transport);
          this.flush();
        } else {
          abort("unexpected packet during upgrade");
        }
      },
      onTransportError: () => abort("transport error"),
      onTransportClose: () => abort("transport closed"),
      onWritable: () => {},
    };
  }

  // ── closing ────────────────────────────────────────────────────────────────

  /** Closes after what is buffered is sent (socket.io's `conn.close()`): with a WebSocket at once,
   * with polling on the next GET, which carries the close packet too. */
  close(): this {
    if (this.readyState !== "open") return this;
    this.readyState = "closing";
    const last = this.#buffer;
    this.#buffer = [];
    this.transport.close(() => this.#onClose("forced close"), last);
    return this;
  }

  #onClose(reason: string, description?: string): void {
    if (this.readyState === "closed") return;
    this.readyState = "closed";
    this.#pingDue = undefined;
    this.#pongDue = undefined;
    clearTimeout(this.#upgradeTimer);
    if (this.#probe) {
      this.#probe.owner = undefined;
      this.#probe.close();
      this.#probe = undefined;
    }
    this.#buffer = [];
    this.transport.owner = undefined;
    this.transport.abort();
    this.layer?.closed(reason);
    this.emit("close", reason, description);
    this.removeAllListeners();
    this.#server.ended(this);
  }

  /** Ends the session now, with `reason` (the server is shutting down, or gave up on the client). */
  destroy(reason = "forced close"): void {
    this.#onClose(reason);
  }
}
