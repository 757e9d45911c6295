/**
 * A backplane over `BroadcastChannel`: the Workers of one process (and a process's isolates under
 * `deno serve --parallel`) hear each other. BroadcastChannel is a fast path that may drop (a
 * receiver that lags) and never crosses processes: the store is the truth, and the hub repairs
 * gaps from it.
 *
 * In Deno every isolate with any channel open receives every message posted on any channel (names
 * are matched after arrival, channel by channel), and each arrival wakes the isolate's thread, which
 * costs far more CPU than what it carries (bench/RESULTS.md, "Figures behind the code"). So one
 * channel carries everything, what an isolate publishes in one turn of its event loop crosses as
 * one message, and rooms this isolate is not subscribed to are dropped on arrival (the interest
 * `subscribe` records).
 */
import type { Backplane, BackplaneEvent, BackplaneHandler } from "../backplane.ts";
import { Interest } from "../interest.ts";

/** What crosses the channel: the events one node published in one turn. */
interface Envelope {
  node: string;
  events: BackplaneEvent[];
}

export interface BroadcastOptions {
  /** This isolate's id. */
  node: string;
  /** The channel's name: one per server (several can run in one process, as in tests). */
  namespace: string;
}

/** Whether this runtime has BroadcastChannel (Deno does; some embedders don't). */
export function hasBroadcastChannel(): boolean {
  return typeof globalThis.BroadcastChannel === "function";
}

export class BroadcastChannelBackplane implements Backplane {
  readonly messages = "backplane" as const;
  readonly node: string;
  readonly #channel: BroadcastChannel;
  /** The rooms this isolate is subscribed to, and how many subscriptions each. */
  readonly #rooms = new Interest();
  #outbox: BackplaneEvent[] = [];
  #handler: BackplaneHandler | undefined;
  #trouble: ((error: unknown) => void) | undefined;
  #closed = false;

  constructor({ node, namespace }: BroadcastOptions) {
    this.node = node;
    const channel = new BroadcastChannel(namespace);
    channel.onmessage = (e: MessageEvent<Envelope>) => this.#arrived(e.data);
    channel.onmessageerror = (e) => this.#trouble?.(new Error(`a backplane event could not be read: ${e.type}`));
    this.#channel = channel;
  }

  #arrived({ node, events }: Envelope): void {
    if (node === this.node || !Array.isArray(events)) return;
    for (const event of events) {
      if ("room" in event && !this.#rooms.has(event.room)) continue;
      this.#handler?.(event, node);
    }
  }

  publish(event: BackplaneEvent): void {
    this.#handler?.(event, this.node);
    if (this.#closed) return;
    if (this.#outbox.length === 0) queueMicrotask(() => this.#flush());
    this.#outbox.push(event);
  }

  #flush(): void {
    const events = this.#outbox;
    this.#outbox = [];
    if (events.length === 0 || this.#closed) return;
    const envelope: Envelope = { node: this.node, events };
    try {
      this.#channel.postMessage(envelope);
    } catch (error) {
      // The events can't be sent (one can't be cloned): the others repair from the store.
      this.#trouble?.(error);
    }
  }

  onEvent(handler: BackplaneHandler): void {
    this.#handler = handler;
  }

  subscribe(room: string): void {
    this.#rooms.add(room);
  }

  unsubscribe(room: string): void {
    this.#rooms.remove(room);
  }

  onTrouble(handler: (error: unknown) => void): void {
    this.#trouble = handler;
  }

  close(): Promise<void> {
    this.#flush();
    this.#closed = true;
    this.#channel.close();
    this.#rooms.clear();
    this.#handler = undefined;
    return Promise.resolve();
  }
}
