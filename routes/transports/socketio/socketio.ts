/**
 * `/socket.io/`: Socket.IO clients (4.x, 3.x over Engine.IO 4; 2.x over Engine.IO 3) in roomcast's
 * rooms. routes/eio serves Engine.IO; the official `socket.io` Server, bound to it, speaks Socket.IO
 * (namespaces, packets, acks, binary). Each Socket.IO socket is a hub connection like a `/ws` one,
 * so the same limits, budgets, history and recovery apply, and every kind of client meets in the
 * same rooms. The mapping (docs/PROTOCOL.md, "Socket.IO"):
 *
 * - on connect the socket is in room `lobby` (recovering from `auth.since` if given);
 * - `emit("join", room | {room, since}, ack?)`, `emit("leave", room, ack?)`;
 * - `emit("message", data, ack?)` publishes to `lobby`, `emit("message", {room, data}, ack?)` to
 *   `room`; the ack gets `{id, offset, epoch, room}`; the others receive `("message", data, meta)`
 *   from `lobby` and `("message", {room, data, from, id, offset, epoch, ts})` from other rooms;
 * - any other event is relayed to the other members of the socket's rooms (not stored);
 * - roomcast's own events: `joined`, `member`, `direct`, `broadcast`, `roomcast:error`.
 */
import type { Hono } from "hono";
import { binaryBytes, binaryJson } from "../../../lib/codec.ts";
import { Server } from "socket.io";
import type { Identity } from "../../../lib/auth.ts";
import { connectionId, sessionId } from "../../../lib/ids.ts";
import type { Connection } from "../../../lib/connection.ts";
import { clientName } from "../../../lib/names.ts";
import type { Encoder, Peer } from "../../../lib/peer.ts";
import {
  CloseCode,
  errorFields,
  type Position,
  ProtocolError,
  type ServerFrame,
  type StoredMessage,
  type User,
} from "../../../lib/protocol.ts";
import type { AppContext, AppDeps, AppEnv } from "../../deps.ts";
import { addressOf, identifyToken, vetConnect } from "../identity.ts";
import { Admitted } from "../admitted.ts";
import { type GateOptions, SocketIoGate } from "./gate.ts";
import { EngineServer } from "./eio/server.ts";
import { mountEngine } from "./eio/mount.ts";
import type { EngineSocket } from "./eio/socket.ts";
import { listedOrigin, originAllowed } from "../../trust.ts";
import { type OwnSocket, OwnSocketIo } from "./own.ts";
import { type Parked, RECOVERABLE, type Restored, SessionLog, Sessions } from "./recovery.ts";

/** What the bridge uses of a Socket.IO socket: the official Server's, or routes/transports/socketio/own.ts'. */
interface BridgeSocket {
  readonly id: string;
  readonly conn: unknown;
  readonly connected: boolean;
  readonly handshake: { auth?: Record<string, unknown>; query?: Record<string, unknown> };
  readonly data: Record<string, unknown>;
  emit(event: string, ...args: unknown[]): unknown;
  onAny(listener: (event: string, ...args: unknown[]) => void): unknown;
  on(event: "disconnect", listener: (reason: string) => void): unknown;
  disconnect(close?: boolean): unknown;
  /** With connection state recovery (the own layer): the private session id, and whether this
   * socket is a recovered one. */
  readonly pid?: string | undefined;
  readonly recovered?: boolean;
  /** The own layer's: the recovery log, told of the heartbeat. */
  log?: SessionLog | undefined;
}

/** What mountSocketIo uses of a Socket.IO server. */
interface BridgeServer {
  use(middleware: (socket: BridgeSocket, next: (error?: Error) => void) => void | Promise<void>): unknown;
  on(event: "connection", listener: (socket: BridgeSocket) => void): unknown;
}

export const LOBBY = "lobby";

/** Events a client can't relay: Socket.IO's reserved names (a client that received one would drop
 * its connection) and the ones roomcast sends itself. */
