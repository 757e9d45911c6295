/**
 * One connected peer as the hub tracks it: its room subscriptions with the last offset each
 * has delivered, publishes awaiting their ack, its rate limits, liveness, and a serial queue so
 * that its frames take effect in the order they were sent. Sending goes through `send*`, which
 * enforces the per-connection send-queue cap (close 4008) instead of buffering without bound.
 */
import { roomAllowed } from "./auth.ts";
import type { Budget } from "./budgets.ts";
import type { Clock } from "./clock.ts";
import type { LimitsConfig } from "./config.ts";
import { FloodGuard, TokenBucket } from "./limits.ts";
import type { Metrics } from "./metrics.ts";
import { Outbound, type Peer, QUEUED_MESSAGE_OVERHEAD } from "./peer.ts";
import {
  CloseCode,
  type ErrorCode,
  errorFields,
  type ProtocolError,
  type Ref,
  type ServerFrame,
  type StoredMessage,
  type User,
} from "./protocol.ts";

export interface Subscription {
  readonly room: string;
  /** The epoch and offset of the last message this connection got (or was acked) in the room. */
  epoch: string;
  offset: number;
  /** While a recovering join reads the store, live messages wait here. */
  held: StoredMessage[] | undefined;
  /** The user as a member of this room, where it differs from the connection's (the app's backend
   * gave it info for this room). */
  as?: User;
}

interface PendingAck {
  id: string;
  room: string;
  ref: Ref | undefined;
  /** Set once the store has the message. */
  message: StoredMessage | undefined;
  appended: Promise<unknown>;
  /** The app's backend replaced the data: the ack says what was stored. */
  replaced: boolean;
}

/** What every connection of a hub shares (one object, not one per connection). */
export interface ConnectionContext {
  limits: LimitsConfig;
  clock: Clock;
  metrics: Metrics;
  onClose?: (connection: Connection) => void;
}

/** What a connection's credentials allow. */
export interface Grant {
  /** Room names or prefixes ending in `*` this connection may join; `undefined` = any. */
  rooms?: string[] | undefined;
  /** When the connection's token expires (ms since epoch). */
  expiresAt?: number | undefined;
  /** Whose budgets its publishes and signals spend (lib/budgets.ts): a user, or a guest address. */
  principal?: string | undefined;
  /** A guest's identity token, told in `welcome`. */
  guest?: string | undefined;
  /** Whether it counts in presence and member events when it joins (false: an SSE reader that did
   * not ask to be a member). @default true */
  member?: boolean | undefined;
  /** The transport it came by (`ws`, `sse`, `socketio`…), as the dashboard counts it. */
  transport?: string | undefined;
}

/** Frames that may wait while an earlier frame of the same connection is still being handled. */
const MAX_BACKLOG = 1024;
/** Live messages that may wait for a recovering join's replay to be sent. */
const MAX_HELD = 10_000;
/** How often (ms) the send queue is measured against its cap. */
const QUEUE_CHECK_MS = 10;
/** How long a replay waits for a connection to take the previous part. */
const DRAIN_TIMEOUT_MS = 30_000;
/** Bad frames (malformed, too large) a connection may send per window before it is closed (1008). */
const BAD_FRAMES_BURST = 50;
const BAD_FRAMES_WINDOW_MS = 10_000;

