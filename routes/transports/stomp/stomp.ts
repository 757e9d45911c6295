/**
 * `GET /stomp`: STOMP 1.2 (1.1 and 1.0 too) over a WebSocket, for `@stomp/stompjs` and the other
 * STOMP clients of Spring's and RabbitMQ's WebSocket messaging, in roomcast's rooms: the destination
 * `/topic/<room>` is the room. The socket is accepted like any other (websocket.ts); a token comes
 * as `?token=` or in CONNECT's `passcode`, then the connection takes it (`Hub.grant`). SEND is a
 * stored publish (through the JSON protocol's frames, so limits and budgets are the hub's); MESSAGE
 * carries the room position (`offset`, `epoch`); SUBSCRIBE with `since` recovers what was missed.
 * Errors are ERROR frames, then the close, as the spec says.
 */
import type { Hono } from "hono";
import type { Identity } from "../../../lib/auth.ts";
import { binaryBytes, binaryJson, jsonValue } from "../../../lib/codec.ts";
import type { Connection } from "../../../lib/connection.ts";
import type { Encoder, Peer } from "../../../lib/peer.ts";
import {
  CloseCode,
  isRoomName,
  type Position,
  ProtocolError,
  type ServerFrame,
  type StoredMessage,
  type User,
} from "../../../lib/protocol.ts";
import type { AppContext, AppDeps, AppEnv } from "../../deps.ts";
import { awaitsToken, identifyOrAwait, takeToken } from "../identity.ts";
import { acceptSocket, type SocketKind } from "../websocket.ts";
import { SocketPeer } from "../ws/socket_peer.ts";
import { PendingRefs } from "../pending.ts";
import { header, readFrames, StompError, type StompFrame, writeFrame } from "./frame.ts";

const VERSIONS = ["1.2", "1.1", "1.0"];
const TOPIC = "/topic/";
/** Open transactions per connection, and SENDs per transaction, at most. */
const MAX_TRANSACTIONS = 8;
const MAX_TRANSACTION_SENDS = 100;
const UTF8 = new TextDecoder("utf-8", { fatal: true });

/** A reference the hub echoes on the frame answering a request: what to send back then. */
type Pending = { kind: "subscribe"; id: string; receipt?: string } | { kind: "send" | "unsubscribe"; receipt?: string };

/** The data a SEND's body stores: JSON where it says so (within the JSON limits: else what is wrong
 * with it), text, else the bytes as `{"$binary"}`. */
function storedBody(frame: StompFrame, deps: AppDeps): { data: unknown } | string {
  const type = header(frame, "content-type") ?? "";
  let text: string | undefined;
  try {
    text = UTF8.decode(frame.body);
  } catch {
    text = undefined;
  }
  if (/^application\/(?:[\w.+-]+\+)?json\b/.test(type)) {
    if (text === undefined) return "A JSON body must be UTF-8";
    const read = jsonValue(text, deps.config.limits, "Body");
    return typeof read === "string" ? read : { data: read.value };
  }
  if (text !== undefined && (type === "" || type.startsWith("text/"))) return { data: text };
  return { data: binaryJson(frame.body) };
}

/** A message's data as a STOMP body and its content-type. */
function bodyOf(data: unknown): { body: string | Uint8Array; type: string } {
  if (typeof data === "string") return { body: data, type: "text/plain;charset=utf-8" };
  const bytes = binaryBytes(data);
  if (bytes) return { body: bytes, type: "application/octet-stream" };
  return { body: JSON.stringify(data) ?? "null", type: "application/json" };
}

/** A MESSAGE's headers for subscription `id`: the room position in `offset` and `epoch`. */
function messageHeaders(id: string, message: StoredMessage, type: string): [string, string][] {
  return [
    ["subscription", id],
    ["message-id", message.id],
    ["destination", `${TOPIC}${message.room}`],
    ["content-type", type],
    ["offset", String(message.offset)],
    ["epoch", message.epoch],
  ];
}

class StompPeer extends SocketPeer {
  connection: Connection | undefined;
  connected = false;
  /** The client sends heart-beats: the hub's liveness applies (else WebSocket pings keep it). */
  get heartbeats(): boolean {
    return this.liveness === "app";
  }

  set heartbeats(on: boolean) {
    this.liveness = on ? "app" : "transport";
  }
  /** Subscription id → room, and room → subscription id. */
  readonly subscriptions = new Map<string, string>();
  readonly subscribed = new Map<string, string>();
  readonly transactions = new Map<string, StompFrame[]>();
  readonly #socket: WebSocket;

