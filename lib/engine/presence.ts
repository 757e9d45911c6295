/**
 * The presence interface: who is connected and who is in which room, across every isolate,
 * process or instance that serves one set of rooms, and the member events (a user's first
 * connection in a room, its last out) that its changes call for. Each node (isolate) tells it
 * about its own connections; what a node holds lives as long as that node renews its lease.
 */
import type { Member, User } from "../protocol.ts";
import type { BackplaneEvent } from "./backplane.ts";

/** A room as `GET /api/rooms` lists it. */
export interface RoomCount {
  room: string;
  members: number;
  connections: number;
}

/** What a join or a leave changed: whether the user's first connection in the room arrived (or
 * its last one left), on any node, and how many members the room has now. */
export interface MemberChange {
  changed: boolean;
  members: number;
  /** Whether the change occupied the room (its first member in) or vacated it (its last out),
   * decided once across nodes. Absent: as `members` says (1 after a join, 0 after a leave), which
   * holds where the count is read in the same atomic step as the change (one node, Redis' scripts). */
  occupancy?: Occupancy;
}

export type Occupancy = "occupied" | "vacated" | "none";

export type MemberEvent = Extract<BackplaneEvent, { kind: "member" }>;

/** A user's first connection into a room, or its last out, on any node: reported once, by the
 * node where it took effect (webhooks hang on it). `members`: the room's members after it. */
export interface PresenceChange {
  room: string;
  user: User;
  event: "join" | "leave";
  members: number;
  /** The room's first member in, or its last out: told once across nodes. */
  occupancy: Occupancy;
}

/** How a presence tells the member events its changes call for: rooms larger than `max`
 * (`ROOMCAST_MEMBER_EVENTS_MAX`) have none; `tell` hands one to every node (a backplane's
 * `publish`, which delivers it to this node at once). `changed`, if set, hears every change,
 * whatever the room's size (`PresenceChange`). */
export interface MemberTelling {
  max: number;
  tell(event: MemberEvent): void;
  changed?: ((change: PresenceChange) => void) | undefined;
}

/** Member events told through `backplane` (its `publish` delivers to this node at once), in rooms
 * of up to `max` members; every change reported to `changed`. */
export function tellingThrough(
  backplane: { publish(event: MemberEvent): void },
  max: number,
  changed?: (change: PresenceChange) => void,
): MemberTelling {
  return { max, tell: (event) => backplane.publish(event), changed };
}

/** Tells the member event `change` calls for (`memberEvent`) where `telling` says, if any; returns
 * `change`. */
export function tell(
  telling: MemberTelling | undefined,
  room: string,
  user: User,
  connection: string,
  event: "join" | "leave",
  change: MemberChange,
): MemberChange {
  const told = telling && memberEvent(room, user, connection, event, change, telling.max);
  if (told) telling.tell(told);
  if (change.changed && telling?.changed) {
    const derived = event === "join"
      ? change.members === 1 ? "occupied" : "none"
      : change.members === 0
      ? "vacated"
      : "none";
    telling.changed({ room, user, event, members: change.members, occupancy: change.occupancy ?? derived });
  }
  return change;
}

/** The member event a presence change calls for, or `undefined`: only a user's first connection in
 * (or last out) is told, never in a room of more than `max` members (`ROOMCAST_MEMBER_EVENTS_MAX`),
 * and not when nobody is there to hear it (the joiner alone, or nobody left). The hub's joins and
 * leaves and the leaves of a node that ended (a Worker, a Redis process) all go by it. */
export function memberEvent(
  room: string,
  user: User,
  origin: string,
  event: "join" | "leave",
  change: MemberChange,
  max: number,
): MemberEvent | undefined {
  if (!change.changed || (event === "join" ? change.members > max : change.members >= max)) return undefined;
  if (event === "join" ? change.members <= 1 : change.members === 0) return undefined;
  return { kind: "member", room, event, user, origin };
}

/**
 * Guarantees:
 * - A user is one member of a room however many connections, on however many nodes, it has there:
 *   `join` answers `changed: true` for its first connection (a member join to tell, once) and
 *   `leave` for its last (a member leave, once); in between, `members` lists it once, with its
 *   connection count.
 * - Calls from one node take effect in the order they were made.
 * - A node renews what it holds while it lives (`renewMs`); what a node that stopped (crashed, was
 *   evicted) held is dropped at most `leaseMs` later, as if its connections had left. Where the
 *   implementation sees a node end (a Worker that exits), sooner. `MemoryPresence` has one node.
 * - Counts never go below zero: a leave without its join, or twice, changes nothing.
 * - A join or leave that calls for a member event (`memberEvent`) is told by the presence itself,
 *   where its change takes effect, so that every node hears a room's member events in the order
 *   the changes took effect (one order for every observer): in memory (one isolate) and by a
 *   process's coordinator (its Workers) through the backplane at once, by Redis from the script
 *   that made the change. Deno KV shared by instances tells each after its commit: in order for
 *   the observers of one instance, not across instances.
 */
export interface Presence {
  /** A connection of `user` opened on this node. */
  connect(user: User, connection: string): Promise<void>;
  disconnect(user: User, connection: string): Promise<void>;
  /** The user's open connections on every node. */
  connections(user: string): Promise<number>;
  /** Counts a connection of `user` in `room`. */
  join(room: string, user: User, connection: string): Promise<MemberChange>;
  /** Uncounts it (`leave` of the room, or the connection closed). */
  leave(room: string, user: User, connection: string): Promise<MemberChange>;
  /** The room's members, or the first `max` of them. */
  members(room: string, max?: number): Promise<Member[]>;
  /** Rooms with at least one member. */
  rooms(): Promise<RoomCount[]>;
  close(): Promise<void>;
}
