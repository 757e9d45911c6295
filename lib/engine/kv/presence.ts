/**
 * Presence in a Deno KV shared by processes or instances (Deno Deploy): each connection is a key
 * whose lease runs out unless the node holding it renews it (`leaseMs`, renewed every
 * `leaseMs / 3`), so an instance that is evicted or killed leaves presence within the lease. The
 * lease's end is in the value and reads skip what is past it (a KV deletes expired keys only
 * eventually: locally, much later). A member is one key per
 * room and user, made by an atomic check when its first connection joins (whoever makes it tells
 * the member join) and deleted when its last connection leaves (whoever deletes it tells the
 * leave), each told after its commit: in order for this instance's observers, not across instances.
 *
 * An instance that dies stops renewing: its keys lapse within the lease. Every live instance looks,
 * every half lease, at the members of the rooms where it holds connections (the rooms whose
 * subscribers care); a member key lapsed for more than a third of the lease (some slack for clocks
 * that differ between instances) is deleted by an atomic check, and whoever deletes it tells the
 * member leave, once. A user with connections on a live instance keeps the
 * key renewed and stays.
 */
import { type Member, memberOf, type User } from "../../protocol.ts";
import { NS, retryLocked } from "./format.ts";
import {
  type MemberChange,
  type MemberTelling,
  type Occupancy,
  type Presence,
  type RoomCount,
  tell,
} from "../presence.ts";

export interface KvPresenceOptions {
  kv: Deno.Kv;
  node: string;
  /** How long what this node holds outlives its last renewal. @default 15000 */
  leaseMs?: number;
  /** Where member events go (after the commit that called for them): the joins and leaves of this
   * node's connections, and of a dead instance's members that this node removed. */
  telling?: MemberTelling | undefined;
}

const connectionKey = (user: string, node: string, connection: string): Deno.KvKey => [
  NS,
  "conn",
  user,
  node,
  connection,
];
const joinKey = (room: string, user: string, node: string, connection: string): Deno.KvKey => [
  NS,
  "pres",
  room,
  user,
  node,
  connection,
];
const memberKey = (room: string, user: string): Deno.KvKey => [NS, "member", room, user];
/** Set while a room has members: who creates it tells the room occupied, who deletes it vacated. */
const occupiedKey = (room: string): Deno.KvKey => [NS, "occupied", room];

/** Mutations per atomic renewal, under KV's 1000. */
const RENEW_BATCH = 500;

/** A held key's value: the user, and when its lease ends (ms). */
interface Leased {
  user: User;
  until: number;
}

const isLeased = (value: unknown): value is Leased =>
  typeof value === "object" && value !== null && "until" in value && typeof (value as Leased).until === "number" &&
  "user" in value;

const live = (value: unknown): value is Leased => isLeased(value) && value.until > Date.now();

export class KvPresence implements Presence {
  readonly #kv: Deno.Kv;
  readonly #node: string;
  readonly #leaseMs: number;
  /** What this node holds, to renew: key → its user. */
  readonly #held = new Map<string, { key: Deno.KvKey; user: User }>();
  /** Per member key (room and user): this node's connections in the room, changed at once by a join
   * or leave (before any KV call), so that a join and a leave that overlap agree on who is here. */
  readonly #here = new Map<string, Set<string>>();
  readonly #renewal: ReturnType<typeof setInterval>;
  readonly #sweeping: ReturnType<typeof setInterval>;
  readonly #telling: MemberTelling | undefined;
  #swept: Promise<void> = Promise.resolve();
  /** The renewal under way: a leave lets it finish before it deletes a member key it wrote. */
  #renewing: Promise<void> = Promise.resolve();

  constructor({ kv, node, leaseMs = 15_000, telling }: KvPresenceOptions) {
    this.#kv = kv;
    this.#node = node;
    this.#leaseMs = leaseMs;
    this.#telling = telling;
    this.#renewal = setInterval(() => this.#renewing = this.#renew().catch(() => {}), leaseMs / 3);
    this.#sweeping = setInterval(() => this.#swept = this.#sweep().catch(() => {}), leaseMs / 2);
  }