/** An idle connection should cost little memory: limits and queues are made on first use. */
export class Connection {
  readonly peer: Peer;
  readonly rooms = new Map<string, Subscription>();
  /** Changed only by `Hub.grant` (a STOMP CONNECT that brings its token after the upgrade). */
  allowedRooms: string[] | undefined;
  expiresAt: number | undefined;
  /** Counts in presence and member events (an SSE reader does not, unless it asks). */
  readonly member: boolean;
  /** The transport it came by, and when it connected (ms). */
  readonly transport: string;
  readonly openedAt: number;
  /** When the last frame came from the peer, and when the last one went to it (ms). */
  lastSeen: number;
  lastSent: number;
  /** When the last heartbeat ping went out (ms); one after `lastSeen` is unanswered. */
  pingedAt = -Infinity;
  closed = false;
  /** Publishes waiting for their ack, in publish order: the first `#ackCount` slots. Usually
   * one or none, so an array whose slots are reused: a Map, or an array that grows and shrinks,
   * reallocated its storage on every publish. Made on the first publish. */
  #acks: (PendingAck | undefined)[] | undefined;
  #ackCount = 0;
  readonly #options: ConnectionContext;
  #backlog: (() => void | Promise<void>)[] | undefined;
  #busy = false;
  /** When the send queue was last measured, and what was sent since (estimated as `queuedBytes`). */
  #checkedAt = -Infinity;
  #sentSinceCheck = 0;
  #publishes: TokenBucket | undefined;
  #signals: TokenBucket | undefined;
  #joins: TokenBucket | undefined;
  /** The principal's budget, shared with its other connections (set by the hub). */
  budget: Budget | undefined;
  #flood: FloodGuard | undefined;
  #badFrames: TokenBucket | undefined;

  constructor(peer: Peer, context: ConnectionContext, grant: Grant = {}) {
    this.peer = peer;
    this.#options = context;
    this.allowedRooms = grant.rooms;
    this.expiresAt = grant.expiresAt;
    this.member = grant.member ?? true;
    this.transport = grant.transport ?? "";
    this.openedAt = this.lastSeen = this.lastSent = context.clock.now();
  }

  get publishes(): TokenBucket {
    const { limits, clock } = this.#options;
    return this.#publishes ??= new TokenBucket(limits.publishBurst, limits.publishWindowMs, clock);
  }

  get signals(): TokenBucket {
    const { limits, clock } = this.#options;
    return this.#signals ??= new TokenBucket(limits.signalBurst, limits.publishWindowMs, clock);
  }

  get joins(): TokenBucket {
    const { limits, clock } = this.#options;
    return this.#joins ??= new TokenBucket(limits.joinBurst, limits.joinWindowMs, clock);
  }

  get badFrames(): TokenBucket {
    return this.#badFrames ??= new TokenBucket(BAD_FRAMES_BURST, BAD_FRAMES_WINDOW_MS, this.#options.clock);
  }

