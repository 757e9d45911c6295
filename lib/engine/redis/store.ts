/**
 * Room history in Redis, for any number of roomcast processes (and their Workers) on one Redis.
 * A publish is one Lua script, as Centrifugo does it, so that storage and delivery can't disagree:
 * it reads (or makes) the room's epoch, increments its offset, appends the message to the room's
 * stream with an exact `MAXLEN` (the history limit) and the history's expiry, and publishes it on
 * the room's channel with its offset and epoch. Reads are `XRANGE`/`XREVRANGE` by offset (the
 * stream id of offset n is `n-0`).
 *
 * Keys (a room's share the hash tag `{room}`, so a Redis Cluster keeps them on one node):
 * - `rc:{room}:meta` hash: `epoch`, `offset` (the last handed out);
 * - `rc:{room}:log` stream: one entry per message, field `m` its JSON;
 * - `rc:{room}:idem:<length of the user id>:<user id>:<key>`: a publish's result under its publisher's
 *   idempotency key, for a day (HTTP's Idempotency-Key) or 10 minutes (a publish frame's key);
 * - `rc:{room}:ch`: the room's channel (sharded pub/sub, `SPUBLISH`);
 * - `rc:salt`: derives the epoch of rooms without history (`firstEpoch`).
 *
 * Guarantees: an ack (`append` resolving) means the script ran, so the message is in Redis (as
 * durable as Redis is configured: `appendonly yes` with `appendfsync always` for every ack to
 * survive a Redis crash). Offsets of a room increase by one with no holes: nothing between
 * numbering and storing can fail apart. While Redis is away every append fails with
 * `EngineUnavailable`, having stored nothing.
 */
import type { Clock } from "../../clock.ts";
import type { NewMessage, Position, StoredMessage } from "../../protocol.ts";
import { type RedisLink, roomKey, Script } from "./link.ts";
import {
  type Appended,
  type AppendOptions,
  firstEpoch,
  newEpoch,
  type OnDurable,
  type Page,
  type ReadOptions,
  type RetentionOptions,
  stamp,
  type Store,
} from "../store.ts";

/** How long an idempotency key remembers its publish. */
export const IDEMPOTENCY_TTL_S = 24 * 3600;

/**
 * KEYS: meta, log, idempotency key ("" for none). ARGV: the epoch for a room without one, the JSON
 * before the epoch, the JSON after the offset, MAXLEN, the history's expiry in ms (0: none), the
 * channel, the node (in the channel message, to drop one's own echo), the idempotency TTL (s).
 * Returns {epoch, offset, json} (or, for a key seen before, the first publish's JSON alone).
 */
const APPEND = new Script(`
if KEYS[3] ~= "" then
  local seen = redis.call("GET", KEYS[3])
  if seen then return {"seen", seen} end
end
local epoch = redis.call("HGET", KEYS[1], "epoch")
if not epoch then
  epoch = ARGV[1]
  redis.call("HSET", KEYS[1], "epoch", epoch)
end
local offset = redis.call("HINCRBY", KEYS[1], "offset", 1)
local json = ARGV[2] .. epoch .. '","offset":' .. offset .. ARGV[3]
redis.call("XADD", KEYS[2], "MAXLEN", "=", ARGV[4], offset .. "-0", "m", json)
if ARGV[5] ~= "0" then redis.call("PEXPIRE", KEYS[2], ARGV[5]) end
if KEYS[3] ~= "" then redis.call("SET", KEYS[3], json, "EX", ARGV[8]) end
redis.call("SPUBLISH", ARGV[6], "m" .. ARGV[7] .. "\\n" .. json)
return {epoch, tostring(offset), json}
`);

/** KEYS: meta, log. ARGV: the new epoch, the channel, the node. Drops the history, starts the epoch. */
const RESET = new Script(`
redis.call("DEL", KEYS[2])
redis.call("HSET", KEYS[1], "epoch", ARGV[1], "offset", 0)
redis.call("SPUBLISH", ARGV[2], "r" .. ARGV[3] .. "\\n" .. ARGV[1])
return ARGV[1]
`);

export interface RedisStoreOptions extends RetentionOptions {
  link: RedisLink;
  clock: Clock;
  /** This isolate's id, on the channel messages its publishes make. */
  node: string;
}

type Entry = [string, string[]];

export class RedisStore implements Store {
  readonly #link: RedisLink;
  readonly #options: RedisStoreOptions;
  #salt: Promise<string> | undefined;

