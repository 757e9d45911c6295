/**
 * `GET /app/:key`: Pusher Channels protocol 7 (5 and 6 too) over a WebSocket, for pusher-js,
 * Laravel Echo and every other Pusher client, in roomcast's rooms (channels.ts has the mapping).
 * The socket is accepted like any other (websocket.ts: refused, admitted, identified, connected);
 * the app key in the path is the identity check. A connection is a guest until it signs in
 * (`pusher:signin`) or subscribes to a presence channel as the user the app signed; it then
 * becomes that user (`Hub.reidentify`), so directs to the user and member events find it.
 */
import { BackendRefusal } from "../../../lib/proxy.ts";
import type { Hono } from "hono";
import type { Identity } from "../../../lib/auth.ts";
import { guestPrincipal } from "../../../lib/budgets.ts";
import { jsonObject } from "../../../lib/codec.ts";
import type { PusherApp } from "../../../lib/config.ts";
import type { Connection } from "../../../lib/connection.ts";
import { guestId, guestName } from "../../../lib/ids.ts";
import { TokenBucket } from "../../../lib/limits.ts";
import { isCleanId, normalizeName } from "../../../lib/names.ts";
import type { Encoder, Peer } from "../../../lib/peer.ts";
import {
  CloseCode,
  errorStatus,
  FrameError,
  isRoomName,
  ProtocolError,
  type ServerFrame,
  type User,
} from "../../../lib/protocol.ts";
import type { AppContext, AppDeps, AppEnv } from "../../deps.ts";
import { jsonError } from "../../errors.ts";
import { acceptSocket, type SocketKind } from "../websocket.ts";
import { SocketPeer } from "../ws/socket_peer.ts";
import {
  channelKind,
  dataText,
  eventOf,
  isCacheChannel,
  presenceData,
  sharedText,
  USER_CHANNEL_PREFIX,
} from "./channels.ts";
import { authorized } from "./signature.ts";
import { mountPusherApi } from "./api.ts";

/** Pusher's error codes (https://pusher.com/docs/channels/library_auth_reference/pusher-websockets-protocol/). */
export const PusherCode = {
  /** 4000–4099: the client does not reconnect. */
  appUnknown: 4001,
  protocolUnsupported: 4007,
  protocolMissing: 4008,
  unauthorized: 4009,
  /** 4100–4199: it reconnects after a backoff. */
  overCapacity: 4100,
  /** 4200–4299: it reconnects at once. */
  reconnect: 4200,
  pongMissed: 4201,
  /** 4300–4399: other errors. */
  clientEventRateLimited: 4301,
} as const;

/** A connection refused with a Pusher error code. */
export class PusherRefusal extends ProtocolError {
  constructor(readonly pusherCode: number, message: string) {
    super("forbidden", message);
  }
}

/** `user_info` at most (Pusher's limit is 1 KB too). */
const MAX_USER_INFO_BYTES = 1024;

/** roomcast's close codes as Pusher's, so that pusher-js reconnects (or stops) as it should. */
function pusherClose(code: number): number {
  switch (code) {
    case CloseCode.heartbeat:
      return PusherCode.pongMissed;
    case CloseCode.slowConsumer:
    case CloseCode.tryAgainLater:
      return PusherCode.overCapacity;
    case CloseCode.policy:
    case CloseCode.terminated:
      return PusherCode.unauthorized;
    case CloseCode.flood:
      return PusherCode.clientEventRateLimited;
    default:
      return PusherCode.reconnect;
  }
}

function pusherError(code: number | null, message: string): string {
  return JSON.stringify({ event: "pusher:error", data: { code, message } });
}

/** A Pusher client's connection: its peer, and what it subscribed to and signed in as. */
class PusherPeer extends SocketPeer implements Encoder {
  /** Signed in (`pusher:signin`) or a presence member as the app's user: no longer a guest. */
  identified = false;
  connection: Connection | undefined;
  /** Channels of users (`#server-to-user-…`) this connection subscribed to. */
  readonly userChannels = new Set<string>();
  readonly clientEvents: TokenBucket;

  constructor(
    socket: WebSocket,
    id: string,
    user: User,
    readonly app: PusherApp,
    readonly deps: AppDeps,
  ) {
    const encoder: Encoder = { encode: (frame) => this.encode(frame) };
    super(socket, id, user, encoder, "app");
    const { pusherClientEventBurst, pusherClientEventWindowMs } = deps.config;
    this.clientEvents = new TokenBucket(pusherClientEventBurst, pusherClientEventWindowMs, deps.clock);
  }

