/**
 * The backplane interface: fan-out of events between isolates (Workers of one process, processes,
 * instances). The store is the truth; the backplane is the fast path and may lose or reorder what
 * crosses isolates, which the hub repairs from the store (by offsets). Not every backplane carries
 * stored messages: where the engine's store tells the other nodes itself (Redis' scripts, a
 * cluster's coordinator) or they read it (Deno KV shared by instances), `messages` says `"store"`.
 */
import type { Position, StoredMessage, User } from "../protocol.ts";

/** Events about one room; they reach the isolates interested in it (`subscribe`). */
export type RoomEvent =
  | { kind: "message"; room: string; message: StoredMessage; json: string }
  | { kind: "signal"; room: string; from: User; event: string; data: unknown; origin: string }
  | { kind: "member"; room: string; event: "join" | "leave"; user: User; origin: string }
  | { kind: "reset"; room: string; epoch: string };

/** Events for every isolate. */
export type GlobalEvent =
  | { kind: "direct"; to: string; id: string; from: User; data: unknown; ts: number }
  | { kind: "broadcast"; id: string; data: unknown; ts: number }
  /** Ends every connection of `user` (the HTTP API's terminate_connections). */
  | { kind: "terminate"; user: string }
  /** A transport's message to one node (`to`), for its handler of `topic` there (WAMP's calls). */
  | { kind: "relay"; to: string; topic: string; payload: unknown }
  /** For the dashboard service of every node (routes/admin.ts: watch, reports, queries). */
  | { kind: "admin"; payload: unknown };

/** What `publish` takes; `origin` in a signal or member event is the connection it came from (it
 * is not sent back to that connection). */
export type BackplaneEvent = RoomEvent | GlobalEvent;

/** Receives an event with the node (isolate) that published it. */
export type BackplaneHandler = (event: BackplaneEvent, node: string) => void;

/** Hears that the store holds a room's messages up to `head` (written by any node). */
export type StoredHandler = (room: string, head: Position) => void;

/**
 * Guarantees:
 * - `publish` hands the event to this isolate's handler synchronously, before it returns, exactly
 *   once and in call order, with this node's id.
 * - Other isolates get a room's events while they are subscribed to that room (and may get others:
 *   interest is a filter of traffic, not of correctness), every global event, each at most once,
 *   usually in order, but may miss one (a full buffer, a redeploy) or see it after a later one:
 *   receivers tolerate loss and reordering. An event never comes back to its own node.
 * - Trouble that may have lost events (a receiver that could not keep up, a lost connection) is
 *   reported to `onTrouble`, so that the hub can check its rooms against the store.
 */
/** Trouble the engine has already told the log about in its own words (Redis went away and is
 * back): the hub acts on it without logging it again. */
export class ToldTrouble extends Error {
  override name = "ToldTrouble";
}

/** How other nodes' stored messages reach this one: as `message` events of this backplane, or from
 * the engine's store (told by it, or read from it), never through `publish`. */
export type MessagePath = "backplane" | "store";

export interface Backplane {
  /** This isolate's id, on every event it publishes. */
  readonly node: string;
  /** Where other nodes' stored messages come from (a `message` published here reaches only this
   * isolate's handler when it is `"store"`). */
  readonly messages: MessagePath;
  publish(event: BackplaneEvent): void;
  /** Sets the one handler (the hub) that receives every event: this isolate's and the others'. */
  onEvent(handler: BackplaneHandler): void;
  /** This isolate has local subscribers in `room` (counted: one `unsubscribe` undoes one
   * `subscribe`): the room's events from other isolates must reach it. */
  subscribe(room: string): void;
  unsubscribe(room: string): void;
  /** Resolves once the subscriptions asked for so far are in effect (where making one takes a
   * round trip, as with Redis); absent: at once. */
  subscribed?(): Promise<void>;
  /** Where the backplane carries no messages but sees the store's head move (the KV backplane's
   * watch): sets the one handler (the hub) told of it, so that rooms catch up from the store at
   * once instead of at their next check. Absent: messages come as events. */
  onStored?(handler: StoredHandler): void;
  /** Sets the handler of trouble (events may have been lost on the way in). */
  onTrouble(handler: (error: unknown) => void): void;
  close(): Promise<void>;
}
