/**
 * The hub: every connection and room of this isolate, and the one delivery path. Frames from any
 * transport become hub calls; a publish is appended to the store, handed to the backplane, and
 * comes back through `#onEvent` to be fanned out by its room, exactly like one from another
 * isolate. Knows nothing of sockets or HTTP: transports give it a `Peer`.
 */
import { Budgets } from "./budgets.ts";
import type { Clock } from "./clock.ts";
import { decodeClientFrame, exceedsBytes } from "./codec.ts";
import type { LimitsConfig } from "./config.ts";
import { Connection, type ConnectionContext, type Grant, type Subscription } from "./connection.ts";
import type { Backplane, BackplaneEvent } from "./engine/backplane.ts";
import type { Appended, OnDurable, Page, ReadOptions, Store } from "./engine/store.ts";
import { messageId } from "./ids.ts";
import type { Metrics } from "./metrics.ts";
import { Outbound, type Peer, rememberJson } from "./peer.ts";
import {
  type ClientFrame,
  CloseCode,
  FrameError,
  type Member,
  type NewMessage,
  type Position,
  type Ref,
  type ServerFrame,
  type StoredMessage,
  type User,
} from "./protocol.ts";
import { Room } from "./room.ts";

/** What a publish numbered at once waits for: nothing. */
const SETTLED: Promise<void> = Promise.resolve();

/** Messages per room kept in memory for fast recoveries (at most the history limit). */
const RECENT_MAX = 1000;
/** How long a room without local subscribers is kept, with its recent messages, for clients that
 * come back (a reconnect storm after a restart or an overload recovers from memory). */
const ROOM_LINGER_MS = 60_000;

export interface HubOptions {
  store: Store;
  backplane: Backplane;
  clock: Clock;
  metrics: Metrics;
  limits: LimitsConfig;
  /** Ping interval for "app" liveness peers (ms). */
  heartbeatMs: number;
  historyLimit: number;
  /** Age limit of history (ms); recoveries from memory respect it too. */
  historyTtlMs?: number | undefined;
  /** This isolate's id, sent in `welcome`. */
  node: string;
}

export interface RoomSummary {
  room: string;
  members: number;
  connections: number;
}

function withRef<T extends ServerFrame>(frame: T, ref: Ref | undefined): T {
  return ref === undefined ? frame : { ...frame, ref };
}

export class Hub {
  readonly node: string;
  readonly #options: HubOptions;
  readonly #connections = new Map<string, Connection>();
  /** Each user's connections: the connection itself while there is one (most users; an idle
   * connection costs a Set less), a Set from two on. */
  readonly #users = new Map<string, Connection | Set<Connection>>();
  readonly #rooms = new Map<string, Room>();
  readonly #context: ConnectionContext;
  /** Publish and signal budgets per user or guest address, across connections and HTTP. */
  readonly budgets: Budgets;
  #heartbeat: ReturnType<typeof setInterval> | undefined;

