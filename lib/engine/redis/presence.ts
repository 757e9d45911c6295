/**
 * Presence in Redis, for processes (and their isolates) on one Redis. A room's presence is one
 * hash, `rc:{room}:pres`, changed only by Lua scripts: a field per connection in the room
 * (`c:<node>:<connection>` → user), a count and a name per user (`u:<user>`, `n:<user>`), and
 * the room's totals (`#members`, `#conns`), so a join or a leave is one round trip and a count is
 * one field read whatever the room's size: listing members is the only thing that grows with a
 * room, and it stops at `max`. A user's connections for directs are `rc:user:{user}`.
 *
 * Member events are published on the room's channel by the script that made the change (`TELL`):
 * every node, this one included, hears them from there, in the order the changes took effect.
 *
 * Leases: each node renews its entry in the `rc:nodes` sorted set (score: when its lease ends, by
 * Redis' clock) every third of `leaseMs`, and remembers what it holds in `rc:node:{node}`. Every
 * node looks for lapsed leases every half lease; one of them (a lock decides) removes what the
 * dead node held, room by room, its scripts telling the member leaves. So a process
 * killed with `kill -9` leaves presence within about 1.5 × `leaseMs`, and its members' leaves are
 * told. When Redis comes back after being away (or restarted empty), every node writes again what
 * it holds (the scripts make that idempotent).
 */
import { type Member, memberOf, type User } from "../../protocol.ts";
import type { MemberChange, Presence, PresenceChange, RoomCount } from "../presence.ts";
import { hashTag, type RedisLink, roomKey, Script } from "./link.ts";

const NODES = "rc:nodes";
const ROOMS = "rc:rooms";
const userKey = (user: string) => `rc:user:${hashTag(user)}`;
const nodeKey = (node: string) => `rc:node:${hashTag(node)}`;

/** The member event a change calls for, published on the room's channel (KEYS[2]) by the script
 * that made the change, so that every node hears a room's member events in the order they took
 * effect (presence.ts `memberEvent` says when one is due). */
const TELL = `
local function tell(room, event, id, name, info, origin, changed, members, max, wanted)
  if wanted ~= "1" or changed ~= 1 then return end
  if event == "join" and (members > max or members <= 1) then return end
  if event == "leave" and (members >= max or members <= 0) then return end
  -- The user's info is JSON already (written by the node that joined it): put in as it is, not
  -- decoded and encoded again (cjson would turn an empty array into an object).
  local user = '{"id":' .. cjson.encode(id) .. ',"name":' .. cjson.encode(name)
  if info and info ~= "" then user = user .. ',"info":' .. info end
  redis.call("SPUBLISH", KEYS[2], 'p{"kind":"member","room":' .. cjson.encode(room) .. ',"event":' ..
    cjson.encode(event) .. ',"user":' .. user .. '},"origin":' .. cjson.encode(origin) .. '}')
end
`;

/** KEYS: the room's hash, its channel. ARGV: node, connection, user id, user name, room, max, tell
 * ("1" or "0"), the user's info as JSON ("" for none). → {changed, members}. */
const JOIN = new Script(
  TELL + `
local field = "c:" .. ARGV[1] .. ":" .. ARGV[2]
if redis.call("HSETNX", KEYS[1], field, ARGV[3]) == 0 then
  return {0, tonumber(redis.call("HGET", KEYS[1], "#members") or "0")}
end
redis.call("HINCRBY", KEYS[1], "#conns", 1)
local n = redis.call("HINCRBY", KEYS[1], "u:" .. ARGV[3], 1)
redis.call("HSET", KEYS[1], "n:" .. ARGV[3], ARGV[4])
if ARGV[8] ~= "" then redis.call("HSET", KEYS[1], "i:" .. ARGV[3], ARGV[8]) end
if n == 1 then
  local members = redis.call("HINCRBY", KEYS[1], "#members", 1)
  tell(ARGV[5], "join", ARGV[3], ARGV[4], ARGV[8], ARGV[2], 1, members, tonumber(ARGV[6]), ARGV[7])
  return {1, members}
end
return {0, tonumber(redis.call("HGET", KEYS[1], "#members") or "0")}
`,
);