  become(user: User): void {
    this.user = user;
  }

  encode(frame: ServerFrame): string | undefined {
    switch (frame.type) {
      case "welcome":
        return JSON.stringify({
          event: "pusher:connection_established",
          data: JSON.stringify({ socket_id: this.id, activity_timeout: Math.round(frame.heartbeat / 1000) }),
        });
      case "joined":
        return JSON.stringify({
          event: "pusher_internal:subscription_succeeded",
          channel: frame.room,
          data: channelKind(frame.room) === "presence" ? presenceData(frame.members) : "{}",
        });
      case "direct": {
        const { event, data } = eventOf(frame.data);
        return JSON.stringify({ event, channel: `${USER_CHANNEL_PREFIX}${this.user.id}`, data });
      }
      case "error":
        return this.#errorText(frame);
      case "message":
        // A trigger's `socket_id` is the one connection that doesn't get it.
        if ((frame.data as { socket_id?: unknown } | null)?.socket_id === this.id) return undefined;
        return sharedText(frame);
      default:
        return sharedText(frame);
    }
  }

  #errorText(frame: Extract<ServerFrame, { type: "error" }>): string | undefined {
    const ref = typeof frame.ref === "string" ? frame.ref : "";
    const channel = ref.slice(2);
    if (ref.startsWith("s:")) {
      return JSON.stringify({
        event: "pusher:subscription_error",
        channel,
        data: { type: frame.code, error: frame.message, status: frame.backendCode ?? errorStatus[frame.code] ?? 400 },
      });
    }
    // A leave of a channel not subscribed: Pusher says nothing.
    if (ref.startsWith("u:")) return undefined;
    return pusherError(frame.code === "rate_limited" ? PusherCode.clientEventRateLimited : null, frame.message);
  }

  override send(text: string, frame?: ServerFrame): void {
    super.send(text);
    if (frame?.type === "joined" && isCacheChannel(frame.room)) this.#sendCached(frame.room);
  }

  /** A cache channel's last event, or `pusher:cache_miss`, after its subscription succeeded. */
  #sendCached(room: string): void {
    this.deps.hub.history(room, { limit: 1 }).then((page) => {
      const connection = this.connection;
      if (!connection || connection.closed || !connection.rooms.has(room)) return;
      const last = page.messages.at(-1);
      if (last) return connection.send(last);
      super.send(JSON.stringify({ event: "pusher:cache_miss", channel: room }));
      this.deps.webhooks?.cacheMiss(room);
    }, () => {
      // The store is away: the subscriber is told as on a miss.
      if (this.connection && !this.connection.closed) {
        super.send(JSON.stringify({ event: "pusher:cache_miss", channel: room }));
      }
    });
  }

  /** Sends a Pusher protocol reply (pong, signin_success, an error of the transport's own). */
  reply(text: string): void {
    super.send(text);
  }

  override close(code: number, reason: string): void {
    super.close(pusherClose(code), reason);
  }
}

/** Reads a Pusher frame; what it can't be is a `FrameError`. */
function readFrame(text: string, deps: AppDeps): { event: string; data: unknown; channel?: unknown } | FrameError {
  const frame = jsonObject(text, deps.config.limits, "Frame");
  if (typeof frame === "string") return new FrameError("bad_request", frame);
  if (typeof frame.event !== "string") return new FrameError("bad_request", "Field event must be a string");
  // pusher-js sends `data` as an object; some clients send it as a JSON string.
  let data = frame.data;
  if (typeof data === "string" && frame.event.startsWith("pusher:")) {
    try {
      data = JSON.parse(data);
    } catch {
      // Kept as the string: each event says what it needs.
    }
  }
  return { event: frame.event, data, channel: frame.channel };
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : {};
}

/** What a Pusher socket is to the transport seam (websocket.ts). */
class PusherKind implements SocketKind {
  readonly transport = "pusher";
  constructor(readonly deps: AppDeps, readonly app: PusherApp | undefined, readonly version: string | undefined) {}

  identify(_c: AppContext, _deps: AppDeps, name: string | undefined, address: string): Promise<Identity> {
    if (!this.app) throw new PusherRefusal(PusherCode.appUnknown, "App key not in this app's list");
    if (this.version === undefined) {
      throw new PusherRefusal(PusherCode.protocolMissing, "No protocol version supplied");
    }
    if (!["5", "6", "7"].includes(this.version)) {
      throw new PusherRefusal(PusherCode.protocolUnsupported, "Unsupported protocol version: 5 to 7 are served");
    }
    const user = { id: guestId(), name: name ?? guestName() };
    return Promise.resolve({ user, rooms: undefined, expiresAt: undefined, principal: guestPrincipal(address) });
  }

