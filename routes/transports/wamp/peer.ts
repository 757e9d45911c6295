/** A WAMP session's peer: its subscriptions, registrations, calls, and how hub frames become WAMP
 * messages. */
import type { Connection } from "../../../lib/connection.ts";
import type { Encoder } from "../../../lib/peer.ts";
import type { ServerFrame, User } from "../../../lib/protocol.ts";
import { PendingRefs } from "../pending.ts";
import { SocketPeer } from "../ws/socket_peer.ts";
import { eventPayload, publicationId, randomId, W, wampError } from "./messages.ts";

/** A request waiting for the hub's answer, with what its WAMP answer needs. */
export type Pending =
  | { kind: "subscribe"; request: number; subscription: number }
  | { kind: "unsubscribe"; request: number }
  | { kind: "publish"; request: number; acknowledge: boolean; self: { room: string; data: unknown } | undefined };

/** Where an invocation's answer goes: the caller's node and connection, and its call id there. */
export interface Invocation {
  node: string;
  connection: string;
  call: number;
}

export class WampPeer extends SocketPeer {
  connection: Connection | undefined;
  readonly session = randomId();
  welcomed = false;
  /** Waiting for AUTHENTICATE (WAMP-Ticket) before WELCOME. */
  challenged = false;
  readonly subscriptions = new Map<number, string>();
  readonly subscribed = new Map<string, number>();
  readonly registrations = new Map<number, string>();
  /** Invocations this peer (a callee) owes an answer to, by INVOCATION request id. */
  readonly invocations = new Map<number, Invocation>();
  /** Calls this peer (a caller) waits for: the CALL's request and its time limit, by call id. */
  readonly calls = new Map<number, { request: number; timer: ReturnType<typeof setTimeout> }>();
  #nextId = 0;
  /** Requests waiting for the hub's answer (SUBSCRIBED, UNSUBSCRIBED, PUBLISHED, ERROR). */
  readonly pending = new PendingRefs<Pending>("w");

  constructor(socket: WebSocket, id: string, user: User) {
    const encoder: Encoder = { encode: (frame) => this.encode(frame) };
    // WAMP's Basic Profile has no application ping: WebSocket pings keep the connection.
    super(socket, id, user, encoder, "transport");
  }

  become(user: User): void {
    this.user = user;
  }

  /** An id this session hands out (subscriptions, registrations, invocations). */
  nextId(): number {
    return ++this.#nextId;
  }

  encode(frame: ServerFrame): string | undefined {
    switch (frame.type) {
      case "message": {
        const subscription = this.subscribed.get(frame.room);
        if (subscription === undefined) return undefined;
        const details = {
          topic: frame.room,
          offset: frame.offset,
          epoch: frame.epoch,
          publisher_authid: frame.from.id,
        };
        return JSON.stringify([W.EVENT, subscription, publicationId(frame.id), details, ...eventPayload(frame.data)]);
      }
      case "joined": {
        const pending = this.pending.take(frame.ref);
        if (pending?.kind !== "subscribe") return undefined;
        return JSON.stringify([W.SUBSCRIBED, pending.request, pending.subscription]);
      }
      case "left": {
        const pending = this.pending.take(frame.ref);
        return pending?.kind === "unsubscribe" ? JSON.stringify([W.UNSUBSCRIBED, pending.request]) : undefined;
      }
      case "ack": {
        const pending = this.pending.take(frame.ref);
        if (pending?.kind !== "publish") return undefined;
        const out: string[] = [];
        // exclude_me: false: the publisher gets its own event too.
        const self = pending.self && this.subscribed.get(pending.self.room);
        if (pending.self && self !== undefined && frame.offset !== undefined) {
          const details = { topic: pending.self.room, offset: frame.offset, epoch: frame.epoch };
          out.push(
            JSON.stringify([W.EVENT, self, publicationId(frame.id), details, ...eventPayload(pending.self.data)]),
          );
        }
        if (pending.acknowledge) out.push(JSON.stringify([W.PUBLISHED, pending.request, publicationId(frame.id)]));
        // An ack can stand for two messages (the publisher's own event, then PUBLISHED): `send`
        // sends each of the list.
        return out.length === 0 ? undefined : `[${out.join(",")}]`;
      }
      case "error": {
        const pending = this.pending.take(frame.ref);
        if (!pending) return undefined;
        const type = pending.kind === "subscribe"
          ? W.SUBSCRIBE
          : pending.kind === "unsubscribe"
          ? W.UNSUBSCRIBE
          : W.PUBLISH;
        const details = frame.backendCode === undefined
          ? { message: frame.message }
          : { message: frame.message, code: frame.backendCode };
        return JSON.stringify([W.ERROR, type, pending.request, details, wampError(frame.code)]);
      }
      default:
        return undefined;
    }
  }

  override send(text: string, frame?: ServerFrame): void {
    if (frame?.type !== "ack") return super.send(text);
    for (const message of JSON.parse(text) as unknown[]) super.send(JSON.stringify(message));
  }

  reply(message: unknown[]): void {
    super.send(JSON.stringify(message));
  }
}
