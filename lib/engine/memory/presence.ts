/**
 * Presence for one isolate, in its memory: the default without Workers, and what the coordinator
 * of a process's Workers keeps for all of them (one node here; see `Presence`). A change that calls
 * for a member event tells it (`MemberTelling`) before the change is answered.
 */
import { addTo, deleteFrom, type Few, fewAdd, fewDelete, fewHas, fewSize } from "../../few.ts";
import { type Member, memberOf, type User } from "../../protocol.ts";
import { type MemberChange, type MemberTelling, type Presence, type RoomCount, tell } from "../presence.ts";

interface Entry {
  user: User;
  /** Its connections (ids) here. */
  connections: Few<string>;
}

const none: MemberChange = { changed: false, members: 0 };

export class MemoryPresence implements Presence {
  readonly #users = new Map<string, Few<string>>();
  readonly #rooms = new Map<string, Map<string, Entry>>();
  readonly #telling: MemberTelling | undefined;

  /** `telling`: where member events go; absent, none are told. */
  constructor(telling?: MemberTelling) {
    this.#telling = telling;
  }

  connect(user: User, connection: string): Promise<void> {
    addTo(this.#users, user.id, connection);
    return Promise.resolve();
  }

  disconnect(user: User, connection: string): Promise<void> {
    deleteFrom(this.#users, user.id, connection);
    return Promise.resolve();
  }

  connections(user: string): Promise<number> {
    return Promise.resolve(fewSize(this.#users.get(user)));
  }

  join(room: string, user: User, connection: string): Promise<MemberChange> {
    return Promise.resolve(this.joinNow(room, user, connection));
  }

  leave(room: string, user: User, connection: string): Promise<MemberChange> {
    return Promise.resolve(this.leaveNow(room, user, connection));
  }

  /** `join`, answered at once (for callers in this isolate that need not wait). */
  joinNow(room: string, user: User, connection: string): MemberChange {
    let members = this.#rooms.get(room);
    if (!members) this.#rooms.set(room, members = new Map());
    const entry = members.get(user.id);
    if (entry) {
      entry.connections = fewAdd(entry.connections, connection);
      return { changed: false, members: members.size };
    }
    members.set(user.id, { user, connections: connection });
    return tell(this.#telling, room, user, connection, "join", { changed: true, members: members.size });
  }

  /** `leave`, answered at once. */
  leaveNow(room: string, user: User, connection: string): MemberChange {
    const members = this.#rooms.get(room);
    const entry = members?.get(user.id);
    if (!members || !entry || !fewHas(entry.connections, connection)) return { ...none, members: members?.size ?? 0 };
    const rest = fewDelete(entry.connections, connection);
    if (rest !== undefined) {
      entry.connections = rest;
      return { changed: false, members: members.size };
    }
    members.delete(user.id);
    if (members.size === 0) this.#rooms.delete(room);
    return tell(this.#telling, room, entry.user, connection, "leave", { changed: true, members: members.size });
  }

  /** `members`, answered at once. */
  membersNow(room: string, max = Infinity): Member[] {
    const out: Member[] = [];
    for (const { user, connections } of this.#rooms.get(room)?.values() ?? []) {
      if (out.length >= max) break;
      out.push(memberOf(user, fewSize(connections)));
    }
    return out;
  }

  members(room: string, max?: number): Promise<Member[]> {
    return Promise.resolve(this.membersNow(room, max));
  }

  rooms(): Promise<RoomCount[]> {
    const out: RoomCount[] = [];
    for (const [room, members] of this.#rooms) {
      let connections = 0;
      for (const entry of members.values()) connections += fewSize(entry.connections);
      out.push({ room, members: members.size, connections });
    }
    return Promise.resolve(out);
  }

  close(): Promise<void> {
    this.#users.clear();
    this.#rooms.clear();
    return Promise.resolve();
  }
}
