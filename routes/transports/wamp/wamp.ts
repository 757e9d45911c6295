/**
 * `GET /wamp`: WAMP v2 Basic Profile (`wamp.2.json`) for autobahn, wampy and other WAMP clients,
 * in roomcast's rooms: a topic URI is a room. The socket is accepted like any other (websocket.ts);
 * with auth on, the JWT comes as `?token=` or as the WAMP-Ticket `ticket`, then the connection takes
 * it (`Hub.grant`). PUBLISH is a stored publish (the hub's frames: limits and budgets as `/ws`);
 * EVENT carries the room position in its details. RPC (REGISTER, CALL, INVOCATION, YIELD) is routed
 * between clients on any node: a procedure is held once across nodes through the presence
 * (`Hub.claim`, by `node|connection|registration`), and calls, and their answers, cross as relays
 * (`Hub.relay`) (docs/PROTOCOL.md, "WAMP").
 */
import type { Hono } from "hono";
import type { Identity } from "../../../lib/auth.ts";
import { jsonShape } from "../../../lib/codec.ts";
import type { Connection } from "../../../lib/connection.ts";
import type { Encoder, Peer } from "../../../lib/peer.ts";
import {
  CloseCode,
  isRoomName,
  type Position,
  ProtocolError,
  type ServerFrame,
  type User,
} from "../../../lib/protocol.ts";
import type { AppContext, AppDeps, AppEnv } from "../../deps.ts";
import { identifyOrAwait, identifyToken } from "../identity.ts";
import { acceptSocket, type SocketKind } from "../websocket.ts";
import { SocketPeer } from "../ws/socket_peer.ts";
import { PendingRefs } from "../pending.ts";

/** Message type codes (WAMP v2 Basic Profile). */
export const W = {
  HELLO: 1,
  WELCOME: 2,
  ABORT: 3,
  CHALLENGE: 4,
  AUTHENTICATE: 5,
  GOODBYE: 6,
  ERROR: 8,
  PUBLISH: 16,
  PUBLISHED: 17,
  SUBSCRIBE: 32,
  SUBSCRIBED: 33,
  UNSUBSCRIBE: 34,
  UNSUBSCRIBED: 35,
  EVENT: 36,
  CALL: 48,
  RESULT: 50,
  REGISTER: 64,
  REGISTERED: 65,
  UNREGISTER: 66,
  UNREGISTERED: 67,
  INVOCATION: 68,
  YIELD: 70,
} as const;

/** Registrations per connection, and calls waiting for their callee per connection, at most. */
const MAX_REGISTRATIONS = 100;
const MAX_PENDING_CALLS = 256;
/** A call whose callee has not answered by then gets `wamp.error.canceled`: no call hangs. */
const CALL_TIMEOUT_MS = 60_000;
const MAX_ID = 2 ** 53;

function randomId(): number {
  const [a = 0, b = 0] = crypto.getRandomValues(new Uint32Array(2));
  return ((a & 0x1fffff) * 2 ** 32 + b) % MAX_ID || 1;
}

/** A message id (a string) as a WAMP publication id: the same number on every node. */
function publicationId(id: string): number {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) % MAX_ID;
  return h || 1;
}

const isId = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0;
const isDict = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** What a PUBLISH stores: its only argument (empty kwargs count as none), or `{args, kwargs}`. */
function storedPayload(args: unknown, kwargs: unknown): unknown {
  const list = Array.isArray(args) ? args : [];
  const keywords = isDict(kwargs) && Object.keys(kwargs).length > 0;
  if (list.length === 1 && !keywords) return list[0];
  return { args: list, kwargs: isDict(kwargs) ? kwargs : {} };
}

/** A message's data as an EVENT's arguments (the inverse of `storedPayload`). */
function eventPayload(data: unknown): unknown[] {
  if (isDict(data) && Object.keys(data).length === 2 && Array.isArray(data.args) && isDict(data.kwargs)) {
    return Object.keys(data.kwargs).length > 0 ? [data.args, data.kwargs] : [data.args];
  }
  return [[data]];
}

type Pending =
  | { kind: "subscribe"; request: number; subscription: number }
  | { kind: "unsubscribe"; request: number }
  | { kind: "publish"; request: number; acknowledge: boolean; self: { room: string; data: unknown } | undefined };

/** Where an invocation's answer goes: the caller's node and connection, and its call id there. */
interface Invocation {
  node: string;
  connection: string;
  call: number;
}

