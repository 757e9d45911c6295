/**
 * A backplane for processes or instances that share nothing but a Deno KV (Deno Deploy's
 * instances; two processes on one KV file): stored messages need no carrying, since every
 * instance's rooms check the store for new ones; the other events (member joins and leaves,
 * signals, resets, directs, broadcasts) are written under short-lived keys, one list per room and
 * one for everybody, each list with a head key that every write to it changes.
 *
 * Two ways bring news, both for the rooms with subscribers here:
 * - **Watch** (the fast path): `kv.watch` on each room's meta key (the kv sequencer rewrites it
 *   with every message: `onStored` tells the hub the new head) and its events' head key, ten keys
 *   a call (watch.ts). Where watch sees other writers (Deno Deploy's KV; isolates of one
 *   process on a KV file), news arrives in about a commit's time.
 * - **Poll** (the truth's fallback): every `pollMs` each room's events are read, and the hub
 *   checks each room's head (its `pollMs`). This is all there is where watch can't see the other
 *   writers (processes on one local KV file), for rooms over `watchRooms`, and while a watch
 *   stream is down.
 *
 * Events are keyed by their writer's clock, so one can be committed after a later-keyed one was
 * read (a slow commit, a retried one, two instances in one millisecond, a clock a little behind).
 * Each read therefore goes back REORDER_MS before the newest event read and skips those already
 * read: an event committed up to that much out of order is still delivered, once. What an instance
 * misses while it is away, or an event later than that, is gone, as ephemeral events are.
 */
import type { Position } from "../../protocol.ts";
import type { Backplane, BackplaneEvent, BackplaneHandler, StoredHandler } from "../backplane.ts";
import { isMeta, metaKey, NS, retryLocked } from "./format.ts";
import { KvWatch } from "./watch.ts";

/** How long an event stays readable: long enough for every instance's next poll. */
const EVENT_TTL_MS = 30_000;
/** Events listed per KV call, and calls per read at most (a read that stops there goes on after it). */
const READ_LIMIT = 500;
const READ_PAGES = 20;
/** How far out of order (by their keys' time) events may commit and still be delivered. */
export const REORDER_MS = 2000;
const EVERYBODY = "*";

export interface KvBackplaneOptions {
  kv: Deno.Kv;
  node: string;
  /** How often (ms) the rooms with subscribers here are read for events. */
  pollMs: number;
  /** Rooms watched at most (`kv.watch`, ten keys a call); 0: poll only. @default 1000 */
  watchRooms?: number;
}

/** A room's events' head key: rewritten with every event written to the room. */
function headKey(room: string): Deno.KvKey {
  return [NS, "evh", room];
}

interface EventRecord {
  node: string;
  event: BackplaneEvent;
}

interface Listening {
  count: number;
  /** Events keyed before this (ms) were written before this instance listened: not delivered. */
  floor: number;
  /** The newest key time read (ms). */
  newest: number;
  /** The events read within REORDER_MS of `newest` (their key's time and id). */
  seen: Map<string, number>;
  /** Where a read that stopped at READ_PAGES stopped: the next one goes on from there. */
  resume: Deno.KvKey | undefined;
  reading: boolean;
  again: boolean;
}

export class KvBackplane implements Backplane {
  readonly messages = "store" as const;
  readonly node: string;
  readonly #kv: Deno.Kv;
  #handler: BackplaneHandler | undefined;
  #trouble: ((error: unknown) => void) | undefined;
  #stored: StoredHandler | undefined;
  /** Rooms (and EVERYBODY) read here: how many subscriptions, the last key read, and whether a
   * read is under way (and another is due after it). */
  readonly #rooms = new Map<string, Listening>();
  #counter = 0;
  readonly #timer: ReturnType<typeof setInterval>;
  #polling = false;
  readonly #watch: KvWatch;
  /** Reads under way, which `close` waits for. */
  readonly #reads = new Set<Promise<void>>();
  #closed = false;