const RESERVED = new Set([
  "connect",
  "connect_error",
  "disconnect",
  "disconnecting",
  "newListener",
  "removeListener",
  "error",
  "message",
  "join",
  "leave",
  "joined",
  "member",
  "direct",
  "broadcast",
  "roomcast:error",
]);

/** Requests waiting for their reply at most, per socket: more are refused. */
const MAX_PENDING_ACKS = 256;

type Ack = (...args: unknown[]) => void;

/** Binary values travel inside roomcast as `{"$binary": "<base64>"}`: messages are JSON everywhere. */
function binaryToJson(value: unknown, depth = 0): unknown {
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) {
    return binaryJson(
      value instanceof ArrayBuffer
        ? new Uint8Array(value)
        : new Uint8Array(value.buffer, value.byteOffset, value.byteLength),
    );
  }
  if (depth > 64 || typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) return value.map((v) => binaryToJson(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = binaryToJson(v, depth + 1);
  return out;
}

/** What an emit's arguments can't be, found before anything is encoded: a number JSON can't hold
 * (`1e400` parses as Infinity, and would be stored as null), an attachment named twice (socket.io
 * puts the same buffer in each place: a packet naming one thousands of times would cost thousands
 * of encodings), or binary values over the frame limit as base64. */
function argsProblem(args: unknown[], maxFrameBytes: number): { code: string; message: string } | undefined {
  const seen = new Set<unknown>();
  let binary = 0;
  const walk = (value: unknown, depth: number): string | undefined => {
    if (typeof value === "number") return Number.isFinite(value) ? undefined : "number";
    if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) {
      if (seen.has(value)) return "repeated";
      seen.add(value);
      binary += Math.ceil(value.byteLength / 3) * 4;
      return binary > maxFrameBytes ? "large" : undefined;
    }
    if (depth > 64 || typeof value !== "object" || value === null) return undefined;
    for (const v of Array.isArray(value) ? value : Object.values(value)) {
      const problem = walk(v, depth + 1);
      if (problem) return problem;
    }
    return undefined;
  };
  switch (walk(args, 0)) {
    case "number":
      return { code: "bad_request", message: "A number is too large for a double (such as 1e400)" };
    case "repeated":
      return { code: "bad_request", message: "An attachment may be named once in a packet" };
    case "large":
      return { code: "too_large", message: `Frame is larger than ${maxFrameBytes} bytes` };
    default:
      return undefined;
  }
}