  refuse(socket: WebSocket, error: ProtocolError, code: number): void {
    const pusher = error instanceof PusherRefusal
      ? error.pusherCode
      : error instanceof BackendRefusal && error.disconnect
      ? error.disconnect.code
      : code === CloseCode.tryAgainLater
      ? PusherCode.overCapacity
      : PusherCode.unauthorized;
    socket.send(pusherError(pusher, error.message));
    socket.close(pusher, error.message.slice(0, 120));
  }

  connectionId(): string {
    const [a = 0, b = 0] = crypto.getRandomValues(new Uint32Array(2));
    return `${a}.${b}`;
  }

  peer(socket: WebSocket, id: string, user: User): Peer {
    return new PusherPeer(socket, id, user, this.app as PusherApp, this.deps);
  }

  opened(connection: Connection): void {
    (connection.peer as PusherPeer).connection = connection;
  }

  text(connection: Connection, text: string): void {
    const { hub } = this.deps;
    if (!hub.frames.inbound(connection, text)) return;
    const peer = connection.peer as PusherPeer;
    const frame = readFrame(text, this.deps);
    if (frame instanceof FrameError) return hub.frames.refuse(connection, frame);
    const data = record(frame.data);
    switch (frame.event) {
      case "pusher:ping":
        return peer.reply(JSON.stringify({ event: "pusher:pong", data: {} }));
      case "pusher:pong":
        return;
      case "pusher:subscribe":
        return this.#subscribe(connection, peer, data);
      case "pusher:unsubscribe": {
        const channel = data.channel;
        if (typeof channel !== "string") return;
        peer.userChannels.delete(channel);
        if (connection.rooms.has(channel)) {
          hub.frames.submit(connection, { type: "leave", room: channel, ref: `u:${channel}` });
        }
        return;
      }
      case "pusher:signin":
        return this.#signin(connection, peer, data);
      default:
        if (frame.event.startsWith("client-")) {
          return this.#clientEvent(connection, peer, frame.event, frame.channel, frame.data);
        }
        return hub.frames.refuse(
          connection,
          new FrameError("bad_request", `Unsupported event ${frame.event.slice(0, 64)}`),
        );
    }
  }