  constructor(socket: WebSocket, id: string, user: User) {
    const encoder: Encoder = { encode: (frame) => this.encode(frame) };
    super(socket, id, user, encoder, "app");
    this.#socket = socket;
  }

  become(user: User): void {
    this.user = user;
  }

  /** Requests waiting for the hub's answer (their RECEIPTs). */
  readonly pending = new PendingRefs<Pending>("st");

  encode(frame: ServerFrame): string | undefined {
    switch (frame.type) {
      case "message": {
        const id = this.subscribed.get(frame.room);
        if (id === undefined) return undefined;
        const { body, type } = bodyOf(frame.data);
        if (typeof body !== "string") return ""; // sent as bytes by `send`
        return writeFrame("MESSAGE", messageHeaders(id, frame, type), body) as string;
      }
      case "ping":
        return this.heartbeats ? "\n" : undefined;
      case "joined": {
        const pending = this.pending.take(frame.ref);
        if (pending?.kind !== "subscribe" || pending.receipt === undefined) return undefined;
        return writeFrame("RECEIPT", [
          ["receipt-id", pending.receipt],
          ["recovered", String(frame.recovered)],
          ["epoch", frame.epoch],
          ["offset", String(frame.offset)],
        ]) as string;
      }
      case "ack":
      case "left": {
        const pending = this.pending.take(frame.ref);
        if (pending?.receipt === undefined) return undefined;
        return writeFrame("RECEIPT", [["receipt-id", pending.receipt]]) as string;
      }
      case "error": {
        const pending = this.pending.take(frame.ref);
        const headers: [string, string][] = [["message", frame.message.slice(0, 200)], ["code", frame.code]];
        if (frame.backendCode !== undefined) headers.push(["backend-code", String(frame.backendCode)]);
        if (pending?.receipt !== undefined) headers.push(["receipt-id", pending.receipt]);
        return writeFrame("ERROR", headers, frame.message) as string;
      }
      default:
        return undefined;
    }
  }

  override send(text: string, frame?: ServerFrame): void {
    if (frame?.type === "message" && text === "") {
      const id = this.subscribed.get(frame.room);
      const { body, type } = bodyOf(frame.data);
      if (id === undefined || typeof body === "string") return;
      const bytes = writeFrame("MESSAGE", messageHeaders(id, frame, type), body) as Uint8Array;
      if (this.#socket.readyState === WebSocket.OPEN) this.#socket.send(bytes);
      return;
    }
    super.send(text);
    // An ERROR ends the connection, as the spec says.
    if (frame?.type === "error") this.connection?.close(CloseCode.policy, "STOMP error", "stomp_error");
  }

  /** Sends a frame of the transport's own (CONNECTED, RECEIPT, ERROR). */
  reply(command: string, headers: [string, string][], body = ""): void {
    super.send(writeFrame(command, headers, body) as string);
  }
}

/** What a STOMP socket is to the transport seam (websocket.ts). */
class StompKind implements SocketKind {
  readonly transport = "stomp";
  constructor(readonly deps: AppDeps) {}

  /** `?token=` when given; otherwise, with auth on, the token is awaited in CONNECT's passcode (a
   * guest that may join nothing until then). */
  identify(c: AppContext, deps: AppDeps, name: string | undefined, address: string): Promise<Identity> {
    return identifyOrAwait(c, deps, name, address);
  }

  /** A refused client gets an ERROR frame saying why, then the close. */
  refuse(socket: WebSocket, error: ProtocolError, code: number): void {
    const headers: [string, string][] = [["message", error.message.slice(0, 200)], ["code", error.code]];
    if (error.backendCode !== undefined) headers.push(["backend-code", String(error.backendCode)]);
    socket.send(writeFrame("ERROR", headers, error.message));
    socket.close(code, error.message.slice(0, 120));
  }

  protocol(offered: string[]): string | undefined {
    return ["v12.stomp", "v11.stomp", "v10.stomp"].find((p) => offered.includes(p));
  }

  peer(socket: WebSocket, id: string, user: User): Peer {
    return new StompPeer(socket, id, user);
  }

  opened(connection: Connection): void {
    (connection.peer as StompPeer).connection = connection;
  }

  text(connection: Connection, text: string): void {
    if (!this.deps.hub.frames.inbound(connection, text)) return;
    this.#frames(connection, new TextEncoder().encode(text));
  }

  binary(connection: Connection, bytes: Uint8Array): void {
    if (!this.deps.hub.frames.inbound(connection, bytes)) return;
    this.#frames(connection, bytes);
  }