type Answer =
  | { op: "result"; args?: unknown; kwargs?: unknown }
  | { op: "error"; error: string; details?: unknown; args?: unknown; kwargs?: unknown };

/** What crosses between nodes for a call (relays of topic "wamp"; a node's relays to itself too). */
type Relay =
  | {
    op: "invoke";
    from: string;
    callee: string;
    registration: number;
    caller: string;
    call: number;
    authid: string;
    args?: unknown;
    kwargs?: unknown;
  }
  | (Answer & { caller: string; call: number });

/** The presence name of a procedure (see `Hub.claim`). */
const procedureName = (procedure: string) => `#wamp:${procedure}`;

class WampPeer extends SocketPeer {
  connection: Connection | undefined;
  readonly session = randomId();
  welcomed = false;
  /** Waiting for AUTHENTICATE (WAMP-Ticket) before WELCOME. */
  challenged = false;
  readonly subscriptions = new Map<number, string>();
  readonly subscribed = new Map<string, number>();
  readonly registrations = new Map<number, string>();
  /** Invocations this peer (a callee) owes an answer to, by INVOCATION request id. */
  readonly invocations = new Map<number, Invocation>();
  /** Calls this peer (a caller) waits for: the CALL's request and its time limit, by call id. */
  readonly calls = new Map<number, { request: number; timer: ReturnType<typeof setTimeout> }>();
  #nextId = 0;
  /** Requests waiting for the hub's answer (SUBSCRIBED, UNSUBSCRIBED, PUBLISHED, ERROR). */
  readonly pending = new PendingRefs<Pending>("w");

  constructor(socket: WebSocket, id: string, user: User) {
    const encoder: Encoder = { encode: (frame) => this.encode(frame) };
    // WAMP's Basic Profile has no application ping: WebSocket pings keep the connection.
    super(socket, id, user, encoder, "transport");
  }

  become(user: User): void {
    this.user = user;
  }

  /** An id this session hands out (subscriptions, registrations, invocations). */
  nextId(): number {
    return ++this.#nextId;
  }

  encode(frame: ServerFrame): string | undefined {
    switch (frame.type) {
      case "message": {
        const subscription = this.subscribed.get(frame.room);
        if (subscription === undefined) return undefined;
        const details = {
          topic: frame.room,
          offset: frame.offset,
          epoch: frame.epoch,
          publisher_authid: frame.from.id,
        };
        return JSON.stringify([W.EVENT, subscription, publicationId(frame.id), details, ...eventPayload(frame.data)]);
      }
      case "joined": {
        const pending = this.pending.take(frame.ref);
        if (pending?.kind !== "subscribe") return undefined;
        return JSON.stringify([W.SUBSCRIBED, pending.request, pending.subscription]);
      }
      case "left": {
        const pending = this.pending.take(frame.ref);
        return pending?.kind === "unsubscribe" ? JSON.stringify([W.UNSUBSCRIBED, pending.request]) : undefined;
      }
      case "ack": {
        const pending = this.pending.take(frame.ref);
        if (pending?.kind !== "publish") return undefined;
        const out: string[] = [];
        // exclude_me: false: the publisher gets its own event too.
        const self = pending.self && this.subscribed.get(pending.self.room);
        if (pending.self && self !== undefined && frame.offset !== undefined) {
          const details = { topic: pending.self.room, offset: frame.offset, epoch: frame.epoch };
          out.push(
            JSON.stringify([W.EVENT, self, publicationId(frame.id), details, ...eventPayload(pending.self.data)]),
          );
        }
        if (pending.acknowledge) out.push(JSON.stringify([W.PUBLISHED, pending.request, publicationId(frame.id)]));
        return out.length === 0 ? undefined : out.join("\u0000");
      }
      case "error": {
        const pending = this.pending.take(frame.ref);
        if (!pending) return undefined;
        const type = pending.kind === "subscribe"
          ? W.SUBSCRIBE
          : pending.kind === "unsubscribe"
          ? W.UNSUBSCRIBE
          : W.PUBLISH;
        return JSON.stringify([W.ERROR, type, pending.request, { message: frame.message }, wampError(frame.code)]);
      }
      default:
        return undefined;
    }
  }

  override send(text: string): void {
    // An ack can stand for two messages (the publisher's own event, then PUBLISHED).
    if (text.includes("\u0000[")) { for (const part of text.split("\u0000")) super.send(part); }
    else super.send(text);
  }

  reply(message: unknown[]): void {
    super.send(JSON.stringify(message));
  }
}

