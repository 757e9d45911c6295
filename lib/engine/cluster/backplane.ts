/**
 * The backplane of a cluster's serving isolates (routes/serve/cluster.ts). The coordinator numbers and
 * stores every message, so it is also what hands each stored message to the other isolates
 * subscribed to its room: pushed to a Worker over `postMessage` (ordered, reliable) with its
 * replies of that turn, and to the coordinator's own serving isolate by a direct call, in offset
 * order. Member events, directs, broadcasts and resets, which nothing stores and nothing could
 * repair, go through the coordinator the same way. Only signals (ephemeral: typing, cursors) go
 * over BroadcastChannel, the fast path, which Deno's runtime drops for an isolate that lags: it
 * holds 256 messages for the whole process (a Worker held up for 800 ms got 256 of 600 signals
 * in the test), or through the coordinator too where BroadcastChannel is missing.
 *
 * `ClusterBackplane` is a serving isolate's side, `Relay` the coordinator's.
 */
import type { Backplane, BackplaneEvent, BackplaneHandler } from "../backplane.ts";
import { Interest } from "../interest.ts";
import type { Caller, RpcHandler } from "./rpc.ts";
import type { Appended } from "../store.ts";

/** What the coordinator pushes to a Worker: an event from another node. */
interface Relayed {
  relay: BackplaneEvent;
  node: string;
}

export class ClusterBackplane implements Backplane {
  readonly messages = "store" as const;
  readonly node: string;
  readonly #rpc: Caller;
  readonly #broadcast: Backplane | undefined;
  #handler: BackplaneHandler | undefined;
  #trouble: ((error: unknown) => void) | undefined;
  /** The rooms the coordinator must push to this Worker. */
  readonly #interest = new Interest();
  /** The last change of interest sent: its reply means the coordinator has applied all before it. */
  #changed: Promise<unknown> = Promise.resolve();

  /** `broadcast`: the backplane of signals (BroadcastChannel); absent, they go through the
   * coordinator too. */
  constructor(rpc: Caller, node: string, broadcast?: Backplane) {
    this.#rpc = rpc;
    this.node = node;
    this.#broadcast = broadcast;
    rpc.onPush((value) => {
      const data = value as Partial<Relayed>;
      if (data?.relay && data.node !== this.node) this.#handler?.(data.relay, data.node as string);
    });
    broadcast?.onEvent((event, from) => this.#handler?.(event, from));
    broadcast?.onTrouble((error) => this.#trouble?.(error));
  }

  #send(op: string, ...args: unknown[]): Promise<unknown> {
    return this.#rpc.call(op, [this.node, ...args]).catch((error) => this.#trouble?.(error));
  }

  publish(event: BackplaneEvent): void {
    // A message was stored by the coordinator, which has pushed it to the others already.
    if (event.kind === "message") return this.#handler?.(event, this.node);
    // Signals are ephemeral (typing, cursors): at most once, by the fast path.
    if (event.kind === "signal" && this.#broadcast) return this.#broadcast.publish(event);
    this.#handler?.(event, this.node);
    this.#send("relay.publish", event);
  }

  onEvent(handler: BackplaneHandler): void {
    this.#handler = handler;
  }

  subscribe(room: string): void {
    this.#broadcast?.subscribe(room);
    if (this.#interest.add(room)) this.#changed = this.#send("relay.subscribe", room);
  }

  unsubscribe(room: string): void {
    this.#broadcast?.unsubscribe(room);
    if (this.#interest.remove(room)) this.#changed = this.#send("relay.unsubscribe", room);
  }

  /** Resolves once the coordinator has the subscriptions asked for so far (calls are answered in
   * order). */
  async subscribed(): Promise<void> {
    await this.#changed;
  }

  onTrouble(handler: (error: unknown) => void): void {
    this.#trouble = handler;
  }

  async close(): Promise<void> {
    await this.#broadcast?.close();
    this.#interest.clear();
    this.#handler = undefined;
  }
}

/** The coordinator's side: which node listens to which room, and the pushes. */
export class Relay {
  readonly #pushes = new Map<string, (value: unknown) => void>();
  readonly #rooms = new Map<string, Set<string>>();

  /** A node (Worker) and how to push to it (`RpcServer.push`: in order with its replies). */
  add(node: string, push: (value: unknown) => void): void {
    this.#pushes.set(node, push);
  }

  remove(node: string): void {
    this.#pushes.delete(node);
    for (const [room, nodes] of this.#rooms) {
      nodes.delete(node);
      if (nodes.size === 0) this.#rooms.delete(room);
    }
  }

  /** What the coordinator's store calls with each message `node` appended (`storeHandlers`):
   * it goes to the other nodes subscribed to its room, in the order messages were numbered. */
  appendedBy(node: string): (appended: Appended) => void {
    return ({ message, json }) => this.forward({ kind: "message", room: message.room, message, json }, node);
  }

  /** Sends an event to every node but `from` (to the room's listeners for a room's events). */
  forward(event: BackplaneEvent, from: string): void {
    const listeners = "room" in event ? this.#rooms.get(event.room) : this.#pushes.keys();
    if (!listeners) return;
    let relayed: Relayed | undefined;
    for (const node of listeners) {
      if (node !== from) this.#pushes.get(node)?.(relayed ??= { relay: event, node: from });
    }
  }

  handlers(): Record<string, RpcHandler> {
    return {
      "relay.publish": ([node, event]) => this.forward(event as BackplaneEvent, node as string),
      "relay.subscribe": ([node, room]) => {
        if (!this.#pushes.has(node as string)) return;
        let nodes = this.#rooms.get(room as string);
        if (!nodes) this.#rooms.set(room as string, nodes = new Set());
        nodes.add(node as string);
      },
      "relay.unsubscribe": ([node, room]) => {
        const nodes = this.#rooms.get(room as string);
        nodes?.delete(node as string);
        if (nodes?.size === 0) this.#rooms.delete(room as string);
      },
    };
  }
}