  /** Counts a refused request; true once there were `floodStrikes` in a row (the guard is made
   * on the first refusal: a well-behaved connection never holds one). */
  strike(): boolean {
    return (this.#flood ??= new FloodGuard(this.#options.limits.floodStrikes)).strike();
  }

  /** A request was allowed: the refusals in a row start again. */
  forgive(): void {
    this.#flood?.forgive();
  }

  get id(): string {
    return this.peer.id;
  }

  mayJoin(room: string): boolean {
    return roomAllowed(this.allowedRooms, room);
  }

  /** Runs `task` after every earlier task of this connection has finished. */
  serially(task: () => void | Promise<void>): boolean {
    // A closed connection does nothing more (it answers nobody).
    if (this.closed) return true;
    if (this.#busy) {
      this.#backlog ??= [];
      if (this.#backlog.length >= MAX_BACKLOG) return false;
      this.#backlog.push(task);
      return true;
    }
    this.#run(task);
    return true;
  }

  #run(task: () => void | Promise<void>): void {
    const result = task();
    if (!(result instanceof Promise)) return;
    this.#busy = true;
    result.finally(() => {
      this.#busy = false;
      if (this.closed) this.#backlog = undefined;
      while (!this.#busy && this.#backlog?.length) {
        const next = this.#backlog.shift();
        if (next) this.#run(next);
      }
    });
  }

  /** Sends text, unless the peer's backlog from before the last measurement is over the cap: then
   * the connection is closed with 4008 (it recovers on rejoin). */
  sendText(text: string | undefined, frame: ServerFrame): void {
    if (text === undefined || this.closed) return;
    // The queue is measured at most once per QUEUE_CHECK_MS, and what was sent since the last
    // measurement doesn't count against the cap: a burst (four hundred acks, say) is not a slow
    // consumer, a backlog older than that is.
    const now = this.#options.clock.now();
    // Nothing reaches a connection once its token has expired, not even until the next heartbeat.
    if (this.closeIfExpired(now)) return;
    if (now - this.#checkedAt >= QUEUE_CHECK_MS) {
      // An upper bound under the cap spares measuring.
      const cap = this.#options.limits.sendQueueBytes + this.#sentSinceCheck;
      const slow = (this.peer.queuedAtMost ?? Infinity) > cap && this.peer.queuedBytes > cap;
      this.#checkedAt = now;
      this.#sentSinceCheck = 0;
      if (slow) return this.#dropSlow("send queue over its cap");
    }
    this.#sentSinceCheck += text.length + QUEUED_MESSAGE_OVERHEAD;
    this.lastSent = now;
    this.peer.send(text, frame);
    this.#options.metrics.deliveries.inc();
  }

  /** Sends a recovery in parts of half the send-queue cap, each once the previous one has mostly
   * drained, so that a large replay neither trips the cap nor buffers without bound. Live messages
   * wait in the subscription meanwhile. False when the connection was closed. */
  async replay(messages: StoredMessage[]): Promise<boolean> {
    const part = this.#options.limits.sendQueueBytes / 2;
    let sent = 0;
    for (const message of messages) {
      if (sent >= part) {
        this.lastSent = this.#options.clock.now();
        if (!await this.#drained(part / 2)) return false;
        sent = 0;
      }
      const out = new Outbound(message);
      const text = out.text(this.peer.encoder);
      if (text === undefined || this.closed) continue;
      this.peer.send(text, out.frame);
      this.#options.metrics.deliveries.inc();
      // Counted as the cap counts a queued message (its overhead too).
      sent += text.length + QUEUED_MESSAGE_OVERHEAD;
    }
    // The last part was not waited for: like a burst, it does not count against the cap at the next
    // measurement (a reader that keeps up is not a slow consumer).
    this.#sentSinceCheck += sent;
    this.lastSent = this.#options.clock.now();
    return !this.closed;
  }

  /** A frame can't be sent without exceeding the cap: it is dropped and the connection closed. */
  #dropSlow(why: string): void {
    this.#options.metrics.dropped.incLabel("slow_consumer");
    this.close(CloseCode.slowConsumer, `Slow consumer: ${why}`, "slow_consumer");
  }

  /** Waits until at most `bytes` are queued unsent; after `timeoutMs` closes the connection (4008). */
  async #drained(bytes: number, timeoutMs = DRAIN_TIMEOUT_MS): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && this.peer.queuedBytes > bytes) {
      if (Date.now() > deadline) {
        this.close(CloseCode.slowConsumer, "Slow consumer: replay did not drain", "slow_consumer");
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return !this.closed;
  }

  send(frame: ServerFrame): void {
    this.sendText(this.peer.encoder.encode(frame), frame);
  }

  sendOut(out: Outbound): void {
    this.sendText(out.text(this.peer.encoder), out.frame);
  }

  error(code: ErrorCode, message: string, ref?: Ref, backendCode?: number): void {
    this.#options.metrics.errors.incLabel(code);
    const frame: ServerFrame = { type: "error", ...errorFields(code, message, backendCode) };
    this.send(ref === undefined ? frame : { ...frame, ref });
  }

  /** Refuses a request with `error`'s code and message, and the app backend's numeric code where it
   * gave one (`backendCode`). */
  refuse(error: ProtocolError, ref?: Ref): void {
    this.error(error.code, error.message, ref, error.backendCode);
  }

  /** Registers a publish whose ack is due; `appended` settles once the store answered. */
  expectAck(id: string, room: string, ref: Ref | undefined, appended: Promise<unknown>, replaced = false): void {
    (this.#acks ??= [])[this.#ackCount++] = { id, room, ref, message: undefined, appended, replaced };
  }

  /** Settles once every publish to `room` sent so far has its offset from the store (or failed). */
  async publishesSettled(room: string): Promise<void> {
    const waiting = this.#pendingAcks().filter((p) => p.room === room && !p.message).map((p) => p.appended);
    await Promise.allSettled(waiting);
  }

  /** Records the message as the store numbered it; sends the ack now if the room will no longer deliver it. */
  stored(message: StoredMessage): void {
    const pending = this.#pendingAck(message.id);
    if (!pending) return;
    pending.message = message;
    if (!this.rooms.has(message.room)) this.#ack(message, pending);
  }

  /** A keyed publish that repeated an earlier one: acked at once with the first's message. */
  ackRepeat(id: string, first: StoredMessage): void {
    const pending = this.#pendingAck(id);
    if (pending) this.#ack(first, pending);
  }

  dropAck(id: string): void {
    const pending = this.#pendingAck(id);
    if (pending) this.#forgetAck(pending);
  }

  #pendingAck(id: string): PendingAck | undefined {
    const acks = this.#acks;
    for (let i = 0; i < this.#ackCount; i++) if (acks?.[i]?.id === id) return acks[i];
    return undefined;
  }

  #forgetAck(pending: PendingAck): void {
    const acks = this.#acks;
    if (!acks) return;
    let i = 0;
    while (i < this.#ackCount && acks[i] !== pending) i++;
    if (i === this.#ackCount) return;
    for (; i < this.#ackCount - 1; i++) acks[i] = acks[i + 1];
    acks[--this.#ackCount] = undefined;
  }

  #pendingAcks(): PendingAck[] {
    return (this.#acks?.slice(0, this.#ackCount) ?? []) as PendingAck[];
  }

  /** Delivers a room message in order and at most once; the publisher gets its ack instead. */
  deliver(sub: Subscription, message: StoredMessage, out: Outbound): void {
    if (sub.held) {
      if (sub.held.length >= MAX_HELD) this.#dropSlow("too many messages during replay");
      else sub.held.push(message);
      return;
    }
    if (message.epoch === sub.epoch && message.offset <= sub.offset) return;
    sub.epoch = message.epoch;
    sub.offset = message.offset;
    const pending = this.#ackCount > 0 ? this.#pendingAck(message.id) : undefined;
    if (pending) this.#ack(message, pending);
    else this.sendOut(out);
  }

  /** Ends a subscription's hold (a recovery's replay was sent, or the epoch's `joined`): the live
   * messages that waited meanwhile go out, in order. */
  release(sub: Subscription): void {
    const held = sub.held ?? [];
    sub.held = undefined;
    for (const message of held) this.deliver(sub, message, new Outbound(message));
  }

  /** Removes a subscription, sending the acks that were waiting on its deliveries. */
  unsubscribe(room: string): void {
    this.rooms.delete(room);
    for (const pending of this.#pendingAcks()) {
      if (pending.room === room && pending.message) this.#ack(pending.message, pending);
    }
  }

  #ack(message: StoredMessage, pending: PendingAck): void {
    this.#forgetAck(pending);
    const { room, id, offset, epoch } = message;
    const ack: ServerFrame = pending.replaced
      ? { type: "ack", room, id, offset, epoch, data: message.data }
      : { type: "ack", room, id, offset, epoch };
    this.send(pending.ref === undefined ? ack : { ...ack, ref: pending.ref });
  }

  /** The token expired: says so (`unauthorized`) and closes with 1008. */
  expire(): void {
    if (this.closed) return;
    const frame: ServerFrame = { type: "error", code: "unauthorized", message: "Token expired" };
    this.#options.metrics.errors.incLabel("unauthorized");
    const text = this.peer.encoder.encode(frame);
    if (text !== undefined) this.peer.send(text, frame);
    this.close(CloseCode.policy, "Token expired", "token_expired");
  }

  /** Whether the token has expired by `now`; changes nothing. */
  expiresBy(now: number): boolean {
    return this.expiresAt !== undefined && now >= this.expiresAt;
  }

  /** Closes the connection if its token has expired by `now` (see `expire`); whether it had. */
  closeIfExpired(now: number): boolean {
    if (!this.expiresBy(now)) return false;
    this.expire();
    return true;
  }

  close(code: number, reason: string, metric = "server"): void {
    if (this.closed) return;
    this.closed = true;
    this.#options.metrics.closes.incLabel(metric);
    try {
      this.peer.close(code, reason);
    } finally {
      this.#options.onClose?.(this);
    }
  }
}
