/**
 * An in-process store: history in arrays, gone when the process ends. For tests and
 * `ROOMCAST_KV_PATH=:memory:`-style throwaway runs; one process only.
 */
import type { Clock } from "../../clock.ts";
import type { NewMessage, Position, StoredMessage } from "../../protocol.ts";
import { Idempotency } from "../idempotency.ts";
import {
  type Appended,
  type AppendOptions,
  firstEpoch,
  newEpoch,
  oldestKept,
  type OnDurable,
  type Page,
  type ReadOptions,
  type RetentionOptions,
  stamp,
  type Store,
} from "../store.ts";

interface RoomLog {
  epoch: string;
  offset: number;
  /** Ascending by offset; may hold a few more than the limit until the next compaction. */
  messages: StoredMessage[];
}

/** Values parked at most (`Store.park`): past it, expired ones and then the oldest go. */
const MAX_PARKED = 100_000;

export class MemoryStore implements Store {
  readonly #rooms = new Map<string, RoomLog>();
  readonly #parked = new Map<string, { value: string; until: number }>();
  readonly #retention: RetentionOptions;
  readonly #clock: Clock;
  readonly #idempotency: Idempotency;

  constructor(retention: RetentionOptions, clock: Clock) {
    this.#retention = retention;
    this.#clock = clock;
    this.#idempotency = new Idempotency(clock);
  }

  /** Derives the epoch of rooms without history (`firstEpoch`). */
  readonly #salt = newEpoch();

  #log(room: string): RoomLog {
    let log = this.#rooms.get(room);
    if (!log) {
      log = this.#empty(room);
      this.#rooms.set(room, log);
    }
    return log;
  }

  /** A room without history, as a read sees it: nothing is kept for it. */
  #empty(room: string): RoomLog {
    return { epoch: firstEpoch(this.#salt, room), offset: 0, messages: [] };
  }

  append(message: NewMessage, onDurable?: OnDurable, options?: AppendOptions): Promise<Appended> {
    const key = options?.idempotencyKey;
    if (key !== undefined) {
      return this.#idempotency.run(
        message.room,
        message.from.id,
        key,
        onDurable,
        (done) => this.append(message, done),
        options?.idempotencyTtlMs,
      );
    }
    let stored: Appended;
    try {
      stored = this.appendNow(message);
    } catch (error) {
      onDurable?.(error);
      return Promise.reject(error);
    }
    onDurable?.();
    return Promise.resolve(stored);
  }

  /** Throws for a message that can't be encoded, having numbered nothing. */
  appendNow(message: NewMessage): Appended {
    const log = this.#log(message.room);
    const stored = stamp(message, log.epoch, log.offset + 1);
    // Encoded once, here, like the KV store does: the fan-out sends it.
    const json = JSON.stringify(stored);
    log.offset += 1;
    log.messages.push(stored);
    const limit = this.#retention.historyLimit;
    if (log.messages.length > limit + 64) log.messages.splice(0, log.messages.length - limit);
    return { message: stored, json };
  }

  position(room: string): Promise<Position> {
    const { epoch, offset } = this.#rooms.get(room) ?? this.#empty(room);
    return Promise.resolve({ epoch, offset });
  }

  read(room: string, options: ReadOptions): Promise<Page> {
    const log = this.#rooms.get(room) ?? this.#empty(room);
    const floor = Math.max(oldestKept(log.offset, this.#retention.historyLimit), (options.after ?? 0) + 1);
    const ceiling = Math.min(log.offset, (options.before ?? Infinity) - 1);
    const ttl = this.#retention.historyTtlMs;
    const minTs = ttl === undefined ? -Infinity : this.#clock.now() - ttl;
    const kept = log.messages.filter((m) => m.offset >= floor && m.offset <= ceiling && m.ts >= minTs);
    const messages = options.after !== undefined ? kept.slice(0, options.limit) : kept.slice(-options.limit);
    return Promise.resolve({ epoch: log.epoch, offset: log.offset, messages });
  }

  reset(room: string): Promise<Position> {
    const log: RoomLog = { epoch: newEpoch(), offset: 0, messages: [] };
    this.#rooms.set(room, log);
    return Promise.resolve({ epoch: log.epoch, offset: 0 });
  }

  park(key: string, value: string, ttlMs: number): Promise<void> {
    const now = this.#clock.now();
    if (this.#parked.size >= MAX_PARKED) {
      for (const [k, { until }] of this.#parked) if (until <= now) this.#parked.delete(k);
      // Still full: the oldest parked goes first.
      for (const k of this.#parked.keys()) {
        if (this.#parked.size < MAX_PARKED) break;
        this.#parked.delete(k);
      }
    }
    this.#parked.delete(key);
    this.#parked.set(key, { value, until: now + ttlMs });
    return Promise.resolve();
  }

  unpark(key: string): Promise<string | undefined> {
    const parked = this.#parked.get(key);
    this.#parked.delete(key);
    return Promise.resolve(parked && parked.until > this.#clock.now() ? parked.value : undefined);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
