/**
 * Presence shared by the isolates (nodes) of one process, kept by its coordinator: each Worker's
 * `RemotePresence` calls it, and renews its lease while it lives. What a node holds is dropped when
 * the node ends (its Worker exits, or it stops renewing for `leaseMs`), as if its connections had
 * left. Member events are told by the coordinator as each change takes effect (`telling`: through
 * the relay, to every node), so every node hears a room's events in one order.
 */
import type { Member, User } from "../../protocol.ts";
import type { MemberChange, MemberTelling, Presence, RoomCount } from "../presence.ts";
import { MemoryPresence } from "../memory/presence.ts";
import type { Caller, RpcHandler } from "./rpc.ts";

interface Held {
  /** room → connection → user */
  joins: Map<string, Map<string, User>>;
  /** connection → user */
  connections: Map<string, User>;
  renewed: number;
}

export class NodePresence {
  readonly #presence: MemoryPresence;
  readonly #nodes = new Map<string, Held>();
  readonly #leaseMs: number;
  readonly #now: () => number;

  constructor(leaseMs: number, telling?: MemberTelling, now: () => number = Date.now) {
    this.#presence = new MemoryPresence(telling);
    this.#leaseMs = leaseMs;
    this.#now = now;
  }

  #held(node: string): Held {
    let held = this.#nodes.get(node);
    if (!held) this.#nodes.set(node, held = { joins: new Map(), connections: new Map(), renewed: this.#now() });
    return held;
  }

  /** The operations a node's `RemotePresence` calls; every call renews its lease. */
  handlers(): Record<string, RpcHandler> {
    const p = this.#presence;
    const held = (node: unknown) => {
      const h = this.#held(node as string);
      h.renewed = this.#now();
      return h;
    };
    return {
      "presence.renew": ([node]) => void held(node),
      "presence.connect": ([node, user, connection]) => {
        held(node).connections.set(connection as string, user as User);
        return p.connect(user as User, connection as string);
      },
      "presence.disconnect": ([node, user, connection]) => {
        held(node).connections.delete(connection as string);
        return p.disconnect(user as User, connection as string);
      },
      "presence.connections": ([node, user]) => (held(node), p.connections(user as string)),
      "presence.join": ([node, room, user, connection]) => {
        const joins = held(node).joins;
        let members = joins.get(room as string);
        if (!members) joins.set(room as string, members = new Map());
        members.set(connection as string, user as User);
        return p.joinNow(room as string, user as User, connection as string);
      },
      "presence.leave": ([node, room, user, connection]) => {
        const joins = held(node).joins;
        const members = joins.get(room as string);
        members?.delete(connection as string);
        if (members?.size === 0) joins.delete(room as string);
        return p.leaveNow(room as string, user as User, connection as string);
      },
      "presence.members": ([node, room, max]) => (held(node), p.membersNow(room as string, max as number | undefined)),
      "presence.rooms": ([node]) => (held(node), p.rooms()),
    };
  }

  /** Drops what `node` held (it ended), telling the member leaves that follow. */
  expire(node: string): void {
    const held = this.#nodes.get(node);
    if (!held) return;
    this.#nodes.delete(node);
    for (const [room, members] of held.joins) {
      for (const [connection, user] of members) this.#presence.leaveNow(room, user, connection);
    }
    for (const [connection, user] of held.connections) void this.#presence.disconnect(user, connection);
  }

  /** Nodes that have not renewed for `leaseMs`. */
  lapsed(): string[] {
    const now = this.#now();
    return [...this.#nodes].filter(([, held]) => now - held.renewed >= this.#leaseMs).map(([node]) => node);
  }

  members(room: string, max?: number): Member[] {
    return this.#presence.membersNow(room, max);
  }
}

/** A node's presence, kept by the coordinator: every call goes there; `renewMs` renews the lease
 * while the node lives. */
export class RemotePresence implements Presence {
  readonly #rpc: Caller;
  readonly #node: string;
  readonly #renewal: ReturnType<typeof setInterval>;

  constructor(rpc: Caller, node: string, renewMs: number) {
    this.#rpc = rpc;
    this.#node = node;
    this.#renewal = setInterval(() => this.#call("presence.renew").catch(() => {}), renewMs);
  }

  #call<T>(op: string, ...args: unknown[]): Promise<T> {
    return this.#rpc.call<T>(op, [this.#node, ...args]);
  }

  connect(user: User, connection: string): Promise<void> {
    return this.#call("presence.connect", user, connection);
  }

  disconnect(user: User, connection: string): Promise<void> {
    return this.#call("presence.disconnect", user, connection);
  }

  connections(user: string): Promise<number> {
    return this.#call("presence.connections", user);
  }

  join(room: string, user: User, connection: string): Promise<MemberChange> {
    return this.#call("presence.join", room, user, connection);
  }

  leave(room: string, user: User, connection: string): Promise<MemberChange> {
    return this.#call("presence.leave", room, user, connection);
  }

  members(room: string, max?: number): Promise<Member[]> {
    return this.#call("presence.members", room, max);
  }

  rooms(): Promise<RoomCount[]> {
    return this.#call("presence.rooms");
  }

  close(): Promise<void> {
    clearInterval(this.#renewal);
    return Promise.resolve();
  }
}
