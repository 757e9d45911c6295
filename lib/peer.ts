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
  /** Bytes queued but not yet sent. */
  readonly bufferedAmount: number;
  /** Sends `text`, the encoding of `frame` (given for transports that frame by type, like SSE). */
  send(text: string, frame: ServerFrame): void;
  close(code: number, reason: string): void;
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