/** The inverse of `binaryToJson`, for Socket.IO receivers: binary again. */
function jsonToBinary(value: unknown, depth = 0): unknown {
  if (depth > 64 || typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) return value.map((v) => jsonToBinary(v, depth + 1));
  if ("$binary" in value) {
    const bytes = binaryBytes(value);
    if (bytes) return bytes;
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = jsonToBinary(v, depth + 1);
  return out;
}

/** Socket.IO EVENT packets for the default namespace, as text: `2["event",...args]`. */
function eventPacket(event: string, ...args: unknown[]): string {
  return "2" + JSON.stringify([event, ...args]);
}

/** What a roomcast frame is to a Socket.IO client: the event and its arguments, or nothing. */
function eventOf(frame: ServerFrame): [string, ...unknown[]] | undefined {
  switch (frame.type) {
    case "message": {
      const { room, data, from, id, offset, epoch, ts } = frame as StoredMessage;
      return room === LOBBY
        ? ["message", data, { room, from, id, offset, epoch, ts }]
        : ["message", { room, data, from, id, offset, epoch, ts }];
    }
    case "signal":
      return RESERVED.has(frame.event) ? undefined : [frame.event, frame.data];
    case "member":
      return ["member", { room: frame.room, event: frame.event, user: frame.user }];
    case "direct":
      return ["direct", { id: frame.id, from: frame.from, data: frame.data, ts: frame.ts }];
    case "broadcast":
      return ["broadcast", { id: frame.id, data: frame.data, ts: frame.ts }];
    default:
      return undefined;
  }
}

/** Each frame's event arguments, made once for all its receivers: a room's frame is one object for
 * every socket in it, and with recovery each socket's log keeps the arguments (never changed once
 * made), so the room's sockets share them instead of holding a copy each. */
const events = new WeakMap<ServerFrame, [string, ...unknown[]] | undefined>();

function sharedEventOf(frame: ServerFrame): [string, ...unknown[]] | undefined {
  if (events.has(frame)) return events.get(frame);
  const event = eventOf(frame);
  events.set(frame, event);
  return event;
}

/** Frames that answer a request (matched to its ack callback by `ref`) or are this socket's alone. */
const REPLIES = new Set(["joined", "left", "ack", "error", "history", "presence", "pong"]);

/** Frames whose event carries binary (as `$binary`): socket.io sends those itself, framing the
 * attachments. Marked when encoded, once per frame whatever its receivers. */
const withBinary = new WeakSet<ServerFrame>();

/** Encodes a roomcast frame once for every Socket.IO receiver: the EVENT packet's text. A reply
 * (`REPLIES`) is each socket's own: `SocketIoPeer.send` hands it to the ack that waits for it, or
 * emits it, and its text (the event's name alone) is never sent. */
export const socketIoEncoder: Encoder = {
  encode(frame) {
    const event = REPLIES.has(frame.type) ? [frame.type] as [string] : sharedEventOf(frame);
    if (!event) return undefined;
    const text = eventPacket(...event);
    if (text.includes('"$binary"')) withBinary.add(frame);
    return text;
  },
};

class SocketIoPeer implements Peer {
  readonly id = connectionId();
  readonly encoder = socketIoEncoder;
  readonly liveness = "transport" as const;
  /** Requests waiting for their reply, made on the first (an idle socket holds none). */
  #acks: Map<string, Ack> | undefined;
  #next = 0;
  /** Set when the server closes it as it goes away: its session is kept for recovery. */
  goingAway = false;

  /** `log`: with connection state recovery, the offsets its events end with (recovery.ts). */
  constructor(
    readonly socket: BridgeSocket,
    readonly user: Identity["user"],
    readonly log: SessionLog | undefined,
  ) {}

  get #conn(): EngineSocket {
    return this.socket.conn as unknown as EngineSocket;
  }

  get queuedBytes(): number {
    return this.#conn.bufferedAmount;
  }

  /** A ref for a request whose reply goes to `ack`, or undefined when too many wait. */
  expect(ack: Ack | undefined): string | undefined | false {
    if (!ack) return undefined;
    this.#acks ??= new Map();
    if (this.#acks.size >= MAX_PENDING_ACKS) return false;
    const ref = `s${++this.#next}`;
    this.#acks.set(ref, ack);
    return ref;
  }

  send(text: string, frame: ServerFrame): void {
    if (!this.socket.connected) return;
    if (REPLIES.has(frame.type)) return this.#reply(frame);
    const log = this.log;
    if (withBinary.has(frame)) {
      const event = sharedEventOf(frame);
      if (!event) return;
      const args = jsonToBinary(event) as [string, ...unknown[]];
      if (log) args.push(log.note(frame.type === "message" ? frame : undefined, () => event, text.length));
      this.socket.emit(...args);
      return;
    }
    // The packet is ready: straight to the engine, as socket.io's own broadcasts do; with recovery,
    // the packet's last argument is its offset.
    if (!log) return void this.#conn.write(text);
    const offset = log.note(
      frame.type === "message" ? frame : undefined,
      () => sharedEventOf(frame) ?? [],
      text.length,
    );
    this.#conn.write(`${text.slice(0, -1)},"${offset}"]`);
  }

  /** Events of a recovered session that are not messages, as they were written. */
  replay(args: unknown[]): void {
    if (!this.socket.connected || !this.log) return;
    const offset = this.log.note(undefined, () => args, JSON.stringify(args).length);
    this.socket.emit(...(jsonToBinary(args) as [string, ...unknown[]]), offset);
  }

  /** An event that answers nothing and is not replayed (an unasked `joined`, an error). */
  #emit(event: string, value: unknown): void {
    if (this.log) this.socket.emit(event, value, this.log.stamp());
    else this.socket.emit(event, value);
  }

  #reply(frame: ServerFrame): void {
    const ref = "ref" in frame ? frame.ref : undefined;
    const ack = typeof ref === "string" ? this.#acks?.get(ref) : undefined;
    if (ack) this.#acks?.delete(ref as string);
    switch (frame.type) {
      case "joined": {
        const { room, epoch, offset, recovered, members } = frame;
        const value = { room, epoch, offset, recovered, members };
        return ack ? ack(value) : this.#emit("joined", value);
      }
      case "left":
        return ack?.({ room: frame.room });
      case "ack": {
        const { room, id, offset, epoch } = frame;
        return ack?.({ room, id, offset, epoch });
      }
      case "error": {
        const error = errorFields(frame.code, frame.message, frame.backendCode);
        return ack ? ack({ error }) : this.#emit("roomcast:error", error);
      }
      default:
        return;
    }
  }

  close(code: number, reason: string): void {
    if (!this.socket.connected) return;
    if (code === CloseCode.goingAway) this.goingAway = true;
    if (code !== CloseCode.normal) this.#emit("roomcast:error", { code: "closed", message: reason });
    this.socket.disconnect(true);
  }
}

