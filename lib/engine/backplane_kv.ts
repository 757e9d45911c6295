/**
 * A backplane for processes or instances that share nothing but a Deno KV (Deno Deploy's
 * instances; two processes on one KV file): stored messages need no carrying, since every
 * instance's rooms check the store for new ones (the hub's `pollMs`); the other events (member
 * joins and leaves, signals, resets, directs, broadcasts) are written under short-lived keys, one
 * list per room and one for everybody, which each instance reads every `pollMs` for the rooms it
 * has subscribers in. So an event reaches another instance within about `pollMs`, and what an
 * instance misses while it is away is gone, as ephemeral events are (`kv.watch` would be quicker
 * on Deploy, but it takes ten keys a call and, locally, misses other processes' writes).
 */
import type { Backplane, BackplaneEvent, BackplaneHandler } from "./backplane.ts";
import { NS, retryLocked } from "./kv_format.ts";

/** How long an event stays readable: long enough for every instance's next poll. */
const EVENT_TTL_MS = 30_000;
/** Events read per room per poll, at most. */
const READ_LIMIT = 500;
const EVERYBODY = "*";

export interface KvBackplaneOptions {
  kv: Deno.Kv;
  node: string;
  /** How often (ms) the rooms with subscribers here are read for events. */
  pollMs: number;
}

interface Stored {
  node: string;
  event: BackplaneEvent;
}

export class KvBackplane implements Backplane {
  readonly node: string;
  readonly #kv: Deno.Kv;
  #handler: BackplaneHandler | undefined;
  #trouble: ((error: unknown) => void) | undefined;
  /** Rooms (and EVERYBODY) read here: how many subscriptions, and the last key read. */
  readonly #rooms = new Map<string, { count: number; after: Deno.KvKey }>();
  #counter = 0;
  readonly #timer: ReturnType<typeof setInterval>;
  #polling = false;

  constructor({ kv, node, pollMs }: KvBackplaneOptions) {
    this.#kv = kv;
    this.node = node;
    this.#listen(EVERYBODY);
    this.#timer = setInterval(() => this.#poll(), pollMs);
  }

  /** A key after every event written so far (by this clock), before every one to come. */
  #now(room: string): Deno.KvKey {
    return [NS, "ev", room, Date.now(), ""];
  }

  #listen(room: string): void {
    const entry = this.#rooms.get(room);
    if (entry) entry.count++;
    else this.#rooms.set(room, { count: 1, after: this.#now(room) });
  }

  publish(event: BackplaneEvent): void {
    this.#handler?.(event, this.node);
    // Stored messages reach the others through the store itself.
    if (event.kind === "message") return;
    const room = "room" in event ? event.room : EVERYBODY;
    const key = [NS, "ev", room, Date.now(), `${this.node}:${(++this.#counter).toString(36).padStart(8, "0")}`];
    retryLocked(() => this.#kv.set(key, { node: this.node, event } satisfies Stored, { expireIn: EVENT_TTL_MS }))
      .catch((error) => this.#trouble?.(error));
  }

  async #poll(): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    try {
      for (const [room, entry] of this.#rooms) {
        const prefix = [NS, "ev", room];
        for await (
          const { key, value } of this.#kv.list<Stored>({ prefix, start: entry.after }, { limit: READ_LIMIT })
        ) {
          if (key[3] === entry.after[3] && key[4] === entry.after[4]) continue;
          entry.after = key;
          if (value.node !== this.node) this.#handler?.(value.event, value.node);
        }
      }
    } catch (error) {
      this.#trouble?.(error);
    } finally {
      this.#polling = false;
    }
  }

  onEvent(handler: BackplaneHandler): void {
    this.#handler = handler;
  }

  subscribe(room: string): void {
    this.#listen(room);
  }

  unsubscribe(room: string): void {
    const entry = this.#rooms.get(room);
    if (entry && --entry.count <= 0) this.#rooms.delete(room);
  }

  onTrouble(handler: (error: unknown) => void): void {
    this.#trouble = handler;
  }

  close(): Promise<void> {
    clearInterval(this.#timer);
    this.#handler = undefined;
    return Promise.resolve();
  }
}