  constructor(options: HubOptions) {
    this.#options = options;
    this.node = options.node;
    const { limits, clock, metrics } = options;
    this.#context = { limits, clock, metrics, onClose: (c) => this.disconnect(c) };
    this.budgets = new Budgets({
      publishBurst: limits.userPublishBurst,
      signalBurst: limits.userSignalBurst,
      windowMs: limits.userWindowMs,
      clock,
    });
    options.backplane.subscribe((event) => this.#onEvent(event));
    options.metrics.gauge("roomcast_connections", "Open connections", () => this.#connections.size);
    options.metrics.gauge("roomcast_rooms", "Rooms with local subscribers", () => this.rooms().length);
    options.metrics.gauge(
      "roomcast_send_queue_bytes",
      "Memory held for unsent data (payload and per-message overhead), all connections",
      () => this.#queued().sum,
    );
    options.metrics.gauge(
      "roomcast_send_queue_max_bytes",
      "Memory held for unsent data, the largest connection",
      () => this.#queued().max,
    );
  }

  #queued(): { sum: number; max: number } {
    let sum = 0;
    let max = 0;
    for (const connection of this.#connections.values()) {
      const queued = connection.peer.queuedBytes;
      sum += queued;
      if (queued > max) max = queued;
    }
    return { sum, max };
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  /** Rooms held in memory: with local subscribers, or lingering with recent messages. */
  get roomsInMemory(): number {
    return this.#rooms.size;
  }

  // ── connections ─────────────────────────────────────────────────────────────

  connect(peer: Peer, grant: Grant = {}): Connection {
    const { metrics } = this.#options;
    const connection = new Connection(peer, this.#context, grant);
    if (grant.principal !== undefined) connection.budget = this.budgets.hold(grant.principal);
    this.#connections.set(peer.id, connection);
    const same = this.#users.get(peer.user.id);
    if (!same) this.#users.set(peer.user.id, connection);
    else if (same instanceof Set) same.add(connection);
    else this.#users.set(peer.user.id, new Set([same, connection]));
    metrics.connectionsOpened.inc();
    connection.send({
      type: "welcome",
      connection: peer.id,
      user: peer.user,
      heartbeat: this.#options.heartbeatMs,
      node: this.node,
    });
    return connection;
  }

  #connectionsOf(user: string): Connection[] {
    const same = this.#users.get(user);
    return same instanceof Set ? [...same] : same ? [same] : [];
  }

  /** Forgets a connection (its socket closed): leaves its rooms, member events included. */
  disconnect(connection: Connection): void {
    if (this.#connections.get(connection.id) !== connection) return;
    connection.closed = true;
    this.#connections.delete(connection.id);
    if (connection.budget) this.budgets.release(connection.budget);
    const user = connection.peer.user.id;
    const same = this.#users.get(user);
    if (same === connection) this.#users.delete(user);
    else if (same instanceof Set) {
      same.delete(connection);
      const [only] = same;
      if (same.size === 1 && only) this.#users.set(user, only);
    }
    for (const room of [...connection.rooms.keys()]) this.#unsubscribe(connection, room);
  }

  /** Counts an inbound text frame as a sign of life and checks its size (answering `too_large`). */
  inbound(connection: Connection, text: string): boolean {
    const now = this.#options.clock.now();
    if (connection.expiredAt(now)) return false;
    connection.lastSeen = now;
    this.#options.metrics.framesIn.inc();
    const max = this.#options.limits.maxFrameBytes;
    if (!exceedsBytes(text, max)) return true;
    this.refuse(connection, new FrameError("too_large", `Frame is larger than ${max} bytes`));
    return false;
  }

  /** One text frame of the JSON protocol. */
  receive(connection: Connection, text: string): void {
    if (!this.inbound(connection, text)) return;
    const frame = decodeClientFrame(text, this.#options.limits);
    if (frame instanceof FrameError) return this.refuse(connection, frame);
    this.submit(connection, frame);
  }

  /** Answers a bad frame with its error; a connection that sends more than 50 of them within 10 s
   * (`Connection.badFrames`) is closed with 1008: a client that keeps breaking the protocol is
   * broken or hostile, and each error costs a frame back. */
  refuse(connection: Connection, error: FrameError): void {
    connection.error(error.code, error.message, error.ref);
    if (!connection.badFrames.take()) connection.close(CloseCode.policy, "Too many bad frames", "bad_frames");
  }

  /** Handles a decoded frame after the connection's earlier frames. */
  submit(connection: Connection, frame: ClientFrame): void {
    const queued = connection.serially(() => this.#dispatch(connection, frame));
    if (!queued) connection.error("rate_limited", "Too many frames waiting to be handled", frame.ref);
  }

  /** Any sign of life from a connection whose transport has no frames to read (liveness). */
  touch(connection: Connection): void {
    connection.lastSeen = this.#options.clock.now();
  }

  #dispatch(connection: Connection, frame: ClientFrame): void | Promise<void> {
    switch (frame.type) {
      case "join":
        if (!this.#allow(connection, "joins", frame.ref)) return;
        return this.#guard(connection, frame.ref, this.join(connection, frame.room, frame.since, frame.ref));
      case "leave":
        if (!this.#allow(connection, "joins", frame.ref)) return;
        return this.#guard(connection, frame.ref, this.#leave(connection, frame.room, frame.ref));
      case "publish":
        return this.publish(connection, frame.room, frame.data, frame.ref);
      case "direct":
        return this.#direct(connection, frame.to, frame.data, frame.ref);
      case "signal":
        return this.#signal(connection, frame.room, frame.event, frame.data, frame.ref);
      case "history":
        return this.#guard(connection, frame.ref, this.#history(connection, frame));
      case "presence":
        return this.#presence(connection, frame.room, frame.ref);
      case "ping":
        return connection.send(withRef({ type: "pong" }, frame.ref));
      case "pong":
        return;
    }
  }

  #guard(connection: Connection, ref: Ref | undefined, work: Promise<void>): Promise<void> {
    return work.catch((error) => {
      console.error(`roomcast: request of ${connection.id} failed:`, error);
      connection.error("internal", "Internal error", ref);
    });
  }

  /** Takes a token from the connection's `kind` bucket and, for publishes and signals, from its
   * user's (or guest address's) budget; or answers `rate_limited` (and closes a flooding connection). */
  #allow(connection: Connection, kind: "publishes" | "signals" | "joins", ref: Ref | undefined): boolean {
    const shared = kind === "joins" ? undefined : connection.budget?.[kind];
    if (connection[kind].take() && (!shared || shared.take())) {
      connection.flood.forgive();
      return true;
    }
    const what = kind === "joins" ? "joins and leaves" : kind === "signals" ? "signals" : "messages";
    connection.error("rate_limited", `Too many ${what}: slow down`, ref);
    if (connection.flood.strike()) connection.close(CloseCode.flood, "Flooding", "flood");
    return false;
  }

  // ── rooms ───────────────────────────────────────────────────────────────────

  #room(name: string): Room {
    let room = this.#rooms.get(name);
    if (room) return room;
    const { store, historyLimit, limits } = this.#options;
    const recentMax = Math.min(historyLimit, RECENT_MAX);
    const created = new Room(name, { store, historyLimit, memberEventsMax: limits.memberEventsMax, recentMax });
    created.ready.catch(() => {
      if (this.#rooms.get(name) === created) this.#rooms.delete(name);
    });
    this.#rooms.set(name, room = created);
    return room;
  }

  /** Subscribes a connection; with `since`, replays what it missed before any live message. */
  async join(connection: Connection, name: string, since?: Position, ref?: Ref): Promise<void> {
    const { limits } = this.#options;
    if (connection.rooms.has(name)) return connection.error("bad_request", `Already joined room ${name}`, ref);
    if (connection.rooms.size >= limits.maxRooms) {
      return connection.error("bad_request", `Too many rooms: a connection may join ${limits.maxRooms}`, ref);
    }
    if (!connection.mayJoin(name)) return connection.error("forbidden", `Not allowed to join room ${name}`, ref);
    const room = this.#room(name);
    room.emptySince = Infinity;
    const sub: Subscription = { room: name, epoch: "", offset: 0, held: [] };
    connection.rooms.set(name, sub);
    room.subscribers.set(connection.id, connection);
    const user = connection.peer.user;
    if (room.addMember(user)) room.sendOthers({ type: "member", room: name, event: "join", user }, connection.id);
    try {
      const ttl = this.#options.historyTtlMs;
      const { epoch, offset, recovered, messages } = await room.recover(
        since,
        ttl === undefined ? -Infinity : this.#options.clock.now() - ttl,
      );
      if (connection.rooms.get(name) !== sub) return;
      sub.epoch = epoch;
      sub.offset = offset;
      const members = room.members(limits.memberEventsMax);
      connection.send(withRef({ type: "joined", room: name, epoch, offset, recovered, members }, ref));
      if (!await connection.replay(messages) || connection.rooms.get(name) !== sub) return;
      const held = sub.held ?? [];
      sub.held = undefined;
      for (const message of held) connection.deliver(sub, message, new Outbound(message));
    } catch (error) {
      if (connection.rooms.get(name) === sub) this.#unsubscribe(connection, name);
      throw error;
    }
  }

  /** Leaves after the connection's publishes to the room have their offsets, so their acks come before `left`. */
  async #leave(connection: Connection, name: string, ref: Ref | undefined): Promise<void> {
    if (!connection.rooms.has(name)) return connection.error("not_joined", `Not in room ${name}`, ref);
    await connection.publishesSettled(name);
    this.#unsubscribe(connection, name);
    connection.send(withRef({ type: "left", room: name }, ref));
  }

  #unsubscribe(connection: Connection, name: string): void {
    connection.unsubscribe(name);
    const room = this.#rooms.get(name);
    if (!room || !room.subscribers.delete(connection.id)) return;
    const user = connection.peer.user;
    if (room.removeMember(user)) room.sendOthers({ type: "member", room: name, event: "leave", user }, connection.id);
    if (room.subscribers.size > 0) return;
    // An empty room lingers (see `tick`), keeping its recent messages for clients that come back;
    // one that holds none goes at once (joining and leaving rooms leaves nothing behind).
    if (room.holdsRecent) room.emptySince = this.#options.clock.now();
    else this.#rooms.delete(name);
  }

  // ── publishing ──────────────────────────────────────────────────────────────

  /** Publishes for a joined connection. The ack comes in offset order with the room's messages. */
  publish(connection: Connection, room: string, data: unknown, ref?: Ref): void {
    if (!connection.rooms.has(room)) return connection.error("not_joined", `Join room ${room} before publishing`, ref);
    if (!this.#allow(connection, "publishes", ref)) return;
    const message = this.#message(room, connection.peer.user, data);
    let now: Appended | undefined;
    try {
      now = this.#options.store.appendNow?.(message);
    } catch {
      // `append` below fails the same way, and says so to the publisher.
    }
    if (now) {
      // Numbered at once (this process sequences): delivered now, no promise to wait for.
      connection.expectAck(message.id, room, ref, SETTLED);
      this.#published(now);
      connection.stored(now.message);
      return;
    }
    const appended = this.#append(message);
    connection.expectAck(message.id, room, ref, appended);
    appended.then(
      (stored) => connection.stored(stored),
      (error) => {
        connection.dropAck(message.id);
        console.error(`roomcast: storing a message of ${connection.id} in ${room} failed:`, error);
        connection.error("internal", "Message could not be stored", ref);
      },
    );
  }

  /** Publishes on behalf of a backend (HTTP API); resolves once the message is stored. */
  async publishAs(room: string, data: unknown, from: User): Promise<StoredMessage> {
    const durable = Promise.withResolvers<void>();
    durable.promise.catch(() => {});
    const stored = await this.#append(this.#message(room, from, data), (error) => {
      if (error === undefined) durable.resolve();
      else durable.reject(error);
    });
    await durable.promise;
    return stored;
  }

  #message(room: string, from: User, data: unknown): NewMessage {
    return { type: "message", room, id: messageId(), from, data, ts: this.#options.clock.now() };
  }

  /** Stores and delivers; resolves when delivered, which with the local sequencer comes before
   * the message is stored (`onDurable` says when). */
  async #append(message: NewMessage, onDurable?: OnDurable): Promise<StoredMessage> {
    const appended = await this.#options.store.append(message, onDurable);
    this.#published(appended);
    return appended.message;
  }