function wampError(code: string): string {
  switch (code) {
    case "forbidden":
    case "unauthorized":
      return "wamp.error.not_authorized";
    case "bad_request":
      return "wamp.error.invalid_argument";
    default:
      return `roomcast.error.${code}`;
  }
}

/** What a WAMP socket is to the transport seam (websocket.ts). */
class WampKind implements SocketKind {
  readonly transport = "wamp";
  /** This node's WAMP sessions, by connection id (calls and answers from other nodes find them). */
  readonly #sessions = new Map<string, WampPeer>();

  constructor(readonly deps: AppDeps) {
    deps.hub.onRelay("wamp", (payload) => this.#relayed(payload as Relay));
  }

  identify(c: AppContext, deps: AppDeps, name: string | undefined, address: string): Promise<Identity> {
    return identifyOrAwait(c, deps, name, address);
  }

  refuse(socket: WebSocket, error: ProtocolError, code: number): void {
    socket.send(JSON.stringify([W.ABORT, { message: error.message }, wampError(error.code)]));
    socket.close(code, error.message.slice(0, 120));
  }

  protocol(offered: string[]): string | undefined {
    return offered.includes("wamp.2.json") ? "wamp.2.json" : undefined;
  }

  peer(socket: WebSocket, id: string, user: User): Peer {
    return new WampPeer(socket, id, user);
  }

  opened(connection: Connection): void {
    const peer = connection.peer as WampPeer;
    peer.connection = connection;
    this.#sessions.set(connection.id, peer);
  }

  /** A connection went: its procedures are let go, the calls it owed answers to fail, and its own
   * calls are forgotten. */
  closed(connection: Connection): void {
    const peer = connection.peer as WampPeer;
    this.#sessions.delete(connection.id);
    for (const [registration, procedure] of peer.registrations) {
      this.deps.hub.unclaim(procedureName(procedure), this.#holder(connection, registration));
    }
    peer.registrations.clear();
    for (const invocation of peer.invocations.values()) {
      this.#answerCall(invocation, {
        op: "error",
        error: "wamp.error.canceled",
        details: { message: "The callee went away" },
      });
    }
    peer.invocations.clear();
    for (const { timer } of peer.calls.values()) clearTimeout(timer);
    peer.calls.clear();
  }

