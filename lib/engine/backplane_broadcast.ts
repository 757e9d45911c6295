/**
 * A backplane over `BroadcastChannel`: the Workers of one process (and a process's isolates under
 * `deno serve --parallel`) hear each other. A room's events go on that room's channel, which only
 * isolates subscribed to the room listen to; directs and broadcasts go on one channel all listen
 * to. BroadcastChannel is a fast path that may drop (a receiver that lags) and never crosses
 * processes: the store is the truth, and the hub repairs gaps from it.
 */
import type { Backplane, BackplaneEvent, BackplaneHandler, RoomEvent } from "./backplane.ts";

/** What crosses the channel: the event and the node that published it. */
interface Envelope {
  node: string;
  event: BackplaneEvent;
}

export interface BroadcastOptions {
  /** This isolate's id. */
  node: string;
  /** Channel names start with it: one per server (several can run in one process, as in tests). */
  namespace: string;
}

/** Whether this runtime has BroadcastChannel (Deno does; some embedders don't). */
export function hasBroadcastChannel(): boolean {
  return typeof globalThis.BroadcastChannel === "function";
}

export class BroadcastChannelBackplane implements Backplane {
  readonly node: string;
  readonly #namespace: string;
  readonly #all: BroadcastChannel;
  /** The channels of the rooms this isolate is subscribed to, and how many subscriptions each. */
  readonly #rooms = new Map<string, { channel: BroadcastChannel; count: number }>();
  #handler: BackplaneHandler | undefined;
  #trouble: ((error: unknown) => void) | undefined;
  #closed = false;

  constructor({ node, namespace }: BroadcastOptions) {
    this.node = node;
    this.#namespace = namespace;
    this.#all = this.#listen(`${namespace}:all`);
  }

  #listen(name: string): BroadcastChannel {
    const channel = new BroadcastChannel(name);
    channel.onmessage = (e: MessageEvent<Envelope>) => {
      const { node, event } = e.data;
      if (node !== this.node) this.#handler?.(event, node);
    };
    channel.onmessageerror = (e) => this.#trouble?.(new Error(`a backplane event could not be read: ${e.type}`));
    return channel;
  }

  #roomChannel(room: string): string {
    return `${this.#namespace}:room:${room}`;
  }

  publish(event: BackplaneEvent): void {
    this.#handler?.(event, this.node);
    if (this.#closed) return;
    const envelope: Envelope = { node: this.node, event };
    try {
      if (!("room" in event)) return this.#all.postMessage(envelope);
      const room = (event as RoomEvent).room;
      const subscribed = this.#rooms.get(room)?.channel;
      if (subscribed) return subscribed.postMessage(envelope);
      // Not a room this isolate listens to (an HTTP publish): a channel just to say it.
      const channel = new BroadcastChannel(this.#roomChannel(room));
      channel.postMessage(envelope);
      channel.close();
    } catch (error) {
      // The event can't be sent (it can't be cloned): the others repair from the store.
      this.#trouble?.(error);
    }
  }

  onEvent(handler: BackplaneHandler): void {
    this.#handler = handler;
  }

  subscribe(room: string): void {
    const entry = this.#rooms.get(room);
    if (entry) entry.count++;
    else if (!this.#closed) this.#rooms.set(room, { channel: this.#listen(this.#roomChannel(room)), count: 1 });
  }

  unsubscribe(room: string): void {
    const entry = this.#rooms.get(room);
    if (!entry || --entry.count > 0) return;
    entry.channel.close();
    this.#rooms.delete(room);
  }

  onTrouble(handler: (error: unknown) => void): void {
    this.#trouble = handler;
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#all.close();
    for (const { channel } of this.#rooms.values()) channel.close();
    this.#rooms.clear();
    this.#handler = undefined;
    return Promise.resolve();
  }
}