/** A handshake's headers (an object, as socket.io keeps them) as `Headers`. */
function handshakeHeaders(headers: unknown): Headers {
  const out = new Headers();
  if (typeof headers !== "object" || headers === null) return out;
  for (const [name, value] of Object.entries(headers)) {
    try {
      if (typeof value === "string") out.set(name, value);
    } catch {
      // A name Headers refuses: not one passed on anyway.
    }
  }
  return out;
}

function text(value: unknown): string | undefined {
  return typeof value === "string" && value.length > 0 ? value : undefined;
}

/** `{epoch, offset}` or `"epoch:offset"`, or undefined. */
function position(value: unknown): Position | undefined {
  if (typeof value === "string") {
    const at = value.lastIndexOf(":");
    const offset = Number(value.slice(at + 1));
    return at > 0 && Number.isSafeInteger(offset) && offset >= 0 ? { epoch: value.slice(0, at), offset } : undefined;
  }
  if (typeof value === "object" && value !== null && "epoch" in value && "offset" in value) {
    const { epoch, offset } = value as { epoch: unknown; offset: unknown };
    if (typeof epoch === "string" && typeof offset === "number") return { epoch, offset };
  }
  return undefined;
}

/** Rooms `auth.join` may name at most. */
export const MAX_INITIAL_JOINS = 32;

/** A join as a Socket.IO client names one (`emit("join", …)`, an item of `auth.join`): a room, or
 * `{room, since}`; the room is checked where every join is. */
function joinOf(target: unknown): { type: "join"; room: unknown; since?: Position } {
  if (typeof target !== "object" || target === null) return { type: "join", room: target };
  const { room, since } = target as { room?: unknown; since?: unknown };
  const from = position(since);
  return from ? { type: "join", room, since: from } : { type: "join", room };
}

/** `auth.join`: the rooms a socket joins on connect instead of the lobby, each a room name or
 * `{room, since}`, one or an array of them (`[]`: none). Each is then joined as an `emit("join")`
 * would be (names, rights and limits checked there); a malformed list is refused whole. */
function initialJoins(value: unknown): ReturnType<typeof joinOf>[] | ProtocolError {
  const list = Array.isArray(value) ? value : [value];
  if (list.length > MAX_INITIAL_JOINS) {
    return new ProtocolError("bad_request", `auth.join names ${MAX_INITIAL_JOINS} rooms at most: it joined none`);
  }
  const named = (item: unknown) =>
    typeof item === "string" ||
    (typeof item === "object" && item !== null && typeof (item as { room?: unknown }).room === "string");
  if (!list.every(named)) {
    return new ProtocolError("bad_request", "auth.join takes room names or {room, since}: it joined none");
  }
  return list.map(joinOf);
}

