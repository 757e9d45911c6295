/**
 * Engine.IO packets on the wire, for both protocol versions, through the official parsers:
 * `engine.io-parser` 5 (EIO=4: polling packets separated by `\x1e`, binary as `b<base64>`) and
 * its 2.x major (EIO=3: polling packets as `<length>:<packet>`, binary as `b<type><base64>` or as
 * the XHR2 byte format, and binary WebSocket frames led by a type byte). This module only adapts
 * their callback style and node Buffers to strings and `Uint8Array`s.
 */
import { Buffer } from "node:buffer";
import * as v4 from "engine.io-parser";
import * as v3 from "engine.io-parser-v3";

export type PacketType = "open" | "close" | "ping" | "pong" | "message" | "upgrade" | "noop";

/** Binary data is a `Uint8Array` inside the engine (an `ArrayBuffer` when handed to the user). */
export type PacketData = string | Uint8Array;

export interface Packet {
  type: PacketType;
  data?: PacketData;
}

export type Protocol = 3 | 4;

const TYPES = new Set<string>(["open", "close", "ping", "pong", "message", "upgrade", "noop"]);

/** A packet from a parser, or `undefined` for its error packet (or any type we don't know). */
function fromParser(packet: { type: string; data?: unknown }): Packet | undefined {
  if (!TYPES.has(packet.type)) return undefined;
  const { data } = packet;
  if (data === undefined) return { type: packet.type as PacketType };
  if (typeof data === "string") return { type: packet.type as PacketType, data };
  if (data instanceof ArrayBuffer) return { type: packet.type as PacketType, data: new Uint8Array(data) };
  if (ArrayBuffer.isView(data)) {
    return { type: packet.type as PacketType, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  }
  return undefined;
}

/** The parsers want node Buffers for binary data. */
function toParser(packet: Packet): { type: PacketType; data?: string | Buffer } {
  const { type, data } = packet;
  if (data === undefined) return { type };
  if (typeof data === "string") return { type, data };
  return { type, data: Buffer.from(data.buffer, data.byteOffset, data.byteLength) };
}

function bytes(value: unknown): Uint8Array {
  if (value instanceof Uint8Array) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  throw new TypeError("the parser gave no bytes");
}

export interface WireCodec {
  readonly protocol: Protocol;
  /** One WebSocket frame: text, or binary when the client takes binary. */
  encodePacket(packet: Packet, supportsBinary: boolean): string | Uint8Array;
  /** One WebSocket frame; `undefined` when it is not a packet. */
  decodePacket(frame: string | Uint8Array): Packet | undefined;
  /** A polling response body: text, or (EIO=3 with binary and no `b64`) bytes. */
  encodePayload(packets: Packet[], supportsBinary: boolean): string | Uint8Array;
  /** A polling request body's packets, one at a time (a body may hold hundreds of thousands: the
   * caller can stop, or let others run, between two); `undefined` where the body stops making sense
   * (nothing after it is read). */
  payloadPackets(body: string | Uint8Array): Iterable<Packet | undefined>;
}

/** EIO=4: packets separated by `\x1e`. */
function* v4Packets(body: string | Uint8Array): Generator<Packet | undefined> {
  // EIO=4 polling is text only: a binary body is not a payload.
  if (typeof body !== "string" || body === "") return yield undefined;
  for (let at = 0; at <= body.length;) {
    const end = body.indexOf("\x1e", at);
    const raw = body.slice(at, end < 0 ? body.length : end);
    const packet = fromParser(v4.decodePacket(raw, "arraybuffer"));
    yield packet;
    if (!packet || end < 0) return;
    at = end + 1;
  }
}

/** EIO=3 text: `<length>:<packet>` repeated, the length in characters. */
function* v3TextPackets(body: string): Generator<Packet | undefined> {
  if (body === "") return yield undefined;
  for (let at = 0; at < body.length;) {
    const colon = body.indexOf(":", at);
    const digits = colon < 0 ? "" : body.slice(at, colon);
    if (!/^\d{1,9}$/.test(digits)) return yield undefined;
    const length = Number(digits);
    const raw = body.substr(colon + 1, length);
    if (raw.length !== length) return yield undefined;
    at = colon + 1 + length;
    if (length === 0) continue;
    const packet = fromParser(v3.decodePacket(raw, "arraybuffer", false));
    yield packet;
    if (!packet) return;
  }
}

/** EIO=3 bytes (XHR2): per packet a 0 (text) or 1 (binary) byte, the length as one byte per decimal
 * digit, 255, then the packet (text as UTF-8). */
function* v3BinaryPackets(body: Uint8Array): Generator<Packet | undefined> {
  for (let at = 0; at < body.length;) {
    const text = body[at] === 0;
    let end = at + 1;
    let digits = "";
    while (end < body.length && body[end] !== 255 && digits.length < 10) digits += String(body[end++]);
    if (body[end] !== 255 || !/^\d{1,9}$/.test(digits)) return yield undefined;
    const length = Number(digits);
    const bytes = body.subarray(end + 1, end + 1 + length);
    if (bytes.length !== length) return yield undefined;
    at = end + 1 + length;
    const raw = text ? byteString(bytes) : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const packet = fromParser(v3.decodePacket(raw, "arraybuffer", true));
    yield packet;
    if (!packet) return;
  }
}

/** Bytes as a string of one character per byte (what engine.io-parser 2 decodes UTF-8 from). */
function byteString(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 0x2000) out += String.fromCharCode(...bytes.subarray(i, i + 0x2000));
  return out;
}

const V4: WireCodec = {
  protocol: 4,
  encodePacket(packet, supportsBinary) {
    let out: unknown;
    v4.encodePacket(toParser(packet) as v4.Packet, supportsBinary, (encoded: unknown) => out = encoded);
    return typeof out === "string" ? out : bytes(out);
  },
  decodePacket(frame) {
    const raw = typeof frame === "string" ? frame : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
    return fromParser(v4.decodePacket(raw, "arraybuffer"));
  },
  encodePayload(packets) {
    let out = "";
    v4.encodePayload(packets.map(toParser) as v4.Packet[], (encoded: string) => out = encoded);
    return out;
  },
  payloadPackets: v4Packets,
};

const V3: WireCodec = {
  protocol: 3,
  encodePacket(packet, supportsBinary) {
    let out: unknown;
    v3.encodePacket(toParser(packet), supportsBinary, false, (encoded: unknown) => out = encoded);
    return typeof out === "string" ? out : bytes(out);
  },
  decodePacket(frame) {
    const raw = typeof frame === "string" ? frame : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
    return fromParser(v3.decodePacket(raw, "arraybuffer", false));
  },
  encodePayload(packets, supportsBinary) {
    let out: unknown;
    v3.encodePayload(packets.map(toParser), supportsBinary, (encoded: unknown) => out = encoded);
    return typeof out === "string" ? out : bytes(out);
  },
  payloadPackets: (body) => typeof body === "string" ? v3TextPackets(body) : v3BinaryPackets(body),
};

export function codecFor(protocol: Protocol): WireCodec {
  return protocol === 3 ? V3 : V4;
}
