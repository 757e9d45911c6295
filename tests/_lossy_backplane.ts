/**
 * A backplane that loses and reorders what crosses isolates, on purpose: of the events from other
 * nodes it drops every other one and holds every third back until the next one has gone through.
 * It proves the hub's gap repair (lib/room.ts): delivery completes from the store, in order, once.
 */
import type { Backplane, BackplaneEvent, BackplaneHandler, MessagePath } from "../lib/engine/backplane.ts";

export class LossyBackplane implements Backplane {
  readonly #inner: Backplane;
  #seen = 0;
  #held: { event: BackplaneEvent; node: string } | undefined;
  dropped = 0;
  reordered = 0;

  constructor(inner: Backplane) {
    this.#inner = inner;
  }

  get node(): string {
    return this.#inner.node;
  }

  get messages(): MessagePath {
    return this.#inner.messages;
  }

  publish(event: BackplaneEvent): void {
    this.#inner.publish(event);
  }

  onEvent(handler: BackplaneHandler): void {
    this.#inner.onEvent((event, node) => {
      if (node === this.node) return handler(event, node);
      const n = ++this.#seen;
      if (n % 2 === 0) {
        this.dropped++;
        return;
      }
      if (n % 3 === 0 && !this.#held) {
        this.#held = { event, node };
        return;
      }
      handler(event, node);
      const held = this.#held;
      this.#held = undefined;
      if (held) {
        this.reordered++;
        handler(held.event, held.node);
      }
    });
  }

  subscribe(room: string): void {
    this.#inner.subscribe(room);
  }

  unsubscribe(room: string): void {
    this.#inner.unsubscribe(room);
  }

  onTrouble(handler: (error: unknown) => void): void {
    this.#inner.onTrouble(handler);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