  #published({ message, json }: Appended): void {
    this.#options.metrics.messagesIn.inc();
    this.#options.backplane.publish({ kind: "message", message, json });
  }

  #direct(connection: Connection, to: string, data: unknown, ref: Ref | undefined): void {
    if (!this.#allow(connection, "publishes", ref)) return;
    // No `delivered` count: it would tell anybody whether a user id is online (only the HTTP API,
    // a backend's, answers it).
    const { id } = this.sendDirect(connection.peer.user, to, data);
    connection.send(withRef({ type: "ack", id }, ref));
  }

  /** Pushes to every connection of a user; `delivered` counts them. */
  sendDirect(from: User, to: string, data: unknown): { id: string; delivered: number } {
    const id = messageId();
    const delivered = this.#connectionsOf(to).length;
    this.#options.backplane.publish({ kind: "direct", to, id, from, data, ts: this.#options.clock.now() });
    return { id, delivered };
  }

  #signal(connection: Connection, room: string, event: string, data: unknown, ref: Ref | undefined): void {
    if (!connection.rooms.has(room)) return connection.error("not_joined", `Join room ${room} before signalling`, ref);
    if (!this.#allow(connection, "signals", ref)) return;
    const from = connection.peer.user;
    this.#options.backplane.publish({ kind: "signal", room, from, event, data, origin: connection.id });
  }

  /** Pushes to every connection. */
  broadcast(data: unknown): { id: string } {
    const id = messageId();
    this.#options.backplane.publish({ kind: "broadcast", id, data, ts: this.#options.clock.now() });
    return { id };
  }

  #onEvent(event: BackplaneEvent): void {
    switch (event.kind) {
      case "message":
        // Its JSON, made once by the store that numbered it, is what every JSON receiver is sent.
        rememberJson(event.message, event.json);
        this.#rooms.get(event.message.room)?.receive(event.message);
        return;
      case "signal": {
        const { room, from, data, origin } = event;
        this.#rooms.get(room)?.sendOthers({ type: "signal", room, from, event: event.event, data }, origin);
        return;
      }
      case "direct": {
        const out = new Outbound({ type: "direct", id: event.id, from: event.from, data: event.data, ts: event.ts });
        for (const connection of this.#connectionsOf(event.to)) connection.sendOut(out);
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

  // ── queries ─────────────────────────────────────────────────────────────────

  async #history(connection: Connection, frame: Extract<ClientFrame, { type: "history" }>): Promise<void> {
    const { room, ref } = frame;
    if (!connection.mayJoin(room)) return connection.error("forbidden", `Not allowed to read room ${room}`, ref);
    const page = await this.history(room, frame);
    connection.send(withRef({ type: "history", room, epoch: page.epoch, messages: page.messages }, ref));
  }

  history(room: string, options: ReadOptions): Promise<Page> {
    const { after, before, limit } = options;
    const read: ReadOptions = { limit };
    if (after !== undefined) read.after = after;
    if (before !== undefined) read.before = before;
    return this.#options.store.read(room, read);
  }

  #presence(connection: Connection, room: string, ref: Ref | undefined): void {
    if (!connection.mayJoin(room)) return connection.error("forbidden", `Not allowed to see room ${room}`, ref);
    connection.send(withRef({ type: "presence", room, members: this.presence(room) }, ref));
  }

  presence(room: string): Member[] {
    return this.#rooms.get(room)?.members() ?? [];
  }

  rooms(): RoomSummary[] {
    return [...this.#rooms.values()].filter((r) => r.subscribers.size > 0).map((r) => ({
      room: r.name,
      members: r.memberCount,
      connections: r.subscribers.size,
    }));
  }

  /** Drops a room's history; subscribers get a `joined` with the new epoch and `recovered: false`. */
  async reset(room: string): Promise<Position> {
    const position = await this.#options.store.reset(room);
    this.#options.backplane.publish({ kind: "reset", room, epoch: position.epoch });
    return position;
  }

  // ── liveness and lifecycle ──────────────────────────────────────────────────

  /** Pings "app" peers, closes those silent for two intervals (4000) and those whose token expired (1008). */
  tick(): void {
    const now = this.#options.clock.now();
    for (const [name, room] of this.#rooms) {
      if (room.subscribers.size === 0 && now - room.emptySince >= ROOM_LINGER_MS) this.#rooms.delete(name);
    }
    const ping = new Outbound({ type: "ping" });
    for (const connection of [...this.#connections.values()]) {
      if (connection.expiredAt(now)) continue;
      if (connection.peer.liveness === "app") {
        if (now - connection.lastSeen >= 2 * this.#options.heartbeatMs) {
          connection.close(CloseCode.heartbeat, "Heartbeat timeout", "heartbeat");
        } else {
          connection.sendOut(ping);
        }
      }
    }
  }

  /** Calls `tick()` every heartbeat interval until `close()`. */
  startHeartbeat(): void {
    this.#heartbeat ??= setInterval(() => this.tick(), this.#options.heartbeatMs);
  }

  /** Closes every connection (1001 by default) and stops the heartbeat. */
  close(code: number = CloseCode.goingAway, reason = "Server shutting down"): void {
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
    for (const connection of [...this.#connections.values()]) connection.close(code, reason, "shutdown");
  }
}
