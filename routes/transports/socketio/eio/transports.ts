/**
 * Engine.IO's two transports, fetch-style: HTTP long-polling (a held GET answered when packets are
 * due, POSTs carrying packets in) and a WebSocket from `Deno.upgradeWebSocket`. A transport knows
 * its wire format and its writability; the session (`EngineSocket`) decides what to send.
 */
import { bodyErrorStatus, readBody } from "../../../body.ts";
import type { Packet, WireCodec } from "./parser.ts";

/** What a transport tells its session. */
export interface TransportOwner {
  onPacket(packet: Packet): void;
  /** The transport failed or the client broke the protocol: the session ends. */
  onTransportError(reason: string, description?: string): void;
  /** The transport closed (the client went). */
  onTransportClose(): void;
  /** It can take packets now (a GET arrived). */
  onWritable(): void;
}

export interface Transport {
  readonly name: "polling" | "websocket";
  readonly writable: boolean;
  owner: TransportOwner | undefined;
  send(packets: Packet[]): void;
  /** Ends the transport after sending `last` and a `close` packet (polling: now, or on the next
   * GET, or never if none comes within its close timeout); then calls `onClosed`. */
  close(onClosed?: () => void, last?: Packet[]): void;
  /** Ends it now: a held GET gets the close packet, a WebSocket is closed. */
  abort(): void;
  /** Bytes handed to the runtime and not yet sent (WebSocket), or waiting for a GET (polling). */
  readonly bufferedAmount: number;
}

export interface PollingOptions {
  codec: WireCodec;
  supportsBinary: boolean;
  maxPayload: number;
  bodyTimeoutMs: number;
  /** How long a close waits for the GET that would carry the close packet. */
  closeTimeoutMs: number;
}

const TEXT = "text/plain; charset=UTF-8";
/** What a transport says of a message over the payload cap. */
export const PAYLOAD_TOO_LARGE = "payload too large";
/** How long one POST's packets may hold the event loop before others get a turn (ms). */
const SLICE_MS = 4;

export class PollingTransport implements Transport {
  readonly name = "polling";
  owner: TransportOwner | undefined;
  readonly #options: PollingOptions;
  /** The held GET (and the headers its answer carries): answering it sends packets. */
  #held: { resolve(response: Response): void; headers: Headers } | undefined;
  #posting = false;
  #closing: { done(): void; last: Packet[] } | undefined;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /** Set while an upgrade is under way: a GET is answered with a noop at once. */
  upgrading = false;

  constructor(options: PollingOptions) {
    this.#options = options;
  }

  get writable(): boolean {
    return this.#held !== undefined;
  }

  get bufferedAmount(): number {
    return 0;
  }