  constructor({ kv, node, pollMs, watchRooms = 1000 }: KvBackplaneOptions) {
    this.#kv = kv;
    this.node = node;
    this.#watch = new KvWatch({
      kv,
      // Everybody's events have no meta key; a room has both.
      keysOf: (room) => room === EVERYBODY ? [headKey(room)] : [metaKey(room), headKey(room)],
      changed: (room, index, entry) => {
        if (room !== EVERYBODY && index === 0) this.#headMoved(room, entry.value);
        else this.#readSoon(room);
      },
      trouble: (error) => this.#trouble?.(error),
      // Everybody's list is watched as well as the rooms; nothing where the KV has no watch.
      maxSubjects: watchRooms > 0 && typeof kv.watch === "function" ? watchRooms + 1 : 0,
    });
    this.#listen(EVERYBODY);
    this.#timer = setInterval(() => this.#poll(), pollMs);
  }

  #headMoved(room: string, meta: unknown): void {
    if (!isMeta(meta)) return;
    const head: Position = { epoch: meta.epoch, offset: meta.offset };
    this.#stored?.(room, head);
  }

  #listen(room: string): void {
    const entry = this.#rooms.get(room);
    if (entry) entry.count++;
    else {
      const now = Date.now();
      this.#rooms.set(room, {
        count: 1,
        floor: now,
        newest: now,
        seen: new Map(),
        resume: undefined,
        reading: false,
        again: false,
      });
      this.#watch.add(room);
    }
  }

  publish(event: BackplaneEvent): void {
    this.#handler?.(event, this.node);
    // Stored messages reach the others through the store itself.
    if (event.kind === "message") return;
    const room = "room" in event ? event.room : EVERYBODY;
    const key = [NS, "ev", room, Date.now(), `${this.node}:${(++this.#counter).toString(36).padStart(8, "0")}`];
    const record: EventRecord = { node: this.node, event };
    retryLocked(() =>
      this.#kv.atomic()
        .set(key, record, { expireIn: EVENT_TTL_MS })
        .set(headKey(room), key[4], { expireIn: EVENT_TTL_MS })
        .commit()
    ).catch((error) => {
      if (!this.#closed) this.#trouble?.(error);
    });
  }

  async #poll(): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    try {
      for (const room of [...this.#rooms.keys()]) {
        const read = this.#readRoom(room);
        this.#reads.add(read);
        await read.finally(() => this.#reads.delete(read));
      }
    } finally {
      this.#polling = false;
    }
  }

  /** Reads the room's events now, without waiting for the read (`close` does). */
  #readSoon(room: string): void {
    const read = this.#readRoom(room).finally(() => this.#reads.delete(read));
    this.#reads.add(read);
  }

  /** Reads the room's events after the last one read; one read at a time per room (a call during
   * a read makes another follow it). */
  async #readRoom(room: string): Promise<void> {
    const entry = this.#rooms.get(room);
    if (!entry || this.#closed) return;
    if (entry.reading) {
      entry.again = true;
      return;
    }
    entry.reading = true;
    try {
      do {
        entry.again = false;
        const prefix = [NS, "ev", room];
        let start: Deno.KvKey = entry.resume ?? [...prefix, Math.max(entry.floor, entry.newest - REORDER_MS), ""];
        entry.resume = undefined;
        for (let page = 0; page < READ_PAGES; page++) {
          let listed = 0;
          for await (const { key, value } of this.#kv.list<EventRecord>({ prefix, start }, { limit: READ_LIMIT })) {
            listed++;
            start = [...key.slice(0, 4), `${key[4] as string}\u0000`];
            const at = key[3] as number;
            const id = `${at}:${key[4] as string}`;
            if (at < entry.floor || entry.seen.has(id)) continue;
            entry.seen.set(id, at);
            if (at > entry.newest) entry.newest = at;
            if (value.node !== this.node) this.#handler?.(value.event, value.node);
          }
          if (listed < READ_LIMIT) break;
          // More than READ_PAGES pages: the next read goes on from here.
          if (page === READ_PAGES - 1) {
            entry.resume = start;
            entry.again = true;
          }
        }
        for (const [id, at] of entry.seen) if (at < entry.newest - REORDER_MS) entry.seen.delete(id);
      } while (entry.again && this.#rooms.get(room) === entry && !this.#closed);
    } catch (error) {
      if (!this.#closed) this.#trouble?.(error);
    } finally {
      entry.reading = false;
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
    if (entry && --entry.count <= 0) {
      this.#rooms.delete(room);
      this.#watch.delete(room);
    }
  }

  onStored(handler: StoredHandler): void {
    this.#stored = handler;
  }

  onTrouble(handler: (error: unknown) => void): void {
    this.#trouble = handler;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#handler = undefined;
    this.#stored = undefined;
    await this.#watch.close();
    await Promise.all(this.#reads);
  }
}