  /** Removes the lapsed members of the rooms where this node holds connections, telling their
   * leaves (see the module comment). */
  async #sweep(): Promise<void> {
    const rooms = new Set<string>();
    for (const { key } of this.#held.values()) if (key[1] === "pres") rooms.add(key[2] as string);
    const deadline = Date.now() - this.#leaseMs / 3;
    for (const room of rooms) {
      for await (const entry of this.#kv.list({ prefix: [NS, "member", room] })) {
        const value = entry.value;
        if (!isLeased(value) || value.until > deadline) continue;
        const gone = (await retryLocked(() => this.#kv.atomic().check(entry).delete(entry.key).commit())).ok;
        if (gone) {
          const members = await this.#members(room);
          const occupancy = this.#telling?.changed ? await this.#vacate(room) : "none";
          tell(this.#telling, room, value.user, "", "leave", { changed: true, members, occupancy });
        }
      }
    }
  }

  #leased(user: User): Leased {
    return { user, until: Date.now() + this.#leaseMs };
  }

  async #set(key: Deno.KvKey, user: User): Promise<void> {
    this.#held.set(JSON.stringify(key), { key, user });
    await retryLocked(() => this.#kv.set(key, this.#leased(user), { expireIn: this.#leaseMs }));
  }

  async #delete(key: Deno.KvKey): Promise<void> {
    this.#held.delete(JSON.stringify(key));
    await retryLocked(() => this.#kv.delete(key));
  }

  /** Renews every key this node holds (members included), in batches. A connection's key let go
   * while its batch was being committed (a leave, a disconnect) was written back by it: it is
   * deleted again, if it is still what the renewal wrote. A member key is left to its leave, which
   * waits for this renewal and deletes it (and tells the member leave). */
  async #renew(): Promise<void> {
    const all = [...this.#held.entries()];
    for (let i = 0; i < all.length; i += RENEW_BATCH) {
      const batch = all.slice(i, i + RENEW_BATCH);
      const op = this.#kv.atomic();
      for (const [, { key, user }] of batch) op.set(key, this.#leased(user), { expireIn: this.#leaseMs });
      const result = await retryLocked(() => op.commit());
      if (!result.ok) continue;
      const gone = batch.filter(([id, { key }]) => !this.#held.has(id) && key[1] !== "member");
      if (gone.length === 0) continue;
      const undo = this.#kv.atomic();
      for (const [, { key }] of gone) undo.check({ key, versionstamp: result.versionstamp }).delete(key);
      // One check failing (the key changed since) fails them all: then one by one.
      if (!(await retryLocked(() => undo.commit())).ok) {
        for (const [, { key }] of gone) {
          await retryLocked(() =>
            this.#kv.atomic().check({ key, versionstamp: result.versionstamp }).delete(key).commit()
          );
        }
      }
    }
  }

  connect(user: User, connection: string): Promise<void> {
    return this.#set(connectionKey(user.id, this.#node, connection), user);
  }

  disconnect(user: User, connection: string): Promise<void> {
    return this.#delete(connectionKey(user.id, this.#node, connection));
  }

  /** How many live keys under `prefix`. */
  async #count(prefix: Deno.KvKey): Promise<number> {
    let n = 0;
    for await (const { value } of this.#kv.list({ prefix })) if (live(value)) n++;
    return n;
  }

  connections(user: string): Promise<number> {
    return this.#count([NS, "conn", user]);
  }

  #members(room: string): Promise<number> {
    return this.#count([NS, "member", room]);
  }

  async join(room: string, user: User, connection: string): Promise<MemberChange> {
    const change = await this.#join(room, user, connection);
    if (change.changed && this.#telling?.changed) change.occupancy = await this.#occupy(room);
    return tell(this.#telling, room, user, connection, "join", change);
  }

  async leave(room: string, user: User, connection: string): Promise<MemberChange> {
    const change = await this.#leave(room, user, connection);
    if (change.changed && this.#telling?.changed) change.occupancy = await this.#vacate(room);
    return tell(this.#telling, room, user, connection, "leave", change);
  }

  /** After a member joined: marks the room occupied, or touches the mark (so that a vacate racing
   * this join fails its check and looks again). "occupied" when this call made the mark. */
  async #occupy(room: string): Promise<Occupancy> {
    const key = occupiedKey(room);
    for (let attempt = 0; attempt < 16; attempt++) {
      const mark = await retryLocked(() => this.#kv.get<number>(key));
      const next = (mark.value ?? 0) + 1;
      if ((await retryLocked(() => this.#kv.atomic().check(mark).set(key, next).commit())).ok) {
        return mark.value === null ? "occupied" : "none";
      }
    }
    return "none";
  }

  /** After a member left: takes the mark off the room if it has no member left and no join touched
   * the mark since it was read. "vacated" when this call took it. */
  async #vacate(room: string): Promise<Occupancy> {
    const key = occupiedKey(room);
    for (let attempt = 0; attempt < 16; attempt++) {
      const mark = await retryLocked(() => this.#kv.get<number>(key));
      if (mark.value === null || await this.#members(room) > 0) return "none";
      if ((await retryLocked(() => this.#kv.atomic().check(mark).delete(key).commit())).ok) return "vacated";
    }
    return "none";
  }

  async #join(room: string, user: User, connection: string): Promise<MemberChange> {
    const key = memberKey(room, user.id);
    const id = JSON.stringify(key);
    let here = this.#here.get(id);
    if (!here) this.#here.set(id, here = new Set());
    here.add(connection);
    await this.#set(joinKey(room, user.id, this.#node, connection), user);
    // Made by whoever comes first (a lapsed one counts as gone): that node tells the member join.
    const member = await retryLocked(() => this.#kv.get(key));
    const made = !live(member.value) &&
      (await retryLocked(() =>
        this.#kv.atomic().check(member).set(key, this.#leased(user), { expireIn: this.#leaseMs }).commit()
      )).ok;
    // The member key is renewed by every node with a connection of the user in the room (unless
    // this one left while the join was under way).
    if (this.#here.get(id)?.size) this.#held.set(id, { key, user });
    return { changed: made, members: await this.#members(room) };
  }

  /** Whether the user has a live connection in the room on another node. */
  async #elsewhere(room: string, user: string): Promise<boolean> {
    for await (const { key, value } of this.#kv.list({ prefix: [NS, "pres", room, user] })) {
      if (live(value) && key[4] !== this.#node) return true;
    }
    return false;
  }

  async #leave(room: string, user: User, connection: string): Promise<MemberChange> {
    const mine = joinKey(room, user.id, this.#node, connection);
    if (!this.#held.has(JSON.stringify(mine))) return { changed: false, members: await this.#members(room) };
    const key = memberKey(room, user.id);
    const id = JSON.stringify(key);
    const here = this.#here.get(id);
    here?.delete(connection);
    if (!here?.size) {
      this.#here.delete(id);
      this.#held.delete(id);
    }
    await this.#delete(mine);
    // This node's connections are as `#here` says; the others' are in the KV.
    if (this.#here.get(id)?.size) return { changed: false, members: await this.#members(room) };
    if (await this.#elsewhere(room, user.id)) return { changed: false, members: await this.#members(room) };
    await this.#renewing;
    // Whoever deletes the live member key tells the leave. A check that fails means the key was
    // written meanwhile: by this node's renewal (which ran with the key still held), or by another
    // node's join (whose connection key is then there): look again, a few times.
    let gone = false;
    for (let attempt = 0; attempt < 4 && !gone; attempt++) {
      const member = await retryLocked(() => this.#kv.get(key));
      if (!live(member.value) || this.#here.get(id)?.size) break;
      gone = (await retryLocked(() => this.#kv.atomic().check(member).delete(key).commit())).ok;
      if (gone || await this.#elsewhere(room, user.id)) break;
    }
    return { changed: gone, members: await this.#members(room) };
  }

  async members(room: string, max = Infinity): Promise<Member[]> {
    const byUser = new Map<string, Member>();
    for await (const { key, value } of this.#kv.list({ prefix: [NS, "pres", room] })) {
      if (!live(value)) continue;
      const id = key[3] as string;
      const member = byUser.get(id);
      if (member) member.connections++;
      else if (byUser.size < max) byUser.set(id, memberOf({ ...value.user, id }, 1));
    }
    return [...byUser.values()];
  }

  async rooms(): Promise<RoomCount[]> {
    const rooms = new Map<string, { users: Set<string>; connections: number }>();
    for await (const { key, value } of this.#kv.list({ prefix: [NS, "pres"] })) {
      if (!live(value)) continue;
      const room = key[2] as string;
      let entry = rooms.get(room);
      if (!entry) rooms.set(room, entry = { users: new Set(), connections: 0 });
      entry.users.add(key[3] as string);
      entry.connections++;
    }
    return [...rooms].map(([room, { users, connections }]) => ({ room, members: users.size, connections }));
  }

  async close(): Promise<void> {
    clearInterval(this.#renewal);
    clearInterval(this.#sweeping);
    await this.#swept;
  }
}
