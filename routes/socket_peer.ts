/** Turns a server-side WebSocket into the hub's `Peer`. */
import type { Encoder, Peer } from "../lib/peer.ts";
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

  get bufferedAmount(): number {
    return this.#socket.bufferedAmount;
  }

  send(text: string): void {
    if (this.#socket.readyState === WebSocket.OPEN) this.#socket.send(text);
  }

  close(code: number, reason: string): void {
    if (this.#socket.readyState === WebSocket.OPEN || this.#socket.readyState === WebSocket.CONNECTING) {
      this.#socket.close(code, reason.slice(0, 120));
    }
  }
}
