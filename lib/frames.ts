/**
 * What clients send, frame by frame: size and shape checks (a bad frame is answered, too many of
 * them close the connection), rate limits, and the hub call each frame stands for, one frame at a
 * time per connection, in the order they came.
 */
import { EngineUnavailable } from "./engine/store.ts";
import type { Clock } from "./clock.ts";
import { decodeClientFrame, decodeClientValue, exceedsBytes, refNear } from "./codec.ts";
import type { LimitsConfig } from "./config.ts";
import type { Connection } from "./connection.ts";
import type { Page, ReadOptions } from "./engine/store.ts";
import type { Member, Position } from "./protocol.ts";
import type { Metrics } from "./metrics.ts";
import { type ClientFrame, CloseCode, FrameError, type Ref, type ServerFrame } from "./protocol.ts";

export function withRef<T extends ServerFrame>(frame: T, ref: Ref | undefined): T {
  return ref === undefined ? frame : { ...frame, ref };
}

/** What a frame asks of the hub (lib/hub.ts), the operations behind each frame type. */
export interface FrameTarget {
  join(connection: Connection, room: string, since?: Position, ref?: Ref): Promise<void>;
  leave(connection: Connection, room: string, ref: Ref | undefined): Promise<void>;
  publish(connection: Connection, room: string, data: unknown, ref?: Ref, key?: string): void | Promise<void>;
  direct(from: Connection["peer"]["user"], to: string, data: unknown): string;
  signal(connection: Connection, room: string, event: string, data: unknown): void;
  history(room: string, options: ReadOptions): Promise<Page>;
  presence(room: string): Promise<Member[]>;
}

export interface FramesOptions {
  limits: LimitsConfig;
  clock: Clock;
  metrics: Metrics;
}

export class Frames {
  readonly #hub: FrameTarget;
  readonly #options: FramesOptions;

  constructor(hub: FrameTarget, options: FramesOptions) {
    this.#hub = hub;
    this.#options = options;
  }

  /** Counts an inbound text frame as a sign of life and checks its size (answering `too_large`, with
   * `ref` where the caller knows the frame's ref without parsing it: Socket.IO's acks). */
  inbound(connection: Connection, text: string | Uint8Array, ref?: Ref): boolean {
    const now = this.#options.clock.now();
    if (connection.closeIfExpired(now)) return false;
    connection.lastSeen = now;
    this.#options.metrics.framesIn.inc();
    const max = this.#options.limits.maxFrameBytes;
    if (typeof text === "string" ? !exceedsBytes(text, max) : text.length <= max) return true;
    const near = ref ?? (typeof text === "string" ? refNear(text) : undefined);
    this.refuse(connection, new FrameError("too_large", `Frame is larger than ${max} bytes`, near));
    return false;
  }

  /** Takes a publish from the connection's and its user's budgets, as a `publish` frame does; or
   * answers `rate_limited` with `ref` (a transport that publishes itself: STOMP's SEND). */
  allowPublish(connection: Connection, ref: Ref | undefined): boolean {
    return this.#allow(connection, "publishes", ref);
  }

  /** One text frame of the JSON protocol (`ref`: see `inbound`). */
  receive(connection: Connection, text: string, ref?: Ref): void {
    if (!this.inbound(connection, text, ref)) return;
    const frame = decodeClientFrame(text, this.#options.limits);
    if (frame instanceof FrameError) return this.refuse(connection, frame);
    this.submit(connection, frame);
  }

  /** A frame a transport built from what its own parser read (`decodeClientValue`); `text` is its
   * JSON, for the size check (`ref`: see `inbound`). */
  receiveValue(connection: Connection, value: Record<string, unknown>, text: string, ref?: Ref): void {
    if (!this.inbound(connection, text, ref)) return;
    const frame = decodeClientValue(value);
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

  #dispatch(connection: Connection, frame: ClientFrame): void | Promise<void> {
    const hub = this.#hub;
    const { ref } = frame;
    switch (frame.type) {
      case "join":
        if (!this.#allow(connection, "joins", ref)) return;
        return this.#guard(connection, ref, hub.join(connection, frame.room, frame.since, ref));
      case "leave":
        if (!connection.rooms.has(frame.room)) return connection.error("not_joined", `Not in room ${frame.room}`, ref);
        if (!this.#allow(connection, "joins", ref)) return;
        return this.#guard(connection, ref, hub.leave(connection, frame.room, ref));
      case "publish":
        if (!connection.rooms.has(frame.room)) {
          return connection.error("not_joined", `Join room ${frame.room} before publishing`, ref);
        }
        if (!this.#allow(connection, "publishes", ref)) return;
        {
          const published = hub.publish(connection, frame.room, frame.data, ref, frame.key);
          return published && this.#guard(connection, ref, published);
        }
      case "direct": {
        if (!this.#allow(connection, "publishes", ref)) return;
        // No `delivered` count: it would tell anybody whether a user id is online (only the HTTP
        // API, a backend's, answers it).
        const id = hub.direct(connection.peer.user, frame.to, frame.data);
        return connection.send(withRef({ type: "ack", id }, ref));
      }
      case "signal":
        if (!connection.rooms.has(frame.room)) {
          return connection.error("not_joined", `Join room ${frame.room} before signalling`, ref);
        }
        if (!this.#allow(connection, "signals", ref)) return;
        return hub.signal(connection, frame.room, frame.event, frame.data);
      case "history":
        if (!connection.mayJoin(frame.room)) {
          return connection.error("forbidden", `Not allowed to read room ${frame.room}`, ref);
        }
        return this.#guard(connection, ref, this.#history(connection, frame));
      case "presence":
        if (!connection.mayJoin(frame.room)) {
          return connection.error("forbidden", `Not allowed to see room ${frame.room}`, ref);
        }
        return this.#guard(connection, ref, this.#presence(connection, frame.room, ref));
      case "ping":
        return connection.send(withRef({ type: "pong" }, ref));
      case "pong":
        return;
    }
  }

  async #history(connection: Connection, frame: Extract<ClientFrame, { type: "history" }>): Promise<void> {
    const { room, ref } = frame;
    const page = await this.#hub.history(room, frame);
    connection.send(withRef({ type: "history", room, epoch: page.epoch, messages: page.messages }, ref));
  }

  async #presence(connection: Connection, room: string, ref: Ref | undefined): Promise<void> {
    connection.send(withRef({ type: "presence", room, members: await this.#hub.presence(room) }, ref));
  }

  #guard(connection: Connection, ref: Ref | undefined, work: Promise<void>): Promise<void> {
    return work.catch((error) => {
      if (error instanceof EngineUnavailable) {
        return connection.error("unavailable", "The store is unavailable: try again shortly", ref);
      }
      console.error(`roomcast: request of ${connection.id} failed:`, error);
      connection.error("internal", "Internal error", ref);
    });
  }

  /** Takes a token from the connection's `kind` bucket and, for publishes and signals, from its
   * user's (or guest address's) budget; or answers `rate_limited` (and closes a flooding connection). */
  #allow(connection: Connection, kind: "publishes" | "signals" | "joins", ref: Ref | undefined): boolean {
    const shared = kind === "joins" ? undefined : connection.budget?.[kind];
    if (connection[kind].take() && (!shared || shared.take())) {
      connection.forgive();
      return true;
    }
    const what = kind === "joins" ? "joins and leaves" : kind === "signals" ? "signals" : "messages";
    connection.error("rate_limited", `Too many ${what}: slow down`, ref);
    if (connection.strike()) connection.close(CloseCode.flood, "Flooding", "flood");
    return false;
  }
}