/** One Socket.IO socket in the hub: what it emits becomes frames, checked as `/ws` frames are. */
function bridge(deps: AppDeps, socket: BridgeSocket, identity: Identity, sessions: Sessions | undefined): void {
  const { hub } = deps;
  const restored = socket.data.restored as Restored | undefined;
  const pid = sessions && socket.pid;
  const log = !pid ? undefined : restored ? new SessionLog(restored.seq, restored.offset) : new SessionLog();
  // The own layer tells the log of the heartbeat (recovery runs only there).
  if (log && "log" in socket) socket.log = log;
  const peer = new SocketIoPeer(socket, identity.user, log);
  const slot = (socket.conn as EngineSocket).slot;
  const connection = slot instanceof Admitted
    ? slot.connect(peer, identity, "socketio")
    : new ProtocolError("internal", "A Socket.IO session without an admission slot");
  if (connection instanceof ProtocolError) {
    socket.emit("roomcast:error", { code: connection.code, message: connection.message });
    return void socket.disconnect(true);
  }
  const submit = (frame: Record<string, unknown>, ack: Ack | undefined) => {
    const ref = peer.expect(ack);
    if (ref === false) {
      return ack?.({ error: { code: "rate_limited", message: "Too many requests waiting for their reply" } });
    }
    // socket.io parsed it (the gate checked its JSON first): its JSON is made for the size check
    // only. The ref goes along: a frame refused as too large still answers its ack.
    const value = ref === undefined ? frame : { ...frame, ref };
    hub.frames.receiveValue(connection, value, JSON.stringify(value), ref);
  };
  if (restored) {
    // What it missed, in order, then its rooms from there: nothing twice, nothing live before.
    for (const missed of restored.replay) {
      if (Array.isArray(missed)) peer.replay(missed);
      else peer.send(socketIoEncoder.encode(missed) as string, missed);
    }
    for (const { room, since } of restored.rooms) {
      submit({ type: "join", room, since }, (answer) => {
        const error = (answer as { error?: unknown } | undefined)?.error;
        if (error) socket.emit("roomcast:error", error);
      });
    }
  } else {
    const auth = socket.handshake.auth;
    const chosen = auth && "join" in auth ? initialJoins(auth.join) : undefined;
    if (chosen instanceof ProtocolError) {
      socket.emit("roomcast:error", { code: chosen.code, message: chosen.message });
    } else if (chosen) {
      // The rooms the client chose instead of the lobby: each join's answer comes as `joined`.
      for (const join of chosen) submit(join, undefined);
    } else {
      const since = position(auth?.since ?? socket.handshake.query?.since);
      submit(since ? { type: "join", room: LOBBY, since } : { type: "join", room: LOBBY }, undefined);
    }
  }
  if (pid) sessions.opened(pid, identity.user.id, socket.conn as EngineSocket);

  const { maxFrameBytes } = deps.config.limits;
  socket.onAny((event: string, ...args: unknown[]) => {
    const ack = typeof args.at(-1) === "function" ? args.pop() as Ack : undefined;
    const error = argsProblem(args, maxFrameBytes);
    if (error) return ack ? ack({ error }) : void socket.emit("roomcast:error", error);
    const values = binaryToJson(args) as unknown[];
    switch (event) {
      case "join":
        return submit(joinOf(values[0]), ack);
      case "leave":
        return submit({ type: "leave", room: values[0] }, ack);
      case "message": {
        const first = values[0] as { room?: unknown; data?: unknown } | null | undefined;
        const addressed = typeof first === "object" && first !== null && !Array.isArray(first) &&
          typeof first.room === "string" && "data" in first;
        return addressed
          ? submit({ type: "publish", room: first.room, data: first.data }, ack)
          : submit({ type: "publish", room: LOBBY, data: first ?? null }, ack);
      }
      default: {
        if (RESERVED.has(event)) {
          const error = { code: "bad_request", message: `Event ${event} is roomcast's own: it can't be relayed` };
          return ack ? ack({ error }) : void socket.emit("roomcast:error", error);
        }
        // Relayed to every room the socket is in, not stored; the ack says it went.
        const data = values.length === 1 ? values[0] : values;
        for (const room of connection.rooms.keys()) submit({ type: "signal", room, event, data }, undefined);
        return ack?.();
      }
    }
  });
  socket.on("disconnect", (reason) => {
    if (pid) {
      const keep = log && (RECOVERABLE.has(reason) || peer.goingAway);
      sessions.closed(pid, keep ? parkedSession(socket.id, identity.user, connection, log, restored) : undefined);
    }
    hub.disconnect(connection);
  });
}

