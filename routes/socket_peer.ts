/** Turns a server-side WebSocket into the hub's `Peer`. */
import { type Encoder, type Peer, QueueEstimate } from "../lib/peer.ts";
import type { User } from "../lib/protocol.ts";

export class SocketPeer implements Peer {
  readonly #socket: WebSocket;
  constructor(
    socket: WebSocket,
    readonly id: string,
    readonly user: User,
    readonly encoder: Encoder,
    readonly liveness: "app" | "transport",
  ) {
    this.#socket = socket;
  }

  readonly #queue = new QueueEstimate();

  get queuedBytes(): number {
    return this.#queue.bytes(this.#socket.bufferedAmount);
  }

  send(text: string): void {
    if (this.#socket.readyState !== WebSocket.OPEN) return;
    this.#socket.send(text);
    this.#queue.sent(text.length);
  }

  close(code: number, reason: string): void {
    if (this.#socket.readyState === WebSocket.OPEN || this.#socket.readyState === WebSocket.CONNECTING) {
      this.#socket.close(code, reason.slice(0, 120));
    }
  }
}
