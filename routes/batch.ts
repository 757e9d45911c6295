/**
 * Batched mode (`/ws?batch=1`): frames for one connection produced in the same turn of the event
 * loop go out as one WebSocket message, one JSON frame per line (newline-delimited JSON, as
 * Centrifugo does). Under load a fan-out then costs one send per connection per batch instead of
 * one per frame. The flush runs in the loop's next timer phase (`setTimeout(0)`, about a
 * millisecond when idle): everything the frames read in this turn produced goes out together.
 */
import { type Encoder, type Peer, QueueEstimate } from "../lib/peer.ts";
import type { User } from "../lib/protocol.ts";

/** A batch is flushed early once it holds this many characters. */
const MAX_BATCH_CHARS = 64 * 1024;

/** Flushes every peer with pending frames once the event loop has turned. */
export class BatchFlusher {
  readonly #dirty = new Set<BatchingSocketPeer>();
  #scheduled = false;

  mark(peer: BatchingSocketPeer): void {
    this.#dirty.add(peer);
    if (this.#scheduled) return;
    this.#scheduled = true;
    setTimeout(() => this.flush(), 0);
  }

  flush(): void {
    this.#scheduled = false;
    for (const peer of this.#dirty) peer.flush();
    this.#dirty.clear();
  }
}

export class BatchingSocketPeer implements Peer {
  readonly #socket: WebSocket;
  readonly #flusher: BatchFlusher;
  #pending: string[] = [];
  #chars = 0;

  constructor(
    socket: WebSocket,
    flusher: BatchFlusher,
    readonly id: string,
    readonly user: User,
    readonly encoder: Encoder,
    readonly liveness: "app" | "transport",
  ) {
    this.#socket = socket;
    this.#flusher = flusher;
  }

  readonly #queue = new QueueEstimate();

  get queuedBytes(): number {
    return this.#queue.bytes(this.#socket.bufferedAmount) + this.#chars;
  }

  send(text: string): void {
    this.#pending.push(text);
    this.#chars += text.length;
    if (this.#pending.length === 1) this.#flusher.mark(this);
    if (this.#chars >= MAX_BATCH_CHARS) this.flush();
  }

  flush(): void {
    if (this.#pending.length === 0) return;
    const text = this.#pending.length === 1 ? this.#pending[0] as string : this.#pending.join("\n");
    this.#pending = [];
    this.#chars = 0;
    if (this.#socket.readyState !== WebSocket.OPEN) return;
    this.#socket.send(text);
    this.#queue.sent(text.length);
  }

  close(code: number, reason: string): void {
    this.flush();
    if (this.#socket.readyState === WebSocket.OPEN || this.#socket.readyState === WebSocket.CONNECTING) {
      this.#socket.close(code, reason.slice(0, 120));
    }
  }
}
