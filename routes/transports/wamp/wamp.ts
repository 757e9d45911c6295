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
import { jsonValue } from "../../../lib/codec.ts";
import type { Connection } from "../../../lib/connection.ts";
import type { Peer } from "../../../lib/peer.ts";
import { CloseCode, isRoomName, type Position, ProtocolError, type User } from "../../../lib/protocol.ts";
import type { AppContext, AppDeps, AppEnv } from "../../deps.ts";
import { awaitsToken, identifyOrAwait, takeToken } from "../identity.ts";
import { acceptSocket, type SocketKind } from "../websocket.ts";
import { Dealer } from "./dealer.ts";
import { isDict, isId, publicationId, storedPayload, W, wampError } from "./messages.ts";
import { WampPeer } from "./peer.ts";

/** What a WAMP socket is to the transport seam (websocket.ts). */
class WampKind implements SocketKind {
  readonly transport = "wamp";
  /** This node's WAMP sessions, by connection id (calls and answers from other nodes find them). */
  readonly #sessions = new Map<string, WampPeer>();
  readonly #dealer: Dealer;

  constructor(readonly deps: AppDeps) {
    this.#dealer = new Dealer(
      deps.hub,
      this.#sessions,
      (connection, peer, message) => this.#abort(connection, peer, message),
    );
  }

  identify(c: AppContext, deps: AppDeps, name: string | undefined, address: string): Promise<Identity> {
    return identifyOrAwait(c, deps, name, address);
  }

  refuse(socket: WebSocket, error: ProtocolError, code: number): void {
    const details = error.backendCode === undefined
      ? { message: error.message }
      : { message: error.message, code: error.backendCode };
    socket.send(JSON.stringify([W.ABORT, details, wampError(error.code)]));
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

  /** A connection went: the dealer lets its procedures go and fails the calls it owed. */
  closed(connection: Connection): void {
    this.#sessions.delete(connection.id);
    this.#dealer.closed(connection, connection.peer as WampPeer);
  }

  text(connection: Connection, text: string): void {
    const { hub, config } = this.deps;
    if (!hub.frames.inbound(connection, text)) return;
    const peer = connection.peer as WampPeer;
    const read = jsonValue(text, config.limits, "Message");
    if (typeof read === "string") return this.#abort(connection, peer, read);
    if (!Array.isArray(read.value) || !isId(read.value[0])) {
      return this.#abort(connection, peer, "A WAMP message is a JSON array starting with its type code");
    }
    this.#message(connection, peer, read.value);
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
        return void this.#dealer.register(connection, peer, request as number, m[3]);
      case W.UNREGISTER:
        return this.#dealer.unregister(connection, peer, request as number, m[2]);
      case W.CALL:
        return void this.#dealer.call(connection, peer, request as number, m);
      case W.YIELD:
      case W.ERROR:
        return this.#dealer.answer(connection, peer, m);
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
    if (awaitsToken(connection.peer.user)) {
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
      await takeToken(this.deps, connection, typeof m[1] === "string" ? m[1] : undefined, "send the JWT as the ticket");
      if (connection.closed) return;
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
}

export function mountWamp(app: Hono<AppEnv>, deps: AppDeps): void {
  const kind = new WampKind(deps);
  app.get("/wamp", (c) => acceptSocket(c, deps, kind));
}
