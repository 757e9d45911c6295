/**
 * What the hub knows of a connection: a `Peer` that transport adapters (routes/) build from a
 * socket, and the `Encoder` that turns server frames into that transport's text. `Outbound`
 * encodes a frame once per encoder, however many peers receive it.
 */
import type { ServerFrame, User } from "./protocol.ts";

/** Turns a frame into the text a transport sends, or `undefined` when it has no such frame. */
export interface Encoder {
  encode(frame: ServerFrame): string | undefined;
}

export interface Peer {
  readonly id: string;
  readonly user: User;
  readonly encoder: Encoder;
  /** "app": the hub sends `ping` frames and closes with 4000 when no frame comes back in time;
   * "transport": liveness is the transport's own (WebSocket ping/pong). */
  readonly liveness: "app" | "transport";
  /** Memory held for data queued but not yet sent, in bytes: the payload plus what each queued
   * message costs the runtime besides (see `QueueEstimate`). The send-queue cap applies to it. */
  readonly queuedBytes: number;
  /** At least `queuedBytes`, known without asking the runtime (whose answer is a call into it):
   * lets a check that would pass skip the measurement. Absent: measure. */
  readonly queuedAtMost?: number;
  /** Takes another user (a Pusher connection signing in): only `Hub.reidentify` calls it. Absent:
   * the peer's user is fixed. */
  become?(user: User): void;
  /** Sends `text`, the encoding of `frame` (given for transports that frame by type, like SSE). */
  send(text: string, frame: ServerFrame): void;
  close(code: number, reason: string): void;
}

/** What one queued WebSocket message costs Deno besides its payload (its write task and buffers):
 * `deno run -A bench/queue_overhead.ts` measures it (bench/RESULTS.md, "Figures behind the code"); this is
 * rounded up from what it found. */
export const QUEUED_MESSAGE_OVERHEAD = 1024;

/** Estimates the memory a transport's unsent messages hold from the bytes it reports unsent and
 * the average size of what it has sent: small messages cost more than their bytes. */
export class QueueEstimate {
  #messages = 0;
  #chars = 0;

  sent(chars: number): void {
    this.#messages++;
    this.#chars += chars;
  }

  /** `unsent` payload bytes plus the overhead of about `unsent / average size` messages. */
  bytes(unsent: number): number {
    if (unsent <= 0 || this.#messages === 0) return Math.max(0, unsent);
    const average = Math.max(1, this.#chars / this.#messages);
    return unsent + Math.ceil(unsent / average) * QUEUED_MESSAGE_OVERHEAD;
  }
}

export const jsonEncoder: Encoder = { encode: (frame) => JSON.stringify(frame) };

/** Raw rooms: message and broadcast payloads as text (strings as-is), errors as JSON, nothing else. */
export const rawEncoder: Encoder = {
  encode(frame) {
    switch (frame.type) {
      case "message":
      case "broadcast":
        return typeof frame.data === "string" ? frame.data : JSON.stringify(frame.data);
      case "error":
        return JSON.stringify(frame);
      default:
        return undefined;
    }
  },
};

/** JSON already made for a frame object (the store encodes each message once): reused by `Outbound`. */
const knownJson = new WeakMap<ServerFrame, string>();

/** Records that `json` is exactly `JSON.stringify(frame)`. */
export function rememberJson(frame: ServerFrame, json: string): void {
  knownJson.set(frame, json);
}

/** A frame on its way to many peers, encoded at most once per encoder. */
export class Outbound {
  #encoder: Encoder | undefined;
  #text: string | undefined;
  #more: Map<Encoder, string | undefined> | undefined;

  constructor(readonly frame: ServerFrame) {
    const json = knownJson.get(frame);
    if (json !== undefined) {
      this.#encoder = jsonEncoder;
      this.#text = json;
    }
  }

  text(encoder: Encoder): string | undefined {
    if (encoder === this.#encoder) return this.#text;
    if (this.#encoder === undefined) {
      this.#encoder = encoder;
      this.#text = encoder.encode(this.frame);
      return this.#text;
    }
    this.#more ??= new Map();
    if (this.#more.has(encoder)) return this.#more.get(encoder);
    const text = encoder.encode(this.frame);
    this.#more.set(encoder, text);
    return text;
  }
}
