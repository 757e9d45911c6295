/**
 * Batched mode (`/ws?batch=1`): frames for one connection produced in the same turn of the event
 * loop go out as one WebSocket message, one JSON frame per line (newline-delimited JSON, as
 * Centrifugo does), and the client may send several frames the same way. Under load a fan-out then
 * costs one send per connection per batch instead of one per frame. The flush runs in the loop's
 * next timer phase (`setTimeout(0)`, about a millisecond when idle): everything the frames read in
 * this turn produced goes out together.
 */
import type { Connection } from "../../../lib/connection.ts";
import type { Hub } from "../../../lib/hub.ts";
import { type Encoder, jsonEncoder, type Peer, QueueEstimate } from "../../../lib/peer.ts";
import { CloseCode, FrameError, type User } from "../../../lib/protocol.ts";
import type { SocketKind } from "../websocket.ts";

/** Frames one batched message may carry. */
export const MAX_BATCH_FRAMES = 100;

/** A batched socket: JSON frames, several per message each way. */
export class BatchKind implements SocketKind {
  readonly transport = "batch";
  readonly joinsInUrl = true;
  readonly #flusher = new BatchFlusher();
  constructor(readonly hub: Hub) {}

  peer(socket: WebSocket, id: string, user: User): Peer {
    return new BatchingSocketPeer(socket, this.#flusher, id, user, jsonEncoder, "app");
  }

  opened(): void {}

  /** Handles a batched message line by line, in order, until the connection is closed (a line
   * may close it). A message of more than MAX_BATCH_FRAMES lines is refused whole and closes the
   * connection (1008): counting its lines costs nothing, handling them could cost the event loop. */
  text(connection: Connection, text: string): void {
    const { frames } = this.hub;
    // Lines, not newlines: a message whose last line ends with "\n" carries no extra frame.
    let lines = text.endsWith("\n") ? 0 : 1;
    for (let at = text.indexOf("\n"); at !== -1; at = text.indexOf("\n", at + 1)) {
      if (++lines > MAX_BATCH_FRAMES) {
        frames.refuse(
          connection,
          new FrameError("too_large", `A batched message may carry at most ${MAX_BATCH_FRAMES} frames`),
        );
        return connection.close(CloseCode.policy, "Too many frames in one message", "batch_too_large");
      }
    }
    for (const line of text.split("\n")) {
      if (connection.closed) return;
      if (line.trim()) frames.receive(connection, line);
    }
  }
}

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
