/**
 * Presence for one isolate, in its memory: the default without Workers, and what the coordinator
 * of a process's Workers keeps for all of them (one node here; see `Presence`).
 */
import type { Member, User } from "../protocol.ts";
import type { MemberChange, Presence, RoomCount } from "./presence.ts";

interface Entry {
  user: User;
  /** Its connections (ids) here. */
  connections: Set<string>;
}

const none: MemberChange = { changed: false, members: 0 };

export class MemoryPresence implements Presence {
  readonly #users = new Map<string, Set<string>>();
  readonly #rooms = new Map<string, Map<string, Entry>>();

  connect(user: User, connection: string): Promise<void> {
    let ids = this.#users.get(user.id);
    if (!ids) this.#users.set(user.id, ids = new Set());
    ids.add(connection);
    return Promise.resolve();
  }

  disconnect(user: User, connection: string): Promise<void> {
    const ids = this.#users.get(user.id);
    if (ids?.delete(connection) && ids.size === 0) this.#users.delete(user.id);
    return Promise.resolve();
  }

  connections(user: string): Promise<number> {
    return Promise.resolve(this.#users.get(user)?.size ?? 0);
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
      entry.connections.add(connection);
      return { changed: false, members: members.size };
    }
    members.set(user.id, { user, connections: new Set([connection]) });
    return { changed: true, members: members.size };
  }

  /** `leave`, answered at once. */
  leaveNow(room: string, user: User, connection: string): MemberChange {
    const members = this.#rooms.get(room);
    const entry = members?.get(user.id);
    if (!members || !entry?.connections.delete(connection)) return { ...none, members: members?.size ?? 0 };
    if (entry.connections.size > 0) return { changed: false, members: members.size };
    members.delete(user.id);
    if (members.size === 0) this.#rooms.delete(room);
    return { changed: true, members: members.size };
  }

  /** `members`, answered at once. */
  membersNow(room: string, max = Infinity): Member[] {
    const out: Member[] = [];
    for (const { user, connections } of this.#rooms.get(room)?.values() ?? []) {
      if (out.length >= max) break;
      out.push({ id: user.id, name: user.name, connections: connections.size });
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
      for (const entry of members.values()) connections += entry.connections.size;
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
