/**
 * A backplane over Redis pub/sub, for processes (and their isolates) on one Redis. Each room has a
 * channel, `rc:{room}:ch`, on sharded pub/sub (`SSUBSCRIBE`/`SPUBLISH`: in a Redis Cluster a
 * room's channel lives on its slot's node, and only that node carries it); a process subscribes to
 * the rooms it has members in (`subscribe`, counted), so a process with nobody in a room receives
 * nothing for it. Directs and broadcasts go on `rc:all`, which every process hears.
 *
 * Stored messages and resets are published by the store's own scripts (store.ts), in the
 * same step as they are stored: this backplane turns them into `message` and `reset` events and
 * publishes nothing for them. What pub/sub drops (a subscriber that reconnected) the hub repairs
 * from the stream, told by `onTrouble` and by its periodic check of rooms against the store.
 *
 * Member events are published by the presence's scripts (presence.ts), in the order the
 * changes took effect, and reach every node, this one too.
 *
 * On the wire: `m<node>\n<stored JSON>`, `r<node>\n<epoch>`, `e<{node, event} as JSON>`, `p<member
 * event as JSON>`.
 */
import {
  type Backplane,
  type BackplaneEvent,
  type BackplaneHandler,
  type RoomEvent,
  ToldTrouble,
} from "../backplane.ts";
import { Interest } from "../interest.ts";
import { type RedisLink, roomKey } from "./link.ts";
import type { StoredMessage } from "../../protocol.ts";

export const GLOBAL_CHANNEL = "rc:all";
/** The node member events come from: Redis itself (the presence scripts tell them). */
const PRESENCE = "redis";

export class RedisBackplane implements Backplane {
  readonly messages = "store" as const;
  readonly node: string;
  readonly #link: RedisLink;
  readonly #rooms = new Interest();
  /** Channel → room, for the rooms subscribed to. */
  readonly #channels = new Map<string, string>();
  /** The channels whose subscription Redis confirmed (node-redis makes them again after a reconnect). */
  readonly #subscribed = new Set<string>();
  #global = false;
  /** One listener each, the same function every time: node-redis keeps a set of them per channel,
   * so a subscription made twice still hands each message over once. */
  readonly #onGlobal = (message: string) => this.#arrived(message, undefined);
  readonly #onRoom = (message: string, channel: string) => this.#arrived(message, channel);
  #handler: BackplaneHandler | undefined;
  #trouble: ((error: unknown) => void) | undefined;
  #closed = false;
  readonly #unwatch: () => void;
  /** The subscription changes under way, in order. */
  #changes: Promise<void> = Promise.resolve();
  /** A sync that failed (Redis away) is tried again after this. */
  #retry: ReturnType<typeof setTimeout> | undefined;
  /** Syncs have failed since the last that did not (the first failure is reported, not each retry). */
  #failing = false;

  constructor(link: RedisLink, node: string) {
    this.#link = link;
    this.node = node;
    this.#sync();
    // Back after Redis went away: what was published meanwhile never reached us, and subscriptions
    // asked for meanwhile are still to be made.
    this.#unwatch = link.onBack(() => {
      this.#trouble?.(new ToldTrouble("the connection to Redis was lost and is back"));
      this.#sync();
    });
  }

  #arrived(payload: string, channel: string | undefined): void {
    const handler = this.#handler;
    if (!handler || this.#closed) return;
    try {
      const kind = payload[0];
      if (kind === "p") {
        // A member event from a presence script: for every node, this one too (see presence.ts).
        const event = JSON.parse(payload.slice(1)) as BackplaneEvent;
        if (event.kind !== "member" || !this.#rooms.has(event.room)) return;
        return handler(event, PRESENCE);
      }
      if (kind === "e") {
        const { node, event } = JSON.parse(payload.slice(1)) as { node: string; event: BackplaneEvent };
        if (node === this.node) return;
        if ("room" in event && !this.#rooms.has(event.room)) return;
        return handler(event, node);
      }
      const at = payload.indexOf("\n");
      const node = payload.slice(1, at);
      if (node === this.node || at < 0) return;
      const room = channel === undefined ? undefined : this.#channels.get(channel);
      if (room === undefined) return;
      if (kind === "m") {
        const json = payload.slice(at + 1);
        const message = JSON.parse(json) as StoredMessage;
        return handler({ kind: "message", room, message, json }, node);
      }
      if (kind === "r") return handler({ kind: "reset", room, epoch: payload.slice(at + 1) }, node);
    } catch (error) {
      this.#trouble?.(error);
    }
  }

  publish(event: BackplaneEvent): void {
    this.#handler?.(event, this.node);
    if (this.#closed || event.kind === "message" || event.kind === "reset") return;
    const payload = "e" + JSON.stringify({ node: this.node, event });
    const command = "room" in event
      ? ["SPUBLISH", roomKey((event as RoomEvent).room, "ch"), payload]
      : ["PUBLISH", GLOBAL_CHANNEL, payload];
    // An ephemeral event lost while Redis is away stays lost: nothing to repair it from.
    this.#link.command(command).catch(() => {});
  }

  onEvent(handler: BackplaneHandler): void {
    this.#handler = handler;
  }

  subscribe(room: string): void {
    if (!this.#rooms.add(room) || this.#closed) return;
    this.#channels.set(roomKey(room, "ch"), room);
    this.#sync();
  }

  unsubscribe(room: string): void {
    if (!this.#rooms.remove(room)) return;
    this.#channels.delete(roomKey(room, "ch"));
    this.#sync();
  }

  /** Makes Redis's subscriptions what is wanted now (everybody's channel, and the rooms'), one sync
   * after another; one that fails is tried again a second later, and when Redis is back. */
  #sync(): void {
    this.#changes = this.#changes.then(async () => {
      if (this.#closed) return;
      const subscriber = await this.#link.subscriber();
      if (!this.#global) {
        await subscriber.subscribe(GLOBAL_CHANNEL, this.#onGlobal);
        this.#global = true;
      }
      for (const channel of [...this.#subscribed]) {
        if (this.#channels.has(channel)) continue;
        await subscriber.sUnsubscribe(channel, this.#onRoom);
        this.#subscribed.delete(channel);
      }
      for (const channel of [...this.#channels.keys()]) {
        if (this.#subscribed.has(channel) || this.#closed) continue;
        await subscriber.sSubscribe(channel, this.#onRoom);
        this.#subscribed.add(channel);
      }
      this.#failing = false;
    }).catch((error) => {
      if (this.#closed) return;
      if (!this.#failing) this.#trouble?.(error);
      this.#failing = true;
      clearTimeout(this.#retry);
      this.#retry = setTimeout(() => this.#sync(), 1000);
    });
  }

  subscribed(): Promise<void> {
    return this.#changes;
  }

  onTrouble(handler: (error: unknown) => void): void {
    this.#trouble = handler;
  }

  close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#unwatch();
    this.#handler = undefined;
    return Promise.resolve();
  }
}