/** What a dropped socket leaves for its client to come back to (recovery.ts' `Parked`). */
function parkedSession(
  sid: string,
  user: User,
  connection: Connection,
  log: SessionLog,
  restored: Restored | undefined,
): Omit<Parked, "v" | "at"> {
  // Each room from the last message written to the socket there; else from where a restored join
  // began, or the hub's position once its join is done (a join still under way has none yet).
  const rooms: Parked["rooms"] = [];
  for (const [room, subscription] of connection.rooms) {
    const position = log.writtenIn(room) ?? restored?.rooms.find((r) => r.room === room)?.since ??
      (subscription.epoch === "" ? undefined : subscription);
    if (position) rooms.push([room, position.epoch, position.offset]);
  }
  const entries: Parked["log"] = log.entries.map((entry) =>
    "message" in entry
      ? [entry.seq, entry.message.room, entry.message.epoch, entry.message.offset]
      : [entry.seq, entry.args]
  );
  return { sid, user, seq: log.seq, floor: log.floor, rooms, log: entries };
}

/** CORS for polling, on `ROOMCAST_ORIGINS`' rules, with credentials (Socket.IO's `withCredentials`). */
function corsHeaders(deps: AppDeps, request: Request): Headers {
  const headers = new Headers({ vary: "Origin" });
  const origin = request.headers.get("origin");
  if (listedOrigin(deps.config.origins, origin)) {
    headers.set("access-control-allow-origin", origin);
    headers.set("access-control-allow-credentials", "true");
    if (request.method === "OPTIONS") {
      headers.set("access-control-allow-methods", "GET, POST");
      const asked = request.headers.get("access-control-request-headers");
      if (asked) headers.set("access-control-allow-headers", asked.slice(0, 512));
      headers.set("access-control-max-age", "600");
    }
  }
  return headers;
}

export interface SocketIoService {
  engine: EngineServer;
  close(): void;
}