/** KEYS: the room's hash, its channel. ARGV: node, connection, room, max, tell ("1" or "0").
 * → {changed, members, user id, user name, user info JSON or ""}. */
const LEAVE = new Script(
  TELL + `
local field = "c:" .. ARGV[1] .. ":" .. ARGV[2]
local user = redis.call("HGET", KEYS[1], field)
if not user then return {0, tonumber(redis.call("HGET", KEYS[1], "#members") or "0"), "", "", ""} end
local name = redis.call("HGET", KEYS[1], "n:" .. user) or user
local info = redis.call("HGET", KEYS[1], "i:" .. user) or ""
redis.call("HDEL", KEYS[1], field)
redis.call("HINCRBY", KEYS[1], "#conns", -1)
local n = redis.call("HINCRBY", KEYS[1], "u:" .. user, -1)
local members = tonumber(redis.call("HGET", KEYS[1], "#members") or "0")
if n <= 0 then
  redis.call("HDEL", KEYS[1], "u:" .. user, "n:" .. user, "i:" .. user)
  members = redis.call("HINCRBY", KEYS[1], "#members", -1)
end
if members <= 0 then redis.call("DEL", KEYS[1]) end
tell(ARGV[3], "leave", user, name, info, ARGV[2], n <= 0 and 1 or 0, members, tonumber(ARGV[4]), ARGV[5])
return {n <= 0 and 1 or 0, members, user, name, info}
`,
);

/** KEYS: rc:nodes. ARGV: node, lease (ms). Renews the node's lease by Redis' clock; 1 if the node
 * was not there (its first renewal, or it was swept as dead while it lived). */
const RENEW = new Script(`
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call("ZADD", KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
`);

/** KEYS: rc:nodes. The nodes whose lease has lapsed, by Redis' clock. */
const LAPSED = new Script(`
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", now)
`);

/** A user's info as the scripts keep it: JSON, or "" for none. */
function infoJson(user: User): string {
  return user.info === undefined ? "" : JSON.stringify(user.info) ?? "";
}

export interface RedisPresenceOptions {
  link: RedisLink;
  node: string;
  /** How long what this node holds outlives its last renewal. @default 15000 */
  leaseMs?: number;
  /** Rooms with more members than this tell no member events (`ROOMCAST_MEMBER_EVENTS_MAX`).
   * @default 100 */
  memberEventsMax?: number;
  /** Hears every change this node's scripts made (a user's first in, last out): see `PresenceChange`. */
  onChange?: ((change: PresenceChange) => void) | undefined;
}

type Held = { kind: "p"; room: string; user: User; connection: string } | {
  kind: "c";
  user: User;
  connection: string;
};

export class RedisPresence implements Presence {
  readonly #link: RedisLink;
  readonly #node: string;
  readonly #leaseMs: number;
  readonly #max: string;
  readonly #onChange: ((change: PresenceChange) => void) | undefined;
  /** What this node holds, to write again if Redis forgot it. */
  readonly #held = new Map<string, Held>();
  /** What this node let go while Redis could not be told (a leave or a disconnect that failed): to
   * remove once it is back, telling the member leaves then. */
  readonly #released = new Map<string, Held>();
  #renewed = false;
  readonly #timers: ReturnType<typeof setInterval>[];
  readonly #unwatch: () => void;
  #closed = false;

