/**
 * The hub: this isolate's connections and rooms, and the one delivery path. A publish is appended
 * to the store, handed to the backplane, and comes back through `#onEvent` to be fanned out by its
 * room, exactly like one from another isolate; member joins and leaves, signals, directs,
 * broadcasts and resets go the same way. Who is present is the engine's `Presence`, shared by every
 * isolate, which also tells the member events (in the order its changes take effect). Frames reach the hub through `frames` (lib/frames.ts). Knows nothing of sockets or
 * HTTP: transports give it a `Peer`.
 */
import { Budgets } from "./budgets.ts";
import type { SharedCounts } from "./shared_counts.ts";
import type { Clock } from "./clock.ts";
import type { LimitsConfig } from "./config.ts";
import { Connection, type ConnectionContext, type Grant, type Subscription } from "./connection.ts";
import { Connections } from "./connections.ts";
import { type Backplane, type BackplaneEvent, ToldTrouble } from "./engine/backplane.ts";
import type { Presence, RoomCount } from "./engine/presence.ts";
import {
  type Appended,
  type AppendOptions,
  EngineUnavailable,
  type OnDurable,
  type Page,
  type ReadOptions,
  recover,
  type Recovery,
  type Store,
} from "./engine/store.ts";
import { Frames, withRef } from "./frames.ts";
import { messageId } from "./ids.ts";
import { checkLiveness } from "./liveness.ts";
import type { Metrics } from "./metrics.ts";
import { type NodeFigures, Observer } from "./observe.ts";
import { type Asker, type BackendProxy, BackendRefusal } from "./proxy.ts";
import { Outbound, type Peer, rememberJson } from "./peer.ts";
import {
  CloseCode,
  type Member,
  type NewMessage,
  type Position,
  ProtocolError,
  type Ref,
  type StoredMessage,
  type User,
} from "./protocol.ts";
import { Room } from "./room.ts";

/** What a publish numbered at once waits for: nothing. */
const AT_ONCE: Promise<void> = Promise.resolve();

/** The hub ticks (liveness, lingering rooms) every heartbeat interval or every TICK_MS, whichever
 * is shorter, so that pings go out when each connection falls due rather than all at once. */
const TICK_MS = 1000;
const tickMs = (heartbeatMs: number) => Math.min(heartbeatMs, TICK_MS);
/** Pings one tick may always send, however few connections there are. */
const MIN_PINGS_PER_TICK = 1000;

/** Messages per room kept in memory for fast recoveries (at most the history limit). */
const RECENT_MAX = 1000;
/** How long a room without local subscribers is kept, with its recent messages, for clients that
 * come back (a reconnect storm after a restart or an overload recovers from memory). */
const ROOM_LINGER_MS = 60_000;

/** How long a publish frame's `key` is remembered: a client resends within a reconnect. */
export const PUBLISH_KEY_TTL_MS = 10 * 60_000;

export interface HubOptions {
  store: Store;
  backplane: Backplane;
  presence: Presence;
  clock: Clock;
  metrics: Metrics;
  limits: LimitsConfig;
  /** Ping interval for "app" liveness peers (ms). */
  heartbeatMs: number;
  /** How long a dropped connection stays a member (see `disconnect`). @default 0 */
  leaveGraceMs?: number;
  historyLimit: number;
  /** Age limit of history (ms); recoveries from memory respect it too. */
  historyTtlMs?: number | undefined;
  /** This isolate's id, sent in `welcome`. */
  node: string;
  /** Where the backplane may miss messages between isolates (a Worker replaced mid-stream, a poll or
   * watch of a shared KV between instances): how often (ms) rooms with subscribers check the
   * store's latest position and catch up. `undefined`: never (one isolate). */
  pollMs?: number | undefined;
  /** With Workers: the counts they share, so that users' and guests' budgets hold for the process. */
  shared?: SharedCounts | undefined;
  /** The process this isolate runs in, as the dashboard names it (`host:pid`). */
  process?: string | undefined;
  /** The app's backend, asked about each join and client publish where its URL is set (lib/proxy.ts). */
  proxy?: BackendProxy | undefined;
}