  constructor(options: RedisStoreOptions) {
    this.#link = options.link;
    this.#options = options;
    // A Redis that comes back may have come back empty: its salt is read again (a new one makes
    // new epochs, so that no client takes new messages for ones it had).
    options.link.onBack(() => this.#salt = undefined);
  }

  get link(): RedisLink {
    return this.#link;
  }

  /** The salt of `firstEpoch`, made once for this Redis (`SET NX`). */
  #saltOf(): Promise<string> {
    this.#salt ??= (async () => {
      await this.#link.command(["SET", "rc:salt", newEpoch(), "NX"]);
      const salt = await this.#link.command<string | null>(["GET", "rc:salt"]);
      if (!salt) throw new Error("rc:salt is missing");
      return salt;
    })().catch((error) => {
      this.#salt = undefined;
      throw error;
    });
    return this.#salt;
  }

  async append(message: NewMessage, onDurable?: OnDurable, options?: AppendOptions): Promise<Appended> {
    try {
      const appended = await this.#append(message, options?.idempotencyKey, options?.idempotencyTtlMs);
      onDurable?.();
      return appended;
    } catch (error) {
      onDurable?.(error);
      throw error;
    }
  }

  async #append(message: NewMessage, key: string | undefined, ttlMs?: number): Promise<Appended> {
    const { room, id, from, data, ts } = message;
    // The JSON around the epoch and offset, in `stamp`'s key order: what every JSON receiver gets.
    const head = JSON.stringify({ type: "message", room, id }).slice(0, -1) + ',"epoch":"';
    const tail = "," + JSON.stringify({ from, data, ts }).slice(1);
    const { historyLimit, historyTtlMs } = this.#options;
    const reply = await this.#link.eval<string[]>(
      APPEND,
      [
        roomKey(room, "meta"),
        roomKey(room, "log"),
        key === undefined ? "" : roomKey(room, `idem:${from.id.length}:${from.id}:${key}`),
      ],
      [
        firstEpoch(await this.#saltOf(), room),
        head,
        tail,
        String(historyLimit),
        String(historyTtlMs ?? 0),
        roomKey(room, "ch"),
        this.#options.node,
        String(ttlMs === undefined ? IDEMPOTENCY_TTL_S : Math.max(1, Math.ceil(ttlMs / 1000))),
      ],
    );
    if (reply[0] === "seen") {
      const json = reply[1] as string;
      return { message: JSON.parse(json) as StoredMessage, json };
    }
    const [epoch, offset, json] = reply as [string, string, string];
    return { message: stamp(message, epoch, Number(offset)), json };
  }

  async position(room: string): Promise<Position> {
    const [epoch, offset] = await this.#link.command<(string | null)[]>([
      "HMGET",
      roomKey(room, "meta"),
      "epoch",
      "offset",
    ]);
    return { epoch: epoch ?? firstEpoch(await this.#saltOf(), room), offset: Number(offset ?? 0) };
  }

  async read(room: string, { after, before, limit }: ReadOptions): Promise<Page> {
    const log = roomKey(room, "log");
    const top = before === undefined ? "+" : before <= 1 ? undefined : `${before - 1}-0`;
    let entries: Entry[] = [];
    if (top !== undefined && limit > 0) {
      if (after !== undefined) {
        entries = await this.#link.command<Entry[]>(["XRANGE", log, `${after + 1}-0`, top, "COUNT", String(limit)]);
      } else {
        entries = (await this.#link.command<Entry[]>(["XREVRANGE", log, top, "-", "COUNT", String(limit)])).reverse();
      }
    }
    const position = await this.position(room);
    const ttl = this.#options.historyTtlMs;
    const oldest = ttl === undefined ? -Infinity : this.#options.clock.now() - ttl;
    const messages: StoredMessage[] = [];
    for (const [, fields] of entries) {
      const json = fields[fields.indexOf("m") + 1];
      if (json === undefined) continue;
      const message = JSON.parse(json) as StoredMessage;
      // A stream read before the room's reset finished belongs to the old epoch.
      if (message.epoch !== position.epoch || message.ts < oldest) continue;
      messages.push(message);
    }
    return { epoch: position.epoch, offset: position.offset, messages };
  }

  async reset(room: string): Promise<Position> {
    const epoch = await this.#link.eval<string>(RESET, [roomKey(room, "meta"), roomKey(room, "log")], [
      newEpoch(),
      roomKey(room, "ch"),
      this.#options.node,
    ]);
    return { epoch, offset: 0 };
  }

  /** Stored as `<until>\n<value>`: expired by this store's clock on reading, and by Redis after
   * `ttlMs` (`PX`) in any case. */
  async park(key: string, value: string, ttlMs: number): Promise<void> {
    const until = this.#options.clock.now() + ttlMs;
    const px = String(Math.max(1, Math.ceil(ttlMs)));
    await this.#link.command(["SET", `rc:parked:${key}`, `${until}\n${value}`, "PX", px]);
  }

  async unpark(key: string): Promise<string | undefined> {
    const parked = await this.#link.command<string | null>(["GETDEL", `rc:parked:${key}`]);
    const cut = parked?.indexOf("\n") ?? -1;
    if (!parked || cut < 0 || Number(parked.slice(0, cut)) <= this.#options.clock.now()) return undefined;
    return parked.slice(cut + 1);
  }

  close(): Promise<void> {
    // The link is the engine's: it closes it.
    return Promise.resolve();
  }
}