  constructor({ link, node, leaseMs = 15_000, memberEventsMax = 100, onChange }: RedisPresenceOptions) {
    this.#onChange = onChange;
    this.#link = link;
    this.#node = node;
    this.#leaseMs = leaseMs;
    this.#max = String(memberEventsMax);
    this.#timers = [
      setInterval(() => void this.#renew(), Math.max(50, Math.floor(leaseMs / 3))),
      setInterval(() => void this.#sweep(), Math.max(50, Math.floor(leaseMs / 2))),
    ];
    void this.#renew();
    this.#unwatch = link.onBack(() => void this.#reassert());
  }

  async #renew(): Promise<void> {
    try {
      const added = await this.#link.eval<number>(RENEW, [NODES], [this.#node, String(this.#leaseMs)]);
      // Swept as dead while alive (cut off longer than the lease without the connection dropping):
      // what it held was removed, so it is written again.
      if (added === 1 && this.#renewed) void this.#reassert(false);
      this.#renewed = true;
    } catch {
      // Redis is away: renewed when it is back.
    }
  }

  /** Removes what was let go while Redis was away, then writes again everything this node holds
   * (idempotent: the scripts skip what is there); what a leave lets go meanwhile is not written. */
  async #reassert(renew = true): Promise<void> {
    if (renew) await this.#renew();
    try {
      for (const [key, held] of [...this.#released]) {
        if (held.kind === "p") await this.#leave(held.room, held.connection);
        else await this.#disconnect(held.user, held.connection);
        this.#released.delete(key);
      }
      for (const [key, held] of [...this.#held]) {
        if (!this.#held.has(key)) continue;
        // Swept while alive, its leave told: its join is told again. (Back from Redis being away,
        // nothing was told: a Redis that came back empty is filled again silently.)
        if (held.kind === "p") await this.#join(held.room, held.user, held.connection, !renew);
        else await this.#connect(held.user, held.connection);
      }
    } catch {
      // Away again: the next return tries again.
    }
  }

  /** Removes what nodes whose lease lapsed held, telling their members' leaves. */
  async #sweep(): Promise<void> {
    if (this.#closed) return;
    try {
      const lapsed = await this.#link.eval<string[]>(LAPSED, [NODES], []);
      for (const dead of lapsed) {
        if (dead === this.#node) continue;
        const lock = await this.#link.command(["SET", `rc:sweep:${dead}`, this.#node, "NX", "PX", "30000"]);
        if (lock === null) continue;
        const entries = await this.#link.command<string[]>(["SMEMBERS", nodeKey(dead)]);
        for (const entry of entries) {
          const [kind, a, b] = JSON.parse(entry) as [string, string, string];
          if (kind === "p") {
            // Its members' leaves are told by the script.
            const [, members] = await this.#leaveScript(dead, a, b);
            if (members <= 0) await this.#unlist(a);
          } else {
            await this.#link.command(["HDEL", userKey(a), `${dead}:${b}`]);
          }
        }
        await this.#link.command(["DEL", nodeKey(dead)]);
        await this.#link.command(["ZREM", NODES, dead]);
      }
    } catch {
      // Redis is away, or a sweep of another node raced this one: the next sweep goes on.
    }
  }

  async #connect(user: User, connection: string): Promise<void> {
    await this.#link.command(["HSET", userKey(user.id), `${this.#node}:${connection}`, "1"]);
    await this.#link.command(["SADD", nodeKey(this.#node), JSON.stringify(["c", user.id, connection])]);
  }

  async connect(user: User, connection: string): Promise<void> {
    this.#held.set(`c\u0000${connection}`, { kind: "c", user, connection });
    await this.#connect(user, connection);
  }

  async #disconnect(user: User, connection: string): Promise<void> {
    await this.#link.command(["HDEL", userKey(user.id), `${this.#node}:${connection}`]);
    await this.#link.command(["SREM", nodeKey(this.#node), JSON.stringify(["c", user.id, connection])]);
  }

  async disconnect(user: User, connection: string): Promise<void> {
    const key = `c\u0000${connection}`;
    const held = this.#held.get(key);
    this.#held.delete(key);
    try {
      await this.#disconnect(user, connection);
    } catch (error) {
      if (held) this.#released.set(key, held);
      throw error;
    }
  }

  async connections(user: string): Promise<number> {
    return Number(await this.#link.command(["HLEN", userKey(user)]));
  }

  async #join(room: string, user: User, connection: string, tell = true): Promise<MemberChange> {
    const [changed, members] = await this.#link.eval<[number, number]>(
      JOIN,
      [roomKey(room, "pres"), roomKey(room, "ch")],
      [this.#node, connection, user.id, user.name, room, this.#max, tell ? "1" : "0", infoJson(user)],
    );
    await this.#link.command(["SADD", nodeKey(this.#node), JSON.stringify(["p", room, connection])]);
    if (changed === 1 && members === 1) await this.#link.command(["SADD", ROOMS, room]);
    if (changed === 1 && tell) {
      this.#onChange?.({ room, user, event: "join", members, occupancy: members === 1 ? "occupied" : "none" });
    }
    return { changed: changed === 1, members };
  }

  async join(room: string, user: User, connection: string): Promise<MemberChange> {
    this.#held.set(`p\u0000${room}\u0000${connection}`, { kind: "p", room, user, connection });
    return await this.#join(room, user, connection);
  }

  async #leave(room: string, connection: string): Promise<MemberChange> {
    const [changed, members] = await this.#leaveScript(this.#node, room, connection);
    await this.#link.command(["SREM", nodeKey(this.#node), JSON.stringify(["p", room, connection])]);
    if (members <= 0) await this.#unlist(room);
    return { changed: changed === 1, members: Math.max(0, members) };
  }

  async leave(room: string, _user: User, connection: string): Promise<MemberChange> {
    const key = `p\u0000${room}\u0000${connection}`;
    const held = this.#held.get(key);
    this.#held.delete(key);
    try {
      return await this.#leave(room, connection);
    } catch (error) {
      // Removed once Redis is back (its member leave told then).
      if (held) this.#released.set(key, held);
      throw error;
    }
  }

  /** Runs LEAVE for `node`'s `connection` in `room`, reporting a change (`onChange`). */
  async #leaveScript(node: string, room: string, connection: string): Promise<[number, number]> {
    const [changed, members, id, name, info] = await this.#link.eval<[number, number, string, string, string]>(
      LEAVE,
      [roomKey(room, "pres"), roomKey(room, "ch")],
      [node, connection, room, this.#max, "1"],
    );
    if (changed === 1 && this.#onChange) {
      const user: User = { id, name };
      if (info) user.info = JSON.parse(info);
      this.#onChange({
        room,
        user,
        event: "leave",
        members: Math.max(0, members),
        occupancy: members <= 0 ? "vacated" : "none",
      });
    }
    return [changed, members];
  }

  /** Takes an emptied room off the rooms list, unless a join (on any node) filled it meanwhile: a
   * join adds the room after its script ran, so a room joined before the check is listed again. */
  async #unlist(room: string): Promise<void> {
    await this.#link.command(["SREM", ROOMS, room]);
    const members = await this.#link.command<string | null>(["HGET", roomKey(room, "pres"), "#members"]);
    if (Number(members ?? 0) > 0) await this.#link.command(["SADD", ROOMS, room]);
  }

  async members(room: string, max = Infinity): Promise<Member[]> {
    const key = roomKey(room, "pres");
    const counts: [string, number][] = [];
    let cursor = "0";
    do {
      const [next, pairs] = await this.#link.command<[string, string[]]>([
        "HSCAN",
        key,
        cursor,
        "MATCH",
        "u:*",
        "COUNT",
        "1000",
      ]);
      cursor = next;
      for (let i = 0; i + 1 < pairs.length && counts.length < max; i += 2) {
        counts.push([(pairs[i] as string).slice(2), Number(pairs[i + 1])]);
      }
    } while (cursor !== "0" && counts.length < max);
    if (counts.length === 0) return [];
    counts.sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0);
    const fields = counts.flatMap(([id]) => [`n:${id}`, `i:${id}`]);
    const values = await this.#link.command<(string | null)[]>(["HMGET", key, ...fields]);
    return counts.map(([id, connections], i) => {
      const user: User = { id, name: values[2 * i] ?? id };
      const info = values[2 * i + 1];
      if (info) user.info = JSON.parse(info);
      return memberOf(user, connections);
    });
  }

  async rooms(): Promise<RoomCount[]> {
    const rooms = (await this.#link.command<string[]>(["SMEMBERS", ROOMS])).sort();
    // One request per room, all at once (the client pipelines them), not one round trip after another.
    const totals = await Promise.all(
      rooms.map((room) =>
        this.#link.command<(string | null)[]>(["HMGET", roomKey(room, "pres"), "#members", "#conns"])
      ),
    );
    const counts: RoomCount[] = [];
    rooms.forEach((room, i) => {
      const [members, connections] = totals[i] ?? [];
      if (Number(members ?? 0) > 0) {
        counts.push({ room, members: Number(members), connections: Number(connections ?? 0) });
      }
    });
    return counts;
  }

  close(): Promise<void> {
    // What this node holds stays until its lease lapses (a clean stop has left its rooms already).
    this.#closed = true;
    for (const timer of this.#timers) clearInterval(timer);
    this.#unwatch();
    return Promise.resolve();
  }
}