  #frames(connection: Connection, bytes: Uint8Array): void {
    const peer = connection.peer as StompPeer;
    const frames = readFrames(bytes);
    if (frames instanceof StompError) return this.#fail(connection, frames.message, frames.receipt);
    for (const frame of frames) {
      if (connection.closed) return;
      this.#frame(connection, peer, frame);
    }
  }

  #fail(connection: Connection, message: string, receipt?: string): void {
    const peer = connection.peer as StompPeer;
    const headers: [string, string][] = [["message", message.slice(0, 200)]];
    if (receipt !== undefined) headers.push(["receipt-id", receipt]);
    peer.reply("ERROR", headers, message);
    this.deps.metrics.errors.incLabel("bad_request");
    connection.close(CloseCode.policy, "STOMP error", "stomp_error");
  }

  #frame(connection: Connection, peer: StompPeer, frame: StompFrame): void {
    const receipt = header(frame, "receipt");
    if (frame.command === "CONNECT" || frame.command === "STOMP") return void this.#connect(connection, peer, frame);
    if (!peer.connected) return this.#fail(connection, "CONNECT first");
    switch (frame.command) {
      case "SUBSCRIBE":
        return void this.#subscribe(connection, peer, frame, receipt);
      case "UNSUBSCRIBE": {
        const id = header(frame, "id");
        const room = id === undefined ? undefined : peer.subscriptions.get(id);
        if (id === undefined || room === undefined) {
          return this.#fail(connection, "No subscription with that id", receipt);
        }
        peer.subscriptions.delete(id);
        peer.subscribed.delete(room);
        return this.deps.hub.frames.submit(connection, {
          type: "leave",
          room,
          ref: peer.pending.expect(receipt === undefined ? { kind: "unsubscribe" } : { kind: "unsubscribe", receipt }),
        });
      }
      case "SEND":
        return this.#send(connection, peer, frame, receipt);
      case "ACK":
      case "NACK":
        // Messages are not redelivered: an acknowledgement changes nothing.
        return this.#receipt(peer, receipt);
      case "BEGIN":
      case "COMMIT":
      case "ABORT":
        return this.#transaction(connection, peer, frame, receipt);
      case "DISCONNECT":
        this.#receipt(peer, receipt);
        return connection.close(CloseCode.normal, "Disconnected", "disconnect");
    }
  }

  #receipt(peer: StompPeer, receipt: string | undefined): void {
    if (receipt !== undefined) peer.reply("RECEIPT", [["receipt-id", receipt]]);
  }

  async #connect(connection: Connection, peer: StompPeer, frame: StompFrame): Promise<void> {
    if (peer.connected) return this.#fail(connection, "Already connected");
    const offered = (header(frame, "accept-version") ?? "1.0").split(",").map((v) => v.trim());
    const version = VERSIONS.find((v) => offered.includes(v));
    if (!version) return this.#fail(connection, `Supported versions: ${VERSIONS.join(",")}`);
    const { deps } = this;
    if (awaitsToken(connection.peer.user)) {
      try {
        await takeToken(deps, connection, header(frame, "passcode"), "send the JWT as CONNECT's passcode");
        if (connection.closed) return;
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        return this.#fail(connection, error.message);
      }
    }
    // Heart-beats: what the client can send (cx) and wants (cy); the server's interval is its heartbeat.
    const [cx = 0, cy = 0] = (header(frame, "heart-beat") ?? "0,0").split(",").map((n) => Number(n) || 0);
    const beat = deps.config.heartbeatMs;
    peer.heartbeats = cx > 0;
    peer.connected = true;
    peer.reply("CONNECTED", [
      ["version", version],
      ["heart-beat", cx > 0 ? `${beat},${Math.max(cx, beat)}` : `${cy > 0 ? beat : 0},0`],
      ["server", "roomcast"],
      ["session", connection.id],
      ["user-name", connection.peer.user.id],
    ]);
  }

  async #subscribe(connection: Connection, peer: StompPeer, frame: StompFrame, receipt: string | undefined) {
    const id = header(frame, "id");
    const destination = header(frame, "destination") ?? "";
    const room = destination.startsWith(TOPIC) ? destination.slice(TOPIC.length) : undefined;
    if (id === undefined) return this.#fail(connection, "SUBSCRIBE needs an id", receipt);
    if (room === undefined || !isRoomName(room)) {
      return this.#fail(
        connection,
        "Destinations are /topic/<room> (no /queue/): rooms of 1–128 A-Z a-z 0-9 _ . : @ = , ; -",
        receipt,
      );
    }
    if (peer.subscriptions.has(id)) return this.#fail(connection, `Subscription ${id} exists already`, receipt);
    if (peer.subscribed.has(room)) return this.#fail(connection, "One subscription per destination", receipt);
    let since: Position | undefined;
    const given = header(frame, "since");
    if (given !== undefined) {
      const match = /^(?:([A-Za-z0-9_-]{1,64}):)?(\d{1,15})$/.exec(given);
      if (!match) return this.#fail(connection, "since is epoch:offset or an offset", receipt);
      const offset = Number(match[2]);
      const epoch = match[1] ?? (await this.deps.hub.history(room, { limit: 1 }).catch(() => undefined))?.epoch;
      if (connection.closed) return;
      if (epoch !== undefined) since = { epoch, offset };
    }
    peer.subscriptions.set(id, room);
    peer.subscribed.set(room, id);
    const pending: Pending = receipt === undefined ? { kind: "subscribe", id } : { kind: "subscribe", id, receipt };
    this.deps.hub.frames.submit(connection, {
      type: "join",
      room,
      ...(since ? { since } : {}),
      ref: peer.pending.expect(pending),
    });
  }

  #send(connection: Connection, peer: StompPeer, frame: StompFrame, receipt: string | undefined): void {
    const destination = header(frame, "destination") ?? "";
    const room = destination.startsWith(TOPIC) ? destination.slice(TOPIC.length) : undefined;
    if (room === undefined || !isRoomName(room)) {
      return this.#fail(connection, "Destinations are /topic/<room>", receipt);
    }
    const transaction = header(frame, "transaction");
    if (transaction !== undefined) {
      const sends = peer.transactions.get(transaction);
      if (!sends) return this.#fail(connection, `No transaction ${transaction}`, receipt);
      if (sends.length >= MAX_TRANSACTION_SENDS) {
        return this.#fail(connection, `A transaction holds ${MAX_TRANSACTION_SENDS} SENDs`, receipt);
      }
      sends.push(frame);
      return this.#receipt(peer, receipt);
    }
    this.#publish(connection, peer, frame, room, receipt);
  }

  #publish(
    connection: Connection,
    peer: StompPeer,
    frame: StompFrame,
    room: string,
    receipt: string | undefined,
  ): void {
    const body = storedBody(frame, this.deps);
    if (typeof body === "string") return this.#fail(connection, body, receipt);
    const { hub } = this.deps;
    if (!connection.mayJoin(room)) return this.#fail(connection, `Not allowed to publish to room ${room}`, receipt);
    const ref = peer.pending.expect(receipt === undefined ? { kind: "send" } : { kind: "send", receipt });
    if (peer.subscribed.has(room)) {
      return hub.frames.submit(connection, { type: "publish", room, data: body.data, ref });
    }
    // Not subscribed: stored as a backend's publish would be, after the same limits; the receipt
    // once it is stored.
    if (!hub.frames.allowPublish(connection, ref)) return;
    const queued = connection.serially(async () => {
      try {
        await hub.publishAs(room, body.data, connection.peer.user);
        this.#receipt(peer, receipt);
      } catch {
        if (!connection.closed) this.#fail(connection, "Message not stored: try again", receipt);
      }
    });
    if (!queued) this.#fail(connection, "Too many frames waiting to be handled", receipt);
  }

  #transaction(connection: Connection, peer: StompPeer, frame: StompFrame, receipt: string | undefined): void {
    const id = header(frame, "transaction");
    if (id === undefined) return this.#fail(connection, `${frame.command} needs a transaction header`, receipt);
    const sends = peer.transactions.get(id);
    if (frame.command === "BEGIN") {
      if (sends) return this.#fail(connection, `Transaction ${id} is open already`, receipt);
      if (peer.transactions.size >= MAX_TRANSACTIONS) {
        return this.#fail(connection, `${MAX_TRANSACTIONS} transactions at most`, receipt);
      }
      peer.transactions.set(id, []);
      return this.#receipt(peer, receipt);
    }
    if (!sends) return this.#fail(connection, `No transaction ${id}`, receipt);
    peer.transactions.delete(id);
    if (frame.command === "COMMIT") {
      for (const send of sends) {
        const room = (header(send, "destination") ?? "").slice(TOPIC.length);
        this.#publish(connection, peer, send, room, undefined);
        if (connection.closed) return;
      }
    }
    this.#receipt(peer, receipt);
  }
}

export function mountStomp(app: Hono<AppEnv>, deps: AppDeps): void {
  const kind = new StompKind(deps);
  app.get("/stomp", (c) => acceptSocket(c, deps, kind));
}