  #subscribe(connection: Connection, peer: PusherPeer, data: Record<string, unknown>): void {
    const { hub } = this.deps;
    const channel = data.channel;
    const refuse = (code: "bad_request" | "forbidden" | "unauthorized", message: string) =>
      hub.frames.refuse(
        connection,
        new FrameError(code, message, `s:${typeof channel === "string" ? channel.slice(0, 200) : ""}`),
      );
    if (typeof channel !== "string") return refuse("bad_request", "Field channel must be a string");
    const kind = channelKind(channel);
    if (kind === "user") {
      // pusher-js subscribes to its user's channel after signing in: directs to the user reach it anyway.
      if (!peer.identified || channel !== `${USER_CHANNEL_PREFIX}${peer.user.id}`) {
        return refuse("forbidden", "Sign in as this user first");
      }
      peer.userChannels.add(channel);
      return peer.reply(JSON.stringify({ event: "pusher_internal:subscription_succeeded", channel, data: "{}" }));
    }
    if (!isRoomName(channel)) {
      return refuse("bad_request", "Channel names are 1–128 characters of A-Z a-z 0-9 _ - = @ , . ; :");
    }
    if (kind === "public") return hub.frames.submit(connection, { type: "join", room: channel, ref: `s:${channel}` });
    const channelData = kind === "presence" ? data.channel_data : undefined;
    if (kind === "presence" && typeof channelData !== "string") {
      return refuse("bad_request", "A presence subscription needs channel_data");
    }
    const signed = `${peer.id}:${channel}${channelData === undefined ? "" : `:${channelData}`}`;
    if (!authorized(peer.app, data.auth, signed)) return refuse("unauthorized", "Invalid signature");
    if (kind === "presence") {
      const user = presenceUser(channelData as string);
      if (typeof user === "string") return refuse("bad_request", user);
      if (peer.identified && peer.user.id !== user.id) {
        return refuse("forbidden", "One user per connection: this one is another user's");
      }
      // The first presence subscription (or sign-in) makes the connection its user; later ones, as
      // the same user, keep it as it is (the first user_info stands for every channel).
      if (!peer.identified) {
        const done = connection.serially(() => {
          hub.reidentify(connection, user);
        });
        if (!done) return refuse("bad_request", "Too many frames waiting to be handled");
        peer.identified = true;
      }
    }
    hub.frames.submit(connection, { type: "join", room: channel, ref: `s:${channel}` });
  }

  #signin(connection: Connection, peer: PusherPeer, data: Record<string, unknown>): void {
    const { hub } = this.deps;
    const userData = data.user_data;
    const fail = (message: string) => {
      peer.reply(pusherError(PusherCode.unauthorized, message));
      // pusher-js treats a failed sign-in as fatal for the user: Pusher closes the connection too.
      connection.close(CloseCode.policy, message, "signin");
    };
    if (typeof userData !== "string" || !authorized(peer.app, data.auth, `${peer.id}::user::${userData}`)) {
      return fail("Invalid signature");
    }
    let parsed: Record<string, unknown>;
    try {
      parsed = record(JSON.parse(userData));
    } catch {
      return fail("user_data must be JSON");
    }
    const id = typeof parsed.id === "number" ? String(parsed.id) : parsed.id;
    if (typeof id !== "string" || !isCleanId(id)) return fail("user_data needs an id of 1–128 characters");
    if (peer.identified && peer.user.id !== id) return fail("One user per connection: this one is another user's");
    const name = (typeof parsed.name === "string" ? normalizeName(parsed.name) : undefined) ?? id;
    const user: User = { id, name };
    if (parsed.user_info !== undefined) user.info = parsed.user_info;
    const already = peer.identified;
    peer.identified = true;
    connection.serially(() => {
      if (!already) hub.reidentify(connection, user);
      peer.reply(JSON.stringify({ event: "pusher:signin_success", data: { user_data: userData } }));
    });
  }

  #clientEvent(connection: Connection, peer: PusherPeer, event: string, channel: unknown, data: unknown): void {
    const { hub, config } = this.deps;
    const refuse = (message: string, code: number | null = null) => peer.reply(pusherError(code, message));
    if (typeof channel !== "string" || !connection.rooms.has(channel)) {
      return refuse("Client events need a channel this connection subscribed to");
    }
    const kind = channelKind(channel);
    if (kind !== "private" && kind !== "presence") {
      return refuse("Client events are allowed on private and presence channels only (not encrypted ones)");
    }
    if (dataText(data).length > config.pusherMaxEventBytes) {
      return refuse(`Event data is larger than ${config.pusherMaxEventBytes} bytes`);
    }
    if (!peer.clientEvents.take()) {
      refuse("Client event rejected due to rate limit", PusherCode.clientEventRateLimited);
      if (connection.strike()) connection.close(CloseCode.flood, "Flooding", "flood");
      return;
    }
    connection.forgive();
    hub.frames.submit(connection, { type: "signal", room: channel, event, data, ref: `c:${channel}` });
    const userId = kind === "presence" ? peer.user.id : undefined;
    this.deps.webhooks?.clientEvent({
      channel,
      event,
      data: dataText(data),
      socketId: peer.id,
      ...userId === undefined ? {} : { userId },
    });
  }
}

/** The user a presence subscription's `channel_data` names, or what is wrong with it. */
function presenceUser(channelData: string): User | string {
  let parsed: Record<string, unknown>;
  try {
    parsed = record(JSON.parse(channelData));
  } catch {
    return "channel_data must be JSON";
  }
  const id = typeof parsed.user_id === "number" ? String(parsed.user_id) : parsed.user_id;
  if (typeof id !== "string" || !isCleanId(id)) return "channel_data needs a user_id of 1–128 characters";
  const info = parsed.user_info;
  if (info !== undefined && (JSON.stringify(info)?.length ?? 0) > MAX_USER_INFO_BYTES) {
    return `user_info is larger than ${MAX_USER_INFO_BYTES} bytes`;
  }
  const named = record(info).name;
  const name = (typeof named === "string" ? normalizeName(named) : undefined) ?? id;
  const user: User = { id, name };
  if (info !== undefined) user.info = info;
  return user;
}

export function mountPusher(app: Hono<AppEnv>, deps: AppDeps): void {
  const apps = deps.config.pusherApps;
  app.get("/app/:key", (c) => {
    if (apps.length === 0) return jsonError(c, "not_found", "No Pusher apps: set ROOMCAST_PUSHER_APPS");
    const found = apps.find((a) => a.key === c.req.param("key"));
    return acceptSocket(c, deps, new PusherKind(deps, found, c.req.query("protocol")));
  });
  mountPusherApi(app, deps);
}
