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
  /** A polling request body; `undefined` when any of it is not a packet. */
  decodePayload(body: string | Uint8Array): Packet[] | undefined;
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
  decodePayload(body) {
    // EIO=4 polling is text only: a binary body is not a payload.
    if (typeof body !== "string") return undefined;
    const packets: Packet[] = [];
    for (const raw of v4.decodePayload(body, "arraybuffer")) {
      const packet = fromParser(raw);
      if (!packet) return undefined;
      packets.push(packet);
    }
    return packets.length > 0 ? packets : undefined;
  },
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
  decodePayload(body) {
    const raw = typeof body === "string" ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    const packets: Packet[] = [];
    let failed = false;
    v3.decodePayload(raw, "arraybuffer", (decoded: { type: string; data?: unknown }) => {
      const packet = fromParser(decoded);
      if (!packet) {
        failed = true;
        return false;
      }
      packets.push(packet);
      return true;
    });
    return failed || packets.length === 0 ? undefined : packets;
  },
};

export function codecFor(protocol: Protocol): WireCodec {
  return protocol === 3 ? V3 : V4;
}
