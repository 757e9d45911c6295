/**
 * A backplane for the Workers of a process where BroadcastChannel is missing: events go to the
 * coordinator over `postMessage` (ordered, reliable) and it forwards each to the other Workers
 * interested (a room's events to those subscribed to it, the rest to all). `RelayBackplane` is a
 * Worker's side, `Relay` the coordinator's.
 */
import type { Backplane, BackplaneEvent, BackplaneHandler } from "./backplane.ts";
import { Interest } from "./interest.ts";
import type { Port, RpcClient, RpcHandler } from "./rpc.ts";

/** What the coordinator pushes to a Worker: an event from another node. */
interface Relayed {
  relay: BackplaneEvent;
  node: string;
}

export class RelayBackplane implements Backplane {
  readonly node: string;
  readonly #rpc: RpcClient;
  #handler: BackplaneHandler | undefined;
  #trouble: ((error: unknown) => void) | undefined;
  readonly #interest = new Interest();

  constructor(rpc: RpcClient, node: string, port: Port = self as unknown as Port) {
    this.#rpc = rpc;
    this.node = node;
    port.addEventListener("message", (event: MessageEvent) => {
      const data = event.data as Partial<Relayed>;
      if (data?.relay && data.node !== this.node) this.#handler?.(data.relay, data.node as string);
    });
  }

  #send(op: string, ...args: unknown[]): void {
    this.#rpc.call(op, [this.node, ...args]).catch((error) => this.#trouble?.(error));
  }

  publish(event: BackplaneEvent): void {
    this.#handler?.(event, this.node);
    this.#send("relay.publish", event);
  }

  onEvent(handler: BackplaneHandler): void {
    this.#handler = handler;
  }

  subscribe(room: string): void {
    if (this.#interest.add(room)) this.#send("relay.subscribe", room);
  }

  unsubscribe(room: string): void {
    if (this.#interest.remove(room)) this.#send("relay.unsubscribe", room);
  }

  onTrouble(handler: (error: unknown) => void): void {
    this.#trouble = handler;
  }

  close(): Promise<void> {
    this.#handler = undefined;
    return Promise.resolve();
  }
}

/** The coordinator's side: which node listens to which room, and the forwarding. */
export class Relay {
  readonly #ports = new Map<string, Port>();
  readonly #rooms = new Map<string, Set<string>>();

  /** A node (Worker) and the port it is reached on. */
  add(node: string, port: Port): void {
    this.#ports.set(node, port);
  }

  remove(node: string): void {
    this.#ports.delete(node);
    for (const nodes of this.#rooms.values()) nodes.delete(node);
  }

  /** Sends an event to every node but `from` (to the room's listeners for a room's events). */
  forward(event: BackplaneEvent, from: string): void {
    const listeners = "room" in event ? this.#rooms.get(event.room) : this.#ports.keys();
    for (const node of listeners ?? []) {
      if (node !== from) this.#ports.get(node)?.postMessage({ relay: event, node: from } satisfies Relayed);
    }
  }

  handlers(): Record<string, RpcHandler> {
    return {
      "relay.publish": ([node, event]) => this.forward(event as BackplaneEvent, node as string),
      "relay.subscribe": ([node, room]) => {
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
