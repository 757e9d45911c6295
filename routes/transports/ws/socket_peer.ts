/**
 * Turns a server-side WebSocket into the hub's `Peer`. Deno's `send()` queues every message it
 * can't write yet, at about 1 KiB of memory per message besides its payload (lib/peer.ts). Once
 * a socket's queue in Deno passes DENO_QUEUE_HIGH, further frames wait here instead, as references
 * to text that every receiver of a fan-out shares (8 bytes each), and a pump hands them to Deno as
 * its queue drains. The hub's send-queue cap still counts them as Deno would hold them, so slow
 * consumers are closed (4008) at the same backlog, but a backlog costs a fraction of the memory.
 */
import { type Encoder, type Peer, QUEUED_MESSAGE_OVERHEAD, QueueEstimate } from "../../../lib/peer.ts";
import type { User } from "../../../lib/protocol.ts";

/** What Deno may hold for one socket (payload plus per-message overhead, estimated) before frames
 * wait in this process: about 25 small frames. */
const DENO_QUEUE_HIGH = 32 * 1024;
/** How long the pump waits after a pass that handed nothing to Deno (its queues were full). */
const PUMP_IDLE_MS = 5;

/** Hands waiting frames to Deno as its queues drain, for every socket that has some: in the next
 * turn of the event loop (after Deno has written what it could) while that hands frames on,
 * every PUMP_IDLE_MS while nothing drains. */
const pump = {
  peers: new Set<SocketPeer>(),
  timer: undefined as ReturnType<typeof setTimeout> | undefined,
  add(peer: SocketPeer): void {
    this.peers.add(peer);
    this.timer ??= setTimeout(() => this.run(), 0);
  },
  remove(peer: SocketPeer): void {
    this.peers.delete(peer);
    if (this.peers.size > 0 || this.timer === undefined) return;
    clearTimeout(this.timer);
    this.timer = undefined;
  },
  run(): void {
    this.timer = undefined;
    let moved = false;
    for (const peer of this.peers) {
      const { sent, done } = peer.pump();
      moved ||= sent > 0;
      if (done) this.peers.delete(peer);
    }
    if (this.peers.size > 0) this.timer = setTimeout(() => this.run(), moved ? 0 : PUMP_IDLE_MS);
  },
};

export class SocketPeer implements Peer {
  readonly #socket: WebSocket;
  readonly #queue = new QueueEstimate();
  /** Frames waiting to be handed to Deno, from `#head` on, and their characters. */
  #waiting: string[] = [];
  #head = 0;
  #waitingChars = 0;
  /** Deno's queue as last measured (estimated bytes), and what was sent since. */
  #measured = 0;
  #sentSince = 0;

  constructor(
    socket: WebSocket,
    readonly id: string,
    /** Changes only where a subclass lets it (a Pusher connection signing in). */
    public user: User,
    readonly encoder: Encoder,
    /** Changes only where a subclass lets it (a STOMP client that sends no heart-beats). */
    public liveness: "app" | "transport",
  ) {
    this.#socket = socket;
  }

  get queuedBytes(): number {
    return this.#denoQueue() + this.#waitingBytes();
  }

  get queuedAtMost(): number {
    return this.#denoAtMost() + this.#waitingBytes();
  }

  send(text: string): void {
    if (this.#socket.readyState !== WebSocket.OPEN) return;
    // Measured again only when what was sent since the last measurement could have filled it.
    if (
      this.#waiting.length > this.#head || (this.#denoAtMost() > DENO_QUEUE_HIGH &&
        this.#denoQueue() > DENO_QUEUE_HIGH)
    ) {
      this.#waiting.push(text);
      this.#waitingChars += text.length;
      pump.add(this);
      return;
    }
    this.#write(text);
  }

  /** Offers waiting frames to Deno: how many it took, and whether none are left (or the socket is
   * gone). */
  pump(): { sent: number; done: boolean } {
    if (this.#socket.readyState !== WebSocket.OPEN) return { sent: 0, done: this.#drop() };
    let sent = 0;
    this.#denoQueue();
    while (this.#head < this.#waiting.length && this.#denoAtMost() <= DENO_QUEUE_HIGH) {
      const text = this.#waiting[this.#head++] as string;
      this.#waitingChars -= text.length;
      this.#write(text);
      sent++;
    }
    if (this.#head < this.#waiting.length) {
      if (this.#head >= 256 && this.#head * 2 >= this.#waiting.length) {
        this.#waiting = this.#waiting.slice(this.#head);
        this.#head = 0;
      }
      return { sent, done: false };
    }
    return { sent, done: this.#drop() };
  }

  close(code: number, reason: string): void {
    this.#drop();
    pump.remove(this);
    if (this.#socket.readyState === WebSocket.OPEN || this.#socket.readyState === WebSocket.CONNECTING) {
      this.#socket.close(code, reason.slice(0, 120));
    }
  }

  #write(text: string): void {
    this.#socket.send(text);
    this.#queue.sent(text.length);
    this.#sentSince += text.length + QUEUED_MESSAGE_OVERHEAD;
  }

  /** Deno's queue for this socket at most, without measuring: as last measured, plus what was
   * sent since. */
  #denoAtMost(): number {
    return this.#measured + this.#sentSince;
  }

  /** What the frames waiting here would hold in Deno. */
  #waitingBytes(): number {
    return this.#waitingChars + (this.#waiting.length - this.#head) * QUEUED_MESSAGE_OVERHEAD;
  }

  /** Measures Deno's queue for this socket (estimated bytes). */
  #denoQueue(): number {
    this.#measured = this.#queue.bytes(this.#socket.bufferedAmount);
    this.#sentSince = 0;
    return this.#measured;
  }

  /** Forgets the waiting frames; true. */
  #drop(): boolean {
    this.#waiting = [];
    this.#head = 0;
    this.#waitingChars = 0;
    return true;
  }
}