  #respond(headers: Headers, body: string | Uint8Array, status = 200, type = TEXT): Response {
    headers.set("content-type", typeof body === "string" ? type : "application/octet-stream");
    headers.set("cache-control", "no-store");
    return new Response(body as BodyInit, { status, headers });
  }

  #plain(headers: Headers, status: number): Response {
    return new Response(null, { status, headers });
  }

  /** A GET: held until there are packets to send. */
  get(request: Request, headers: Headers): Promise<Response> {
    if (this.#closed) return Promise.resolve(this.#plain(headers, 400));
    if (this.#held) {
      // Two polls at once: the client is broken or hostile. The session ends (the held GET gets
      // the close packet) and this one is refused.
      this.owner?.onTransportError("transport error", "overlap from client");
      return Promise.resolve(this.#plain(headers, 400));
    }
    if (this.#closing) return Promise.resolve(this.#finish(headers, this.#closing.last));
    const { promise, resolve } = Promise.withResolvers<Response>();
    this.#held = { resolve, headers };
    request.signal.addEventListener("abort", () => {
      if (this.#held?.resolve !== resolve) return;
      this.#held = undefined;
      this.owner?.onTransportError("transport error", "poll connection closed prematurely");
    }, { once: true });
    if (this.upgrading) this.send([{ type: "noop" }]);
    else this.owner?.onWritable();
    return promise;
  }

  /** The last response: `packets` and the close packet; the transport is done. */
  #finish(headers: Headers, packets: Packet[]): Response {
    const closing = this.#closing;
    this.#closing = undefined;
    clearTimeout(this.#closeTimer);
    this.#closed = true;
    const response = this.#respond(headers, this.#encode([...packets, { type: "close" }]));
    closing?.done();
    return response;
  }

  /** A POST: its packets, in order; `ok` once they are handled. */
  async post(request: Request, headers: Headers): Promise<Response> {
    if (this.#closed) return this.#plain(headers, 400);
    if (this.#posting) {
      this.owner?.onTransportError("transport error", "overlap from client");
      return this.#plain(headers, 400);
    }
    const { codec, maxPayload, bodyTimeoutMs } = this.#options;
    const binary = /^application\/octet-stream/i.test(request.headers.get("content-type") ?? "");
    if (binary && codec.protocol === 4) {
      this.owner?.onTransportError("transport error", "invalid content");
      return this.#plain(headers, 400);
    }
    this.#posting = true;
    let bytes: Uint8Array;
    try {
      bytes = await readBody(request, { maxBytes: maxPayload, timeoutMs: bodyTimeoutMs });
    } catch (error) {
      this.#posting = false;
      return this.#plain(headers, bodyErrorStatus(error));
    }
    try {
      if (!await this.#handle(codec.payloadPackets(binary ? bytes : new TextDecoder().decode(bytes)))) {
        this.owner?.onTransportError("parse error");
        return this.#plain(headers, 400);
      }
    } finally {
      this.#posting = false;
    }
    return this.#respond(headers, "ok", 200, "text/html");
  }

  /** Hands a body's packets to the session in order, letting the event loop run every SLICE_MS (a
   * body of 300,000 tiny packets would otherwise hold it for a quarter of a second); stops once the
   * session is gone. False where the body stopped making sense. */
  async #handle(packets: Iterable<Packet | undefined>): Promise<boolean> {
    let slice = performance.now();
    let count = 0;
    for (const packet of packets) {
      if (!this.owner || this.#closed) return true;
      if (!packet) return false;
      if (packet.type === "close") {
        // The client closes: a held GET learns it with a noop, and the session ends.
        if (this.#held) this.send([{ type: "noop" }]);
        this.owner.onTransportClose();
        return true;
      }
      this.owner.onPacket(packet);
      if (++count % 64 === 0 && performance.now() - slice > SLICE_MS) {
        await new Promise((resolve) => setTimeout(resolve, 0));
        slice = performance.now();
      }
    }
    return true;
  }

  #encode(packets: Packet[]): string | Uint8Array {
    return this.#options.codec.encodePayload(packets, this.#options.supportsBinary);
  }

  send(packets: Packet[]): void {
    const held = this.#held;
    if (!held || this.#closed) return;
    this.#held = undefined;
    held.resolve(
      this.#closing
        ? this.#finish(held.headers, [...this.#closing.last, ...packets])
        : this.#respond(held.headers, this.#encode(packets)),
    );
  }

  close(onClosed: () => void = () => {}, last: Packet[] = []): void {
    if (this.#closed || this.#closing) return;
    this.#closing = { done: onClosed, last };
    if (this.#held) return this.send([]);
    // The close packet goes with the next GET; a client that never comes back is given up on.
    this.#closeTimer = setTimeout(() => {
      this.#closing = undefined;
      this.#closed = true;
      onClosed();
    }, this.#options.closeTimeoutMs);
  }

  abort(): void {
    if (this.#closed) return;
    if (this.#held) {
      this.#closing ??= { done: () => {}, last: [] };
      this.send([]);
    }
    clearTimeout(this.#closeTimer);
    this.#closing = undefined;
    this.#closed = true;
  }

  /** Dropped for a WebSocket after an upgrade: a held GET gets a noop. */
  discard(): void {
    if (this.#held) this.send([{ type: "noop" }]);
    clearTimeout(this.#closeTimer);
    this.#closing = undefined;
    this.#closed = true;
  }
}

export interface WebSocketOptions {
  codec: WireCodec;
  supportsBinary: boolean;
  maxPayload: number;
}

export class WebSocketTransport implements Transport {
  readonly name = "websocket";
  owner: TransportOwner | undefined;
  readonly socket: WebSocket;
  readonly #options: WebSocketOptions;
  #open = false;
  #closeWanted = false;
  #pending: Packet[] = [];

  constructor(socket: WebSocket, options: WebSocketOptions) {
    this.socket = socket;
    this.#options = options;
    socket.binaryType = "arraybuffer";
    socket.addEventListener("open", this);
    socket.addEventListener("message", this);
    socket.addEventListener("close", this);
  }

  get writable(): boolean {
    return this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING;
  }

  get bufferedAmount(): number {
    return this.socket.bufferedAmount;
  }

  handleEvent(event: Event): void {
    switch (event.type) {
      case "open": {
        this.#open = true;
        if (this.#closeWanted) return this.socket.close();
        const pending = this.#pending;
        this.#pending = [];
        if (pending.length > 0) this.send(pending);
        return;
      }
      case "message":
        return this.#message((event as MessageEvent).data);
      case "close":
        return this.owner?.onTransportClose();
    }
  }

  #message(data: unknown): void {
    const frame = typeof data === "string" ? data : data instanceof ArrayBuffer ? new Uint8Array(data) : undefined;
    if (frame === undefined) return this.owner?.onTransportError("parse error");
    const size = typeof frame === "string" ? frame.length : frame.byteLength;
    if (size > this.#options.maxPayload) return this.owner?.onTransportError("transport error", PAYLOAD_TOO_LARGE);
    const packet = this.#options.codec.decodePacket(frame);
    if (!packet) return this.owner?.onTransportError("parse error");
    this.owner?.onPacket(packet);
  }

  send(packets: Packet[]): void {
    if (!this.#open) {
      this.#pending.push(...packets);
      return;
    }
    if (this.socket.readyState !== WebSocket.OPEN) return;
    const { codec, supportsBinary } = this.#options;
    for (const packet of packets) this.socket.send(codec.encodePacket(packet, supportsBinary));
  }

  close(onClosed: () => void = () => {}, last: Packet[] = []): void {
    if (last.length > 0) this.send(last);
    this.abort();
    onClosed();
  }

  abort(): void {
    // A socket still opening can't be closed yet in Deno: it is, as soon as it opens.
    if (this.socket.readyState === WebSocket.CONNECTING) this.#closeWanted = true;
    else if (this.socket.readyState === WebSocket.OPEN) this.#closeWhenSent(Date.now() + 1000);
  }

  /** Deno may write a close frame before messages sent just before it: what was sent goes first
   * (for at most a second). */
  #closeWhenSent(deadline: number): void {
    if (this.socket.readyState !== WebSocket.OPEN) return;
    if (this.socket.bufferedAmount === 0 || Date.now() > deadline) return this.socket.close();
    setTimeout(() => this.#closeWhenSent(deadline), 5);
  }
}