/** A connection as the dashboard lists it (docs/ADMIN.md). */
export interface ConnectionInfo {
  id: string;
  node: string;
  transport: string;
  name: string;
  rooms: string[];
  since: number;
}

export type { RoomCount as RoomSummary };

export class Hub {
  readonly node: string;
  /** Where client frames come in. */
  readonly frames: Frames;
  /** Publish and signal budgets per user or guest address, across connections and HTTP. */
  readonly budgets: Budgets;
  /** What the dashboard sees of this isolate (lib/observe.ts). */
  readonly observer: Observer;
  readonly #options: HubOptions;
  readonly #connections = new Connections();
  readonly #rooms = new Map<string, Room>();
  readonly #context: ConnectionContext;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  /** Presence leaves waiting out the leave grace, made at once on close. */
  readonly #graceful = new Map<ReturnType<typeof setTimeout>, () => void>();
  #closing = false;
  #poller: ReturnType<typeof setInterval> | undefined;
  readonly #updates = new Set<Promise<unknown>>();

  constructor(options: HubOptions) {
    this.#options = options;
    this.node = options.node;
    const { limits, clock, metrics, backplane } = options;
    this.#context = { limits, clock, metrics, onClose: (c) => this.disconnect(c) };
    this.frames = new Frames(this, { limits, clock, metrics });
    this.observer = new Observer({ node: options.node, process: options.process ?? "", clock, metrics });
    this.budgets = new Budgets({
      publishBurst: limits.userPublishBurst,
      signalBurst: limits.userSignalBurst,
      windowMs: limits.userWindowMs,
      clock,
      shared: options.shared,
    });
    backplane.onEvent((event, node) => this.#onEvent(event, node));
    backplane.onTrouble((error) => this.#trouble(error));
    backplane.onStored?.((room, head) => this.#rooms.get(room)?.headMoved(head));
    metrics.gauge("roomcast_connections", "Open connections", () => this.#connections.size);
    metrics.gauge(
      "roomcast_rooms",
      "Rooms with subscribers on this isolate (with Workers, summed: a room on two Workers counts twice)",
      () => this.#roomsWithSubscribers(),
    );
    metrics.gauge(
      "roomcast_send_queue_bytes",
      "Memory held for unsent data (payload and per-message overhead), all connections",
      () => this.#connections.queued().sum,
    );
    metrics.gauge(
      "roomcast_send_queue_max_bytes",
      "Memory held for unsent data, the largest connection",
      () => this.#connections.queued().max,
    );
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  /** Rooms held in memory: with local subscribers, or lingering with recent messages. */
  get roomsInMemory(): number {
    return this.#rooms.size;
  }

  /** This isolate's connections by transport, and its rooms with subscribers (the dashboard's). */
  figures(): NodeFigures {
    const transports: Record<string, number> = {};
    for (const connection of this.#connections.values()) {
      transports[connection.transport] = (transports[connection.transport] ?? 0) + 1;
    }
    return { connections: this.#connections.size, transports, rooms: this.#roomsWithSubscribers() };
  }

  /** The user's connections on this isolate, as the dashboard lists them. */
  connectionsOf(user: string): ConnectionInfo[] {
    return this.#connections.of(user).map((c) => ({
      id: c.id,
      node: this.node,
      transport: c.transport,
      name: c.peer.user.name,
      rooms: [...c.rooms.keys()],
      since: c.openedAt,
    }));
  }

  #roomsWithSubscribers(): number {
    let n = 0;
    for (const room of this.#rooms.values()) if (room.subscribers.size > 0) n++;
    return n;
  }

  // ── connections ─────────────────────────────────────────────────────────────

  connect(peer: Peer, grant: Grant = {}): Connection {
    const connection = new Connection(peer, this.#context, grant);
    if (grant.principal !== undefined) connection.budget = this.budgets.hold(grant.principal);
    this.#connections.add(connection);
    this.#track(this.#options.presence.connect(peer.user, peer.id));
    this.#options.metrics.connectionsOpened.inc();
    const welcome = {
      type: "welcome" as const,
      connection: peer.id,
      user: peer.user,
      heartbeat: this.#options.heartbeatMs,
      node: this.node,
    };
    connection.send(grant.guest === undefined ? welcome : { ...welcome, guest: grant.guest });
    return connection;
  }

  /** Forgets a connection (its socket closed): leaves its rooms, member events included. */
  disconnect(connection: Connection): void {
    if (!this.#connections.remove(connection)) return;
    connection.closed = true;
    if (connection.budget) this.budgets.release(connection.budget);
    // Its presence in each room goes after the leave grace: a user back within it (a reload, a
    // reconnect) is still a member then, so nobody is told a leave and a join.
    for (const room of [...connection.rooms.keys()]) {
      this.#unsubscribe(connection, room, this.#options.leaveGraceMs ?? 0);
    }
    this.#track(this.#options.presence.disconnect(connection.peer.user, connection.id));
  }

  /** Makes `connection` another user's (a Pusher client signing in, or subscribing to a presence
   * channel as the user its app signed): it leaves its rooms as the old user and joins them again as
   * the new one (member events included), and directs to the new user reach it. False when its
   * peer can't change users or it is closed. */
  reidentify(connection: Connection, user: User): boolean {
    const peer = connection.peer;
    if (!peer.become || connection.closed) return false;
    const old = peer.user;
    if (old.id === user.id && old.name === user.name && old.info === user.info) return true;
    this.#connections.remove(connection);
    peer.become(user);
    this.#connections.add(connection);
    const { presence } = this.#options;
    this.#track(presence.disconnect(old, connection.id).then(() => presence.connect(user, connection.id)));
    for (const room of connection.rooms.keys()) {
      this.#track(presence.leave(room, old, connection.id).then(() => presence.join(room, user, connection.id)));
    }
    return true;
  }

  /** Gives a connection that is in no room yet the user, rooms, expiry and budgets of a token that
   * came after it connected (a STOMP CONNECT's passcode, a WAMP ticket). False once it is in a
   * room, or closed. */
  grant(connection: Connection, user: User, grant: Grant): boolean {
    if (connection.rooms.size > 0 || connection.closed || !this.reidentify(connection, user)) return false;
    connection.allowedRooms = grant.rooms;
    connection.expiresAt = grant.expiresAt;
    if (grant.principal !== undefined) {
      if (connection.budget) this.budgets.release(connection.budget);
      connection.budget = this.budgets.hold(grant.principal);
    }
    return true;
  }

  /** Presence updates nobody waits for: failures are logged, and `presenceWritten` waits for them all. */
  #track(update: Promise<unknown>): void {
    const tracked = update.catch((error) => {
      // While the storage is away, every update fails alike: that is reported once, by /healthz.
      if (!(error instanceof EngineUnavailable)) console.error("roomcast: presence failed:", error);
    })
      .finally(() => this.#updates.delete(tracked));
    this.#updates.add(tracked);
  }

  /** Resolves once the presence updates under way are done (a clean stop leaves none behind). */
  async presenceWritten(): Promise<void> {
    while (this.#updates.size > 0) await Promise.all([...this.#updates]);
  }

  // ── rooms ───────────────────────────────────────────────────────────────────

  #room(name: string): Room {
    let room = this.#rooms.get(name);
    if (room) return room;
    const { store, historyLimit, presence, limits, backplane } = this.#options;
    // Its events from other isolates must reach this one while the room is here: subscribed before
    // the room reads its position, so that nothing numbered after that read passes it by.
    backplane.subscribe(name);
    const created = new Room(name, {
      store,
      historyLimit,
      recentMax: Math.min(historyLimit, RECENT_MAX),
      members: (room) => presence.members(room, limits.memberEventsMax),
    });
    created.ready.catch(() => {
      if (this.#rooms.get(name) === created) this.#dropRoom(name);
    });
    this.#rooms.set(name, room = created);
    return room;
  }

  #dropRoom(name: string): void {
    const room = this.#rooms.get(name);
    if (!room || !this.#rooms.delete(name)) return;
    room.stop();
    this.#options.backplane.unsubscribe(name);
  }

  /** Subscribes a connection; with `since`, replays what it missed before any live message. */
  async join(connection: Connection, name: string, since?: Position, ref?: Ref): Promise<void> {
    const { limits, presence, clock, historyTtlMs } = this.#options;
    // A join queued behind a leave may run after the connection closed: its rooms were left then,
    // and a member added now would stay for good.
    if (connection.closed) return;
    if (connection.rooms.has(name)) return connection.error("bad_request", `Already joined room ${name}`, ref);
    if (connection.rooms.size >= limits.maxRooms) {
      return connection.error("bad_request", `Too many rooms: a connection may join ${limits.maxRooms}`, ref);
    }
    if (!connection.mayJoin(name)) return connection.error("forbidden", `Not allowed to join room ${name}`, ref);
    // The app's backend decides, and may give the member info for this room.
    let as = connection.peer.user;
    const proxy = this.#options.proxy;
    if (proxy?.asks("subscribe")) {
      const verdict = await proxy.subscribe(asker(connection), name);
      if (connection.closed) return;
      if ("refused" in verdict) return refuse(connection, verdict.refused, ref);
      if (connection.rooms.has(name)) return connection.error("bad_request", `Already joined room ${name}`, ref);
      if ("ok" in verdict && verdict.ok.info !== undefined) as = { ...as, info: verdict.ok.info };
    }
    const room = this.#room(name);
    room.emptySince = Infinity;
    const sub: Subscription = { room: name, epoch: "", offset: 0, held: [] };
    if (as !== connection.peer.user) sub.as = as;
    connection.rooms.set(name, sub);
    room.subscribers.set(connection.id, connection);
    const user = as;
    try {
      // The presence tells the member join, if due, where the change takes effect.
      if (connection.member) await presence.join(name, user, connection.id);
      const minTs = historyTtlMs === undefined ? -Infinity : clock.now() - historyTtlMs;
      const { epoch, offset, recovered, messages } = await room.recover(since, minTs);
      if (connection.rooms.get(name) !== sub) return;
      sub.epoch = epoch;
      sub.offset = offset;
      const members = await presence.members(name, limits.memberEventsMax);
      if (connection.rooms.get(name) !== sub) return;
      connection.send(withRef({ type: "joined", room: name, epoch, offset, recovered, members }, ref));
      this.observer.note("join", name, user.id, connection.transport);
      if (!await connection.replay(messages) || connection.rooms.get(name) !== sub) return;
      connection.release(sub);
    } catch (error) {
      if (connection.rooms.get(name) === sub) this.#unsubscribe(connection, name);
      throw error;
    }
  }

  /** Leaves after the connection's publishes to the room have their offsets, so their acks come
   * before `left`. */
  async leave(connection: Connection, name: string, ref: Ref | undefined): Promise<void> {
    await connection.publishesSettled(name);
    this.#unsubscribe(connection, name);
    connection.send(withRef({ type: "left", room: name }, ref));
  }

  #unsubscribe(connection: Connection, name: string, graceMs = 0): void {
    const as = connection.rooms.get(name)?.as;
    connection.unsubscribe(name);
    const room = this.#rooms.get(name);
    if (!room || !room.subscribers.delete(connection.id)) return;
    this.observer.note("leave", name, connection.peer.user.id, connection.transport);
    if (connection.member) {
      const user = as ?? connection.peer.user;
      const leave = () => this.#track(this.#options.presence.leave(name, user, connection.id));
      if (graceMs > 0 && !this.#closing) {
        const timer = setTimeout(() => {
          this.#graceful.delete(timer);
          leave();
        }, graceMs);
        this.#graceful.set(timer, leave);
      } else leave();
    }
    if (room.subscribers.size > 0) return;
    // An empty room lingers (see `tick`), keeping its recent messages for clients that come back;
    // one that holds none goes at once (joining and leaving rooms leaves nothing behind).
    if (room.holdsRecent) room.emptySince = this.#options.clock.now();
    else this.#dropRoom(name);
  }

  // ── publishing ──────────────────────────────────────────────────────────────

  /** Publishes for a joined connection (lib/frames.ts checked the room and the rate). The ack
   * comes in offset order with the room's messages. With `key`, a publish its user already made
   * with that key in the room (a client resending what it could not tell was stored, after a
   * reconnect) stores nothing and is acked with the first one's offset. */
  publish(connection: Connection, room: string, data: unknown, ref?: Ref, key?: string): void | Promise<void> {
    const proxy = this.#options.proxy;
    if (proxy?.asks("publish")) return this.#proxied(proxy, connection, room, data, ref, key);
    this.#publish(connection, room, data, ref, key, false);
  }

  /** A publish the app's backend decides first: it may refuse it, replace its data (members and
   * history get the backend's, the publisher's ack says what was stored), or have it skip history
   * (sent to the room's other connections now, as a `signal` of event `message`: no offset, never
   * replayed; the publisher's ack has no offset). */
  async #proxied(
    proxy: BackendProxy,
    connection: Connection,
    room: string,
    data: unknown,
    ref: Ref | undefined,
    key: string | undefined,
  ): Promise<void> {
    const verdict = await proxy.publish(asker(connection), room, data);
    if (connection.closed) return;
    if ("refused" in verdict) return refuse(connection, verdict.refused, ref);
    if (!connection.rooms.has(room)) return connection.error("not_joined", `Join room ${room} before publishing`, ref);
    const answer = "ok" in verdict ? verdict.ok : undefined;
    const stored = answer?.data ? answer.data.value : data;
    if (answer?.skipHistory) {
      const id = messageId();
      this.observer.note("publish", room, connection.peer.user.id, connection.transport);
      this.#options.backplane.publish({
        kind: "signal",
        room,
        from: connection.peer.user,
        event: "message",
        data: stored,
        origin: connection.id,
      });
      const ack = { type: "ack" as const, room, id, stored: false as const };
      return connection.send(ref === undefined ? ack : { ...ack, ref });
    }
    this.#publish(connection, room, stored, ref, key, answer?.data !== undefined);
  }

  #publish(
    connection: Connection,
    room: string,
    data: unknown,
    ref: Ref | undefined,
    key: string | undefined,
    replaced: boolean,
  ): void {
    const message = this.#message(room, connection.peer.user, data);
    this.observer.note("publish", room, message.from.id, connection.transport);
    let now: Appended | undefined;
    try {
      if (key === undefined) now = this.#options.store.appendNow?.(message);
    } catch {
      // `append` below fails the same way, and says so to the publisher.
    }
    if (now) {
      // Numbered at once (this process sequences): delivered now, no promise to wait for.
      connection.expectAck(message.id, room, ref, AT_ONCE, replaced);
      this.#published(now);
      connection.stored(now.message);
      return;
    }
    const appended = this.#append(
      message,
      undefined,
      key === undefined ? undefined : { idempotencyKey: key, idempotencyTtlMs: PUBLISH_KEY_TTL_MS },
    );
    connection.expectAck(message.id, room, ref, appended, replaced);
    appended.then(
      // A repeat: the first publish's message, delivered already; acked now.
      (stored) => stored.id === message.id ? connection.stored(stored) : connection.ackRepeat(message.id, stored),
      (error) => {
        connection.dropAck(message.id);
        if (error instanceof EngineUnavailable) {
          const text = error.unanswered
            ? `Message not confirmed: the store did not answer in time; it may still be stored and delivered (id ${message.id})`
            : "Message not stored: the store is unavailable; try again";
          return connection.error("unavailable", text, ref);
        }
        console.error(`roomcast: storing a message of ${connection.id} in ${room} failed:`, error);
        connection.error("internal", "Message could not be stored", ref);
      },
    );
  }