  #holder(connection: Connection, registration: number): string {
    return `${this.deps.hub.node}|${connection.id}|${registration}`;
  }

  text(connection: Connection, text: string): void {
    const { hub, config } = this.deps;
    if (!hub.frames.inbound(connection, text)) return;
    const peer = connection.peer as WampPeer;
    const shape = jsonShape(text, config.limits);
    let message: unknown;
    try {
      message = shape === undefined ? JSON.parse(text) : undefined;
    } catch {
      message = undefined;
    }
    if (!Array.isArray(message) || !isId(message[0])) {
      return this.#abort(connection, peer, shape ?? "A WAMP message is a JSON array starting with its type code");
    }
    this.#message(connection, peer, message);
  }

  /** A protocol violation: ABORT, then the close. */
  #abort(connection: Connection, peer: WampPeer, message: string, reason = "wamp.error.protocol_violation"): void {
    peer.reply([W.ABORT, { message }, reason]);
    this.deps.metrics.errors.incLabel("bad_request");
    connection.close(CloseCode.policy, "WAMP protocol violation", "wamp_abort");
  }

  #message(connection: Connection, peer: WampPeer, m: unknown[]): void {
    const type = m[0] as number;
    if (!peer.welcomed) {
      if (type === W.HELLO) return this.#hello(connection, peer, m);
      if (type === W.AUTHENTICATE && peer.challenged) return void this.#authenticate(connection, peer, m);
      return this.#abort(connection, peer, "HELLO first");
    }
    const request = m[1];
    if (type !== W.GOODBYE && type !== W.YIELD && type !== W.ERROR && !isId(request)) {
      return this.#abort(connection, peer, "A request id is a non-negative integer");
    }
    switch (type) {
      case W.GOODBYE:
        peer.reply([W.GOODBYE, {}, "wamp.close.goodbye_and_out"]);
        return connection.close(CloseCode.normal, "Goodbye", "goodbye");
      case W.SUBSCRIBE:
        return this.#subscribe(connection, peer, request as number, m[2], m[3]);
      case W.UNSUBSCRIBE: {
        const room = isId(m[2]) ? peer.subscriptions.get(m[2]) : undefined;
        if (room === undefined) {
          return peer.reply([W.ERROR, W.UNSUBSCRIBE, request, {}, "wamp.error.no_such_subscription"]);
        }
        peer.subscriptions.delete(m[2] as number);
        peer.subscribed.delete(room);
        return this.deps.hub.frames.submit(connection, {
          type: "leave",
          room,
          ref: peer.pending.expect({ kind: "unsubscribe", request: request as number }),
        });
      }
      case W.PUBLISH:
        return this.#publish(connection, peer, request as number, m);
      case W.REGISTER:
        return void this.#register(connection, peer, request as number, m[3]);
      case W.UNREGISTER:
        return this.#unregister(connection, peer, request as number, m[2]);
      case W.CALL:
        return void this.#call(connection, peer, request as number, m);
      case W.YIELD:
      case W.ERROR:
        return this.#answer(connection, peer, m);
      default:
        return this.#abort(connection, peer, `Message type ${type} is not served`);
    }
  }

  #hello(connection: Connection, peer: WampPeer, m: unknown[]): void {
    const [, realm, details] = m;
    if (typeof realm !== "string" || !/^[A-Za-z0-9_.-]{1,255}$/.test(realm) || !isDict(details)) {
      return this.#abort(connection, peer, "HELLO is [1, realm, details]");
    }
    const realms = this.deps.config.wampRealms;
    if (realms.length > 0 && !realms.includes(realm)) {
      return this.#abort(connection, peer, `No realm ${realm}`, "wamp.error.no_such_realm");
    }
    const pending = this.deps.config.authSecret !== undefined && connection.allowedRooms?.length === 0;
    if (pending) {
      const methods = Array.isArray(details.authmethods) ? details.authmethods : [];
      if (!methods.includes("ticket")) {
        return this.#abort(
          connection,
          peer,
          'A token is required: authmethods ["ticket"] or ?token=',
          "wamp.error.not_authorized",
        );
      }
      peer.challenged = true;
      return peer.reply([W.CHALLENGE, "ticket", {}]);
    }
    this.#welcome(connection, peer);
  }

  async #authenticate(connection: Connection, peer: WampPeer, m: unknown[]): Promise<void> {
    peer.challenged = false;
    try {
      const identity = await identifyToken(this.deps, typeof m[1] === "string" ? m[1] : undefined, undefined, "", "");
      if (connection.closed) return;
      this.deps.hub.grant(connection, identity.user, {
        rooms: identity.rooms,
        expiresAt: identity.expiresAt,
        principal: identity.principal,
      });
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      return this.#abort(connection, peer, error.message, "wamp.error.authentication_failed");
    }
    this.#welcome(connection, peer);
  }

  #welcome(connection: Connection, peer: WampPeer): void {
    peer.welcomed = true;
    const user = connection.peer.user;
    peer.reply([W.WELCOME, peer.session, {
      authid: user.id,
      authrole: "user",
      authmethod: this.deps.config.authSecret ? "ticket" : "anonymous",
      roles: {
        broker: { features: { publisher_exclusion: true, publisher_identification: true } },
        dealer: { features: {} },
      },
    }]);
  }

  #subscribe(connection: Connection, peer: WampPeer, request: number, options: unknown, topic: unknown): void {
    if (!isDict(options) || typeof topic !== "string") {
      return this.#abort(connection, peer, "SUBSCRIBE is [32, request, options, topic]");
    }
    if (!isRoomName(topic)) return peer.reply([W.ERROR, W.SUBSCRIBE, request, {}, "wamp.error.invalid_uri"]);
    if (peer.subscribed.has(topic)) return peer.reply([W.SUBSCRIBED, request, peer.subscribed.get(topic)]);
    let since: Position | undefined;
    const given = options.since;
    if (isDict(given) && typeof given.epoch === "string" && isId(given.offset)) {
      since = { epoch: given.epoch, offset: given.offset };
    } else if (typeof given === "string" && /^[A-Za-z0-9_-]{1,64}:\d{1,15}$/.test(given)) {
      const at = given.lastIndexOf(":");
      since = { epoch: given.slice(0, at), offset: Number(given.slice(at + 1)) };
    }
    const subscription = peer.nextId();
    peer.subscriptions.set(subscription, topic);
    peer.subscribed.set(topic, subscription);
    this.deps.hub.frames.submit(connection, {
      type: "join",
      room: topic,
      ...(since ? { since } : {}),
      ref: peer.pending.expect({ kind: "subscribe", request, subscription }),
    });
  }

  #publish(connection: Connection, peer: WampPeer, request: number, m: unknown[]): void {
    const [, , options, topic, args, kwargs] = m;
    if (
      !isDict(options) || typeof topic !== "string" || (args !== undefined && !Array.isArray(args)) ||
      (kwargs !== undefined && !isDict(kwargs))
    ) {
      return this.#abort(connection, peer, "PUBLISH is [16, request, options, topic, args?, kwargs?]");
    }
    const acknowledge = options.acknowledge === true;
    const fail = (error: string, message: string) => {
      if (acknowledge) peer.reply([W.ERROR, W.PUBLISH, request, { message }, error]);
    };
    if (!isRoomName(topic)) return fail("wamp.error.invalid_uri", "Topics are room names");
    if (!connection.mayJoin(topic)) return fail("wamp.error.not_authorized", `Not allowed to publish to ${topic}`);
    const data = storedPayload(args, kwargs);
    const { hub } = this.deps;
    const self = options.exclude_me === false ? { room: topic, data } : undefined;
    const ref = peer.pending.expect({ kind: "publish", request, acknowledge, self });
    if (peer.subscribed.has(topic)) return hub.frames.submit(connection, { type: "publish", room: topic, data, ref });
    if (!hub.frames.allowPublish(connection, ref)) return;
    connection.serially(async () => {
      try {
        const stored = await hub.publishAs(topic, data, connection.peer.user);
        if (acknowledge) peer.reply([W.PUBLISHED, request, publicationId(stored.id)]);
      } catch {
        fail("roomcast.error.unavailable", "Not stored: try again");
      }
    });
  }

  async #register(connection: Connection, peer: WampPeer, request: number, procedure: unknown): Promise<void> {
    if (typeof procedure !== "string" || !/^[A-Za-z0-9_.:-]{1,255}$/.test(procedure)) {
      return peer.reply([W.ERROR, W.REGISTER, request, {}, "wamp.error.invalid_uri"]);
    }
    if ([...peer.registrations.values()].includes(procedure)) {
      return peer.reply([W.ERROR, W.REGISTER, request, {}, "wamp.error.procedure_already_exists"]);
    }
    if (peer.registrations.size >= MAX_REGISTRATIONS) {
      const message = `${MAX_REGISTRATIONS} registrations at most`;
      return peer.reply([W.ERROR, W.REGISTER, request, { message }, "roomcast.error.too_many"]);
    }
    const registration = peer.nextId();
    // Counted at once, so that registrations waiting for their claim keep to the cap too.
    peer.registrations.set(registration, procedure);
    const holder = this.#holder(connection, registration);
    const held = await this.deps.hub.claim(procedureName(procedure), holder).catch(() => false);
    if (connection.closed) {
      if (held) this.deps.hub.unclaim(procedureName(procedure), holder);
      return;
    }
    if (!held) {
      peer.registrations.delete(registration);
      return peer.reply([W.ERROR, W.REGISTER, request, {}, "wamp.error.procedure_already_exists"]);
    }
    peer.reply([W.REGISTERED, request, registration]);
  }

  #unregister(connection: Connection, peer: WampPeer, request: number, registration: unknown): void {
    const procedure = isId(registration) ? peer.registrations.get(registration) : undefined;
    if (procedure === undefined) {
      return peer.reply([W.ERROR, W.UNREGISTER, request, {}, "wamp.error.no_such_registration"]);
    }
    peer.registrations.delete(registration as number);
    this.deps.hub.unclaim(procedureName(procedure), this.#holder(connection, registration as number));
    peer.reply([W.UNREGISTERED, request]);
  }

  /** A CALL: to the procedure's holder, on this node or another, through a relay either way. */
  async #call(connection: Connection, peer: WampPeer, request: number, m: unknown[]): Promise<void> {
    const [, , options, procedure, args, kwargs] = m;
    if (
      !isDict(options) || typeof procedure !== "string" || (args !== undefined && !Array.isArray(args)) ||
      (kwargs !== undefined && !isDict(kwargs))
    ) {
      return this.#abort(connection, peer, "CALL is [48, request, options, procedure, args?, kwargs?]");
    }
    if (peer.calls.size >= MAX_PENDING_CALLS || !this.deps.hub.frames.allowPublish(connection, undefined)) {
      const details = { message: "Too many calls: slow down" };
      return peer.reply([W.ERROR, W.CALL, request, details, "roomcast.error.rate_limited"]);
    }
    const holder = await this.deps.hub.holder(procedureName(procedure)).catch(() => undefined);
    if (connection.closed) return;
    const [node, callee, registration] = holder?.split("|") ?? [];
    if (!node || !callee || !registration) {
      return peer.reply([W.ERROR, W.CALL, request, {}, "wamp.error.no_such_procedure"]);
    }
    const call = peer.nextId();
    const timer = setTimeout(() => {
      if (!peer.calls.delete(call)) return;
      const details = { message: "The callee did not answer in time" };
      peer.reply([W.ERROR, W.CALL, request, details, "wamp.error.canceled"]);
    }, CALL_TIMEOUT_MS);
    peer.calls.set(call, { request, timer });
    const invoke: Relay = {
      op: "invoke",
      from: this.deps.hub.node,
      callee,
      registration: Number(registration),
      caller: connection.id,
      call,
      authid: peer.user.id,
    };
    if (args !== undefined) invoke.args = args;
    if (kwargs !== undefined) invoke.kwargs = kwargs;
    this.deps.hub.relay(node, "wamp", invoke);
  }

  /** A relay to this node: an invocation for a callee here, or an answer for a caller here. */
  #relayed(relay: Relay): void {
    if (relay.op === "invoke") {
      const callee = this.#sessions.get(relay.callee);
      const back: Invocation = { node: relay.from, connection: relay.caller, call: relay.call };
      if (!callee || callee.connection?.closed || !callee.registrations.has(relay.registration)) {
        return this.#answerCall(back, { op: "error", error: "wamp.error.no_such_procedure" });
      }
      if (callee.invocations.size >= MAX_PENDING_CALLS) {
        const details = { message: "The callee is busy" };
        return this.#answerCall(back, { op: "error", error: "roomcast.error.rate_limited", details });
      }
      const invocation = callee.nextId();
      callee.invocations.set(invocation, back);
      const out: unknown[] = [W.INVOCATION, invocation, relay.registration, { caller_authid: relay.authid }];
      if (relay.args !== undefined || relay.kwargs !== undefined) out.push(relay.args ?? []);
      if (relay.kwargs !== undefined) out.push(relay.kwargs);
      return callee.reply(out);
    }
    const caller = this.#sessions.get(relay.caller);
    const pending = caller?.calls.get(relay.call);
    if (!caller || !pending) return;
    caller.calls.delete(relay.call);
    clearTimeout(pending.timer);
    if (caller.connection?.closed) return;
    const out: unknown[] = relay.op === "result"
      ? [W.RESULT, pending.request, {}]
      : [W.ERROR, W.CALL, pending.request, isDict(relay.details) ? relay.details : {}, relay.error];
    if (Array.isArray(relay.args) || isDict(relay.kwargs)) out.push(Array.isArray(relay.args) ? relay.args : []);
    if (isDict(relay.kwargs)) out.push(relay.kwargs);
    caller.reply(out);
  }

  /** Sends an invocation's answer to its caller's node (this one's included). */
  #answerCall(invocation: Invocation, answer: Answer): void {
    const relay: Relay = { ...answer, caller: invocation.connection, call: invocation.call };
    this.deps.hub.relay(invocation.node, "wamp", relay);
  }

  /** A callee's YIELD or ERROR for an invocation: the caller gets RESULT or ERROR. */
  #answer(connection: Connection, peer: WampPeer, m: unknown[]): void {
    const type = m[0] as number;
    const invocation = type === W.YIELD ? m[1] : m[2];
    if (type === W.ERROR && m[1] !== W.INVOCATION) {
      return this.#abort(connection, peer, "Clients send ERROR for INVOCATIONs only");
    }
    const pending = isId(invocation) ? peer.invocations.get(invocation) : undefined;
    // An answer for a call that timed out, or that never was: nothing to do.
    if (!pending) return;
    peer.invocations.delete(invocation as number);
    const [args, kwargs] = type === W.YIELD ? [m[3], m[4]] : [m[5], m[6]];
    const answer: Answer = type === W.YIELD ? { op: "result" } : {
      op: "error",
      error: typeof m[4] === "string" ? m[4] : "wamp.error.runtime_error",
      details: isDict(m[3]) ? m[3] : {},
    };
    if (Array.isArray(args)) answer.args = args;
    if (isDict(kwargs)) answer.kwargs = kwargs;
    this.#answerCall(pending, answer);
  }
}

export function mountWamp(app: Hono<AppEnv>, deps: AppDeps): void {
  const kind = new WampKind(deps);
  app.get("/wamp", (c) => acceptSocket(c, deps, kind));
}