export function mountSocketIo(app: Hono<AppEnv>, deps: AppDeps): SocketIoService {
  const { config } = deps;
  const { pingIntervalMs, pingTimeoutMs, maxPayload, eio3 } = config.socketIo;
  const limits = config.limits;
  // One for every session's gate: a CONNECT after a session's first spends its slot's connect rate.
  const gating: GateOptions<EngineSocket> = {
    limits,
    maxPayload,
    again: ({ slot }) => slot instanceof Admitted && slot.again(),
  };
  const engine = new EngineServer({
    protocols: eio3 ? [3, 4] : [4],
    pingInterval: pingIntervalMs,
    pingTimeout: pingTimeoutMs,
    upgradeTimeout: 10_000,
    maxPayload,
    bodyTimeoutMs: config.bodyTimeoutMs,
    headers: (request) => corsHeaders(deps, request),
    admit: (request, { remoteAddress: address, context }) => {
      const c = context as AppContext | undefined;
      const refuse = (status: number, code: number, message: string, retryAfterS?: number) => {
        const headers = corsHeaders(deps, request);
        headers.set("content-type", "application/json");
        if (retryAfterS) headers.set("retry-after", String(retryAfterS));
        return new Response(JSON.stringify({ code, message }), { status, headers });
      };
      if (deps.state.draining) return refuse(503, 4, "Server is shutting down", 5);
      if (c && !originAllowed(c, config)) return refuse(403, 4, "Origin not allowed");
      const admitted = Admitted.take(deps, address);
      if (admitted instanceof Admitted) return admitted;
      return refuse(admitted.code === "unavailable" ? 503 : 429, 4, admitted.message, admitted.retryAfterS);
    },
    gate: (session) => new SocketIoGate(gating, session),
    routing: deps.sessions,
  });
  deps.metrics.gauge(
    "roomcast_socketio_sessions",
    "Engine.IO sessions open (Socket.IO clients)",
    () => engine.clientsCount,
  );
  let io: BridgeServer;
  if (config.socketIo.layer === "own") {
    io = new OwnSocketIo(engine, { connectTimeoutMs: config.socketIo.connectTimeoutMs }) as unknown as BridgeServer;
  } else {
    const server = new Server({ serveClient: false, connectTimeout: config.socketIo.connectTimeoutMs });
    server.bind(engine);
    io = server as unknown as BridgeServer;
  }
  io.use(async (socket, next) => {
    const conn = socket.conn as unknown as EngineSocket;
    const auth = (socket.handshake.auth ?? {}) as Record<string, unknown>;
    const query = (socket.handshake.query ?? {}) as Record<string, unknown>;
    const name = clientName(text(auth.name) ?? text(query.name) ?? "");
    try {
      const token = text(auth.token) ?? text(query.token);
      const identity = await identifyToken(deps, token, name, conn.remoteAddress, "connect with auth: {token}");
      socket.data.identity = await vetConnect(deps, identity, {
        client: socket.id,
        transport: "socketio",
        headers: handshakeHeaders(conn.request?.headers),
        address: conn.remoteAddress,
      });
      next();
    } catch (error) {
      if (!(error instanceof ProtocolError)) return next(error as Error);
      const refused = new Error(error.message) as Error & { data?: unknown };
      refused.data = errorFields(error.code, error.message, error.backendCode);
      next(refused);
    }
  });
  // Connection state recovery: the own layer lets a middleware give a socket its session.
  const sessions = config.socketIo.recoveryMs > 0 && config.socketIo.layer === "own"
    ? new Sessions(deps.hub, {
      ttlMs: config.socketIo.recoveryMs,
      now: () => deps.clock.now(),
      authOn: config.authSecret !== undefined,
    })
    : undefined;
  if (sessions) {
    io.use(async (bridged, next) => {
      const socket = bridged as unknown as OwnSocket;
      if (socket.conn.protocol !== 4) return next();
      const identity = socket.data.identity as Identity;
      const { pid, offset } = socket.handshake.auth;
      const restored = typeof pid === "string" && typeof offset === "string"
        ? await sessions.restore(pid, offset, identity).catch((error) => {
          console.error("roomcast: a Socket.IO session could not be restored:", String(error));
          return undefined;
        })
        : undefined;
      if (restored) {
        socket.id = restored.sid;
        socket.pid = pid as string;
        socket.recovered = true;
        socket.data.restored = restored;
        // A guest is the same guest again; a token's user is the token's (the same `sub`).
        if (config.authSecret === undefined) socket.data.identity = { ...identity, user: restored.user };
      } else socket.pid = sessionId();
      next();
    });
  }
  io.on("connection", (socket) => {
    try {
      bridge(deps, socket, socket.data.identity as Identity, sessions);
    } catch (error) {
      console.error("roomcast: a Socket.IO connection failed to start:", error);
      socket.disconnect(true);
    }
  });
  mountEngine(app, "/socket.io/", engine, (c: AppContext) => addressOf(c, deps));
  return { engine, close: () => engine.close() };
}