  /** Publishes on behalf of a backend (HTTP API); resolves once the message is stored. With an
   * idempotency key, a retry gets the first publish's message and stores nothing. */
  async publishAs(room: string, data: unknown, from: User, options: AppendOptions = {}): Promise<StoredMessage> {
    const durable = Promise.withResolvers<void>();
    durable.promise.catch(() => {});
    const stored = await this.#append(this.#message(room, from, data), (error) => {
      if (error === undefined) durable.resolve();
      else durable.reject(error);
    }, options);
    await durable.promise;
    return stored;
  }

  #message(room: string, from: User, data: unknown): NewMessage {
    return { type: "message", room, id: messageId(), from, data, ts: this.#options.clock.now() };
  }

  /** Stores and delivers; resolves when delivered, which with the local sequencer comes before
   * the message is stored (`onDurable` says when). */
  async #append(message: NewMessage, onDurable?: OnDurable, options?: AppendOptions): Promise<StoredMessage> {
    const appended = await this.#options.store.append(message, onDurable, options);
    // A repeat (idempotency key) is the first publish's message: published then, not again.
    if (appended.message.id === message.id) this.#published(appended);
    return appended.message;
  }

  #published({ message, json }: Appended): void {
    this.#options.metrics.messagesIn.inc();
    this.observer.published(message.room, message.offset);
    this.#options.backplane.publish({ kind: "message", room: message.room, message, json });
  }

  /** Pushes to every connection of a user, on every isolate; returns the push's id. */
  direct(from: User, to: string, data: unknown): string {
    const id = messageId();
    this.#options.backplane.publish({ kind: "direct", to, id, from, data, ts: this.#options.clock.now() });
    return id;
  }

  /** `direct` for a backend, which also learns how many connections the user has. */
  async directAs(from: User, to: string, data: unknown): Promise<{ id: string; delivered: number }> {
    const delivered = await this.#options.presence.connections(to);
    return { id: this.direct(from, to, data), delivered };
  }

  /** An ephemeral event to the room's other connections (lib/frames.ts checked the rest). */
  signal(connection: Connection, room: string, event: string, data: unknown): void {
    const from = connection.peer.user;
    this.#options.backplane.publish({ kind: "signal", room, from, event, data, origin: connection.id });
  }

  /** Pushes to every connection. */
  broadcast(data: unknown): { id: string } {
    const id = messageId();
    this.#options.backplane.publish({ kind: "broadcast", id, data, ts: this.#options.clock.now() });
    return { id };
  }

  // ── names held once across nodes, and messages to a node (WAMP's procedures and calls) ──────

  /** Takes `name` for `holder` (a string naming the node and what holds it there) across every
   * node, through the presence: true when it is the only holder (a second one is refused and let
   * go). Names start with `#`, which no room name can: they are no rooms. A node that dies lets its
   * names go with its presence lease. */
  async claim(name: string, holder: string): Promise<boolean> {
    const user = { id: holder, name: holder };
    const { members } = await this.#options.presence.join(name, user, holder);
    if (members === 1) return true;
    await this.#options.presence.leave(name, user, holder);
    return false;
  }

  /** Lets `name` go (see `claim`). */
  unclaim(name: string, holder: string): void {
    this.#track(this.#options.presence.leave(name, { id: holder, name: holder }, holder));
  }

  /** Who holds `name`, on any node, or undefined. */
  async holder(name: string): Promise<string | undefined> {
    return (await this.#options.presence.members(name, 1))[0]?.id;
  }

  readonly #relays = new Map<string, (payload: unknown, from: string) => void>();

  /** Sends `payload` to node `to`'s handler of `topic` (this node's too: at once). Like every
   * backplane event it may be lost: the sender bounds its wait. */
  relay(to: string, topic: string, payload: unknown): void {
    this.#options.backplane.publish({ kind: "relay", to, topic, payload });
  }

  /** Sets the handler of relays of `topic` to this node. */
  onRelay(topic: string, handler: (payload: unknown, from: string) => void): void {
    this.#relays.set(topic, handler);
  }

  #admin: ((payload: unknown, node: string) => void) | undefined;

  /** Tells every node's dashboard service (routes/admin.ts) `payload`, this one's too, at once. */
  admin(payload: unknown): void {
    this.#options.backplane.publish({ kind: "admin", payload });
  }

  /** Sets the handler of `admin` payloads. */
  onAdmin(handler: (payload: unknown, node: string) => void): void {
    this.#admin = handler;
  }

  /** Closes every connection of `user`, on every node (4009: not to reconnect by itself). */
  terminate(user: string): void {
    this.#options.backplane.publish({ kind: "terminate", user });
  }

  #onEvent(event: BackplaneEvent, node: string): void {
    switch (event.kind) {
      case "relay":
        if (event.to === this.node) this.#relays.get(event.topic)?.(event.payload, node);
        return;
      case "terminate":
        for (const connection of this.#connections.of(event.user)) {
          connection.close(CloseCode.terminated, "Terminated by the app", "terminated");
        }
        return;
      case "message": {
        // Its JSON, made once by the store that numbered it, is what every JSON receiver is sent.
        rememberJson(event.message, event.json);
        const room = this.#rooms.get(event.room);
        if (!room) return;
        this.observer.latency(this.#options.clock.now() - event.message.ts);
        room.feed(event.message);
        return;
      }
      case "admin":
        this.#admin?.(event.payload, node);
        return;
      case "signal": {
        const { room, from, data, origin } = event;
        this.#rooms.get(room)?.sendOthers({ type: "signal", room, from, event: event.event, data }, origin);
        return;
      }
      case "member": {
        const { room, user, origin } = event;
        this.#rooms.get(room)?.sendOthers({ type: "member", room, event: event.event, user }, origin);
        return;
      }
      case "direct": {
        const out = new Outbound({ type: "direct", id: event.id, from: event.from, data: event.data, ts: event.ts });
        for (const connection of this.#connections.of(event.to)) connection.sendOut(out);
        return;
      }
      case "broadcast": {
        const out = new Outbound({ type: "broadcast", id: event.id, data: event.data, ts: event.ts });
        for (const connection of this.#connections.values()) connection.sendOut(out);
        return;
      }
      case "reset":
        this.#rooms.get(event.room)?.epochChanged(event.epoch);
        return;
    }
  }

  /** The backplane may have lost events: every room checks the store for what it missed. */
  #trouble(error: unknown): void {
    this.#options.metrics.backplaneTrouble.inc();
    if (!(error instanceof ToldTrouble)) {
      // An expected event (a receiver fell behind, a connection lost): its message, no stack trace.
      const why = error instanceof Error ? error.message : String(error);
      console.error(`roomcast: the backplane may have lost events (${why}); rooms catch up from the store`);
    }
    for (const room of this.#rooms.values()) room.catchUpNow();
  }

  // ── queries ─────────────────────────────────────────────────────────────────

  history(room: string, options: ReadOptions): Promise<Page> {
    const { after, before, limit } = options;
    const read: ReadOptions = { limit };
    if (after !== undefined) read.after = after;
    if (before !== undefined) read.before = before;
    return this.#options.store.read(room, read);
  }

  /** Every message of `room` after `since`, or `recovered: false` when some are no longer kept
   * (what a join with `since` replays; lib/engine/store.ts' `recover`). */
  recover(room: string, since: Position): Promise<Recovery> {
    return recover(this.#options.store, room, since, this.#options.historyLimit);
  }

  /** A value kept for a while where every isolate and process of the service finds it (`Store.park`). */
  park(key: string, value: string, ttlMs: number): Promise<void> {
    return this.#options.store.park(key, value, ttlMs);
  }

  /** The value parked under `key`, taken: no other taker gets it. */
  unpark(key: string): Promise<string | undefined> {
    return this.#options.store.unpark(key);
  }

  /** The room's members, on every isolate. */
  presence(room: string): Promise<Member[]> {
    return this.#options.presence.members(room);
  }

  /** Rooms with members, on every isolate. */
  async rooms(): Promise<RoomCount[]> {
    // Names held with `claim` are no rooms.
    return (await this.#options.presence.rooms()).filter((r) => !r.room.startsWith("#"));
  }

  /** Drops a room's history; subscribers get a `joined` with the new epoch and `recovered: false`. */
  async reset(room: string): Promise<Position> {
    const position = await this.#options.store.reset(room);
    this.#options.backplane.publish({ kind: "reset", room, epoch: position.epoch });
    return position;
  }

  // ── liveness and lifecycle ──────────────────────────────────────────────────

  /** Lets rooms nobody came back to go, pings "app" peers silent or not written to for an interval,
   * closes those silent for two intervals (4000) and those whose token expired (1008): see
   * lib/liveness.ts. */
  tick(): void {
    const now = this.#options.clock.now();
    for (const [name, room] of this.#rooms) {
      if (room.subscribers.size === 0 && now - room.emptySince >= ROOM_LINGER_MS) this.#dropRoom(name);
    }
    const { heartbeatMs } = this.#options;
    // Twice the pings a tick would send if every connection were due once per interval.
    const maxPings = Math.max(
      MIN_PINGS_PER_TICK,
      Math.ceil((2 * this.#connections.size * tickMs(heartbeatMs)) / heartbeatMs),
    );
    checkLiveness(this.#connections, now, heartbeatMs, maxPings);
  }

  /** Calls `tick()` every second (or heartbeat, if shorter) until `close()`, and checks rooms against the store
   * every `pollMs` where that is set. */
  startHeartbeat(): void {
    this.#heartbeat ??= setInterval(() => this.tick(), tickMs(this.#options.heartbeatMs));
    const pollMs = this.#options.pollMs;
    if (pollMs !== undefined) this.#poller ??= setInterval(() => this.checkRooms(), pollMs);
  }

  /** Every room with subscribers here checks the store for what the backplane did not bring. */
  checkRooms(): void {
    for (const room of this.#rooms.values()) {
      if (room.subscribers.size === 0) continue;
      room.checkHead().catch((error) => {
        if (!(error instanceof EngineUnavailable)) console.error(`roomcast: checking room ${room.name} failed:`, error);
      });
    }
  }

  /** Closes every connection (1001 by default) and stops the timers. */
  close(code: number = CloseCode.goingAway, reason = "Server shutting down"): void {
    this.#closing = true;
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    if (this.#poller !== undefined) clearInterval(this.#poller);
    this.#heartbeat = undefined;
    this.#poller = undefined;
    for (const connection of [...this.#connections.values()]) connection.close(code, reason, "shutdown");
    for (const room of this.#rooms.values()) room.stop();
    // Leaves waiting out their grace are made now: a stopping server keeps no member.
    for (const [timer, leave] of this.#graceful) {
      clearTimeout(timer);
      leave();
    }
    this.#graceful.clear();
  }
}

/** Who asks the app's backend: the connection, its transport and user. */
function asker(connection: Connection): Asker {
  return { client: connection.id, transport: connection.transport, user: connection.peer.user.id };
}

/** The backend refused (or could not be asked): an `error` frame with its numeric code, or, where it
 * asked for a disconnect, the error and a close with its code and reason. */
function refuse(connection: Connection, error: ProtocolError, ref: Ref | undefined): void {
  connection.refuse(error, ref);
  if (error instanceof BackendRefusal && error.disconnect) {
    connection.close(error.disconnect.code, error.disconnect.reason, "proxy_disconnect");
  }
}
