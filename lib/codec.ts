/**
 * Turns untrusted client text into a typed `ClientFrame` or a `FrameError` that says what is
 * wrong. Every field is checked by shape, never cast; unknown extra fields are ignored. JSON text
 * nested too deeply or holding too many values is refused before it is parsed (`jsonShape`), so
 * nothing later (`JSON.stringify` on the publish path) can overflow the stack on it.
 */
import { type ClientFrame, FrameError, isRoomName, type Position, type Ref, ROOM_RULE } from "./protocol.ts";

/** Largest `limit` a history request may ask for; larger values are clamped. */
export const HISTORY_MAX_LIMIT = 100;
export const HISTORY_DEFAULT_LIMIT = 50;
const MAX_EVENT_LENGTH = 64;
const MAX_USER_ID_LENGTH = 128;

type Json = Record<string, unknown>;

function isRecord(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isOffset(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function readRef(obj: Json): Ref | undefined | FrameError {
  const ref = obj.ref;
  if (ref === undefined) return undefined;
  if (typeof ref === "string" && ref.length <= 128) return ref;
  if (typeof ref === "number" && Number.isFinite(ref)) return ref;
  return new FrameError("bad_request", "Field ref must be a string (≤128 chars) or a number");
}

function room(obj: Json, ref: Ref | undefined): string {
  if (isRoomName(obj.room)) return obj.room;
  const what = obj.room === undefined ? "Field room is required" : `Field room must match ${ROOM_RULE}`;
  throw new FrameError("bad_request", what, ref);
}

function data(obj: Json, ref: Ref | undefined): unknown {
  if (!("data" in obj)) throw new FrameError("bad_request", "Field data is required", ref);
  return obj.data;
}

function since(obj: Json, ref: Ref | undefined): Position | undefined {
  const value = obj.since;
  if (value === undefined || value === null) return undefined;
  if (isRecord(value) && typeof value.epoch === "string" && isOffset(value.offset)) {
    return { epoch: value.epoch, offset: value.offset };
  }
  throw new FrameError(
    "bad_request",
    "Field since must be {epoch: string, offset: integer ≥ 0}",
    ref,
  );
}

function optionalOffset(obj: Json, field: "before" | "after", ref: Ref | undefined): number | undefined {
  const value = obj[field];
  if (value === undefined || value === null) return undefined;
  if (isOffset(value)) return value;
  throw new FrameError("bad_request", `Field ${field} must be an integer ≥ 0`, ref);
}

/** Reads a history page size: absent → 50, above 100 → 100, anything but a positive integer → error
 * (thrown as a `FrameError`). */
export function historyLimit(value: unknown, ref?: Ref): number {
  if (value === undefined || value === null) return HISTORY_DEFAULT_LIMIT;
  if (typeof value === "number" && Number.isSafeInteger(value) && value > 0) {
    return Math.min(value, HISTORY_MAX_LIMIT);
  }
  throw new FrameError("bad_request", "Field limit must be a positive integer", ref);
}

function withRef<T extends object>(frame: T, ref: Ref | undefined): T & { ref?: Ref } {
  return ref === undefined ? frame : { ...frame, ref };
}

function decodeObject(obj: Json, ref: Ref | undefined): ClientFrame {
  switch (obj.type) {
    case "join": {
      const position = since(obj, ref);
      const frame = { type: "join" as const, room: room(obj, ref) };
      return withRef(position ? { ...frame, since: position } : frame, ref);
    }
    case "leave":
      return withRef({ type: "leave", room: room(obj, ref) }, ref);
    case "publish": {
      const frame = { type: "publish" as const, room: room(obj, ref), data: data(obj, ref) };
      const key = obj.key;
      if (key === undefined || key === null) return withRef(frame, ref);
      // The same rule as HTTP's Idempotency-Key.
      if (typeof key !== "string" || !/^[\x21-\x7e]{1,128}$/.test(key)) {
        throw new FrameError("bad_request", "Field key must be 1–128 visible ASCII characters", ref);
      }
      return withRef({ ...frame, key }, ref);
    }
    case "direct": {
      const to = obj.to;
      if (typeof to !== "string" || to.length === 0 || to.length > MAX_USER_ID_LENGTH) {
        throw new FrameError("bad_request", "Field to must be a user id (1–128 chars)", ref);
      }
      return withRef({ type: "direct", to, data: data(obj, ref) }, ref);
    }
    case "signal": {
      const event = obj.event;
      if (typeof event !== "string" || event.length === 0 || event.length > MAX_EVENT_LENGTH) {
        throw new FrameError("bad_request", "Field event must be a string of 1–64 chars", ref);
      }
      const payload = "data" in obj ? obj.data : null;
      return withRef({ type: "signal", room: room(obj, ref), event, data: payload }, ref);
    }
    case "history": {
      const frame: ClientFrame = {
        type: "history",
        room: room(obj, ref),
        limit: historyLimit(obj.limit, ref),
      };
      const before = optionalOffset(obj, "before", ref);
      const after = optionalOffset(obj, "after", ref);
      if (before !== undefined) frame.before = before;
      if (after !== undefined) frame.after = after;
      return withRef(frame, ref);
    }
    case "presence":
      return withRef({ type: "presence", room: room(obj, ref) }, ref);
    case "ping":
      return withRef({ type: "ping" }, ref);
    case "pong":
      return withRef({ type: "pong" }, ref);
    default: {
      const what = typeof obj.type === "string"
        ? `Unknown frame type ${JSON.stringify(obj.type.slice(0, 32))}`
        : "Field type is required";
      throw new FrameError("bad_request", what, ref);
    }
  }
}

/** How deep and how large a client's JSON may be. */
export interface JsonLimits {
  /** Levels of arrays and objects, the frame's own object included. @default 32 */
  maxJsonDepth: number;
  /** Values: every array element and object member, counted by the separators. @default 10000 */
  maxJsonValues: number;
}

export const DEFAULT_JSON_LIMITS: JsonLimits = { maxJsonDepth: 32, maxJsonValues: 10_000 };

const QUOTE = 34;
const BACKSLASH = 92;
const COMMA = 44;
const OPEN_ARRAY = 91;
const CLOSE_ARRAY = 93;
const OPEN_OBJECT = 123;
const CLOSE_OBJECT = 125;

/** Why `text` (JSON or not) is nested deeper or holds more values than `limits` allow, or
 * `undefined`. One pass over the characters, no parsing and no allocation: strings are skipped,
 * brackets counted for depth, brackets and commas for values (an upper bound). */
export function jsonShape(text: string, limits: JsonLimits): string | undefined {
  const { maxJsonDepth, maxJsonValues } = limits;
  // Each level needs a bracket and each value a character: short text can't break either limit.
  if (text.length <= maxJsonDepth && text.length <= maxJsonValues) return undefined;
  let depth = 0;
  let values = 1;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === BACKSLASH) i++;
        else if (d === QUOTE) break;
      }
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > maxJsonDepth) return `JSON is nested deeper than ${maxJsonDepth} levels`;
      if (++values > maxJsonValues) return `JSON holds more than ${maxJsonValues} values`;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      depth--;
    } else if (c === COMMA && ++values > maxJsonValues) {
      return `JSON holds more than ${maxJsonValues} values`;
    }
  }
  return undefined;
}

/** `"ref":<string or number>` as the first or the last field of a frame's object. */
const REF_FIRST = /^\s*\{\s*"ref"\s*:\s*("(?:[^"\\]|\\.){0,128}"|-?\d{1,16}(?:\.\d{1,16})?)\s*[,}]/;
const REF_LAST = /[{,]\s*"ref"\s*:\s*("(?:[^"\\]|\\.){0,128}"|-?\d{1,16}(?:\.\d{1,16})?)\s*\}\s*$/;

/** The ref of a frame refused before it is parsed (too large), where it is its object's first or
 * last field (as clients write it: roomcast.js puts it last), read from at most 300 characters at
 * either end: so that the error still answers the request. `undefined` when not found there. */
export function refNear(text: string): Ref | undefined {
  const found = REF_FIRST.exec(text.slice(0, 300)) ?? REF_LAST.exec(text.slice(-300));
  if (!found?.[1]) return undefined;
  try {
    const ref: unknown = JSON.parse(found[1]);
    return typeof ref === "string" || (typeof ref === "number" && Number.isFinite(ref)) ? ref : undefined;
  } catch {
    return undefined;
  }
}

/** A number too large for a double (`1e400`) parses as Infinity and would be stored as `null`: JSON
 * holding one is refused. The text is looked at first (an exponent of three digits, or 309 digits
 * in a row), and only then the parsed value (depth bounded by `jsonShape`). */
const MAYBE_HUGE = /[eE]\+?\d{3}|\d{309}/;

export function hasHugeNumber(text: string, value: unknown): boolean {
  return MAYBE_HUGE.test(text) && nonFinite(value);
}

function nonFinite(value: unknown): boolean {
  if (typeof value === "number") return !Number.isFinite(value);
  if (typeof value !== "object" || value === null) return false;
  for (const item of Array.isArray(value) ? value : Object.values(value)) if (nonFinite(item)) return true;
  return false;
}

export const HUGE_NUMBER = "JSON holds a number too large to store (it would become null)";

/** A JSON value read from `text` within `limits`, or what is wrong with it, worded for `what`
 * ("Body", "Frame"): too deep or too many values, not JSON, a number JSON can't hold. */
export function jsonValue(text: string, limits: JsonLimits, what: string): { value: unknown } | string {
  const shape = jsonShape(text, limits);
  if (shape !== undefined) return `${what} ${shape.replace(/^JSON /, "")}`;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return `${what} is not valid JSON`;
  }
  if (hasHugeNumber(text, value)) return `${what} ${HUGE_NUMBER.replace(/^JSON /, "")}`;
  return { value };
}

/** `jsonValue`, for a JSON object. */
export function jsonObject(text: string, limits: JsonLimits, what: string): Json | string {
  const read = jsonValue(text, limits, what);
  if (typeof read === "string") return read;
  return isRecord(read.value) ? read.value : `${what} must be a JSON object`;
}

/** Bytes as roomcast carries them inside JSON messages: `{"$binary": "<base64>"}`. */
export function binaryJson(bytes: Uint8Array): { $binary: string } {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return { $binary: btoa(text) };
}

/** The bytes of a `{"$binary": "<base64>"}` value, or undefined when it is not one. */
export function binaryBytes(value: unknown): Uint8Array | undefined {
  if (!isRecord(value)) return undefined;
  const keys = Object.keys(value);
  if (keys.length !== 1 || typeof value.$binary !== "string") return undefined;
  try {
    return Uint8Array.from(atob(value.$binary), (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}

/** Decodes one text frame. Returns the error instead of throwing, with the frame's `ref` when it had a valid one. */
export function decodeClientFrame(text: string, limits: JsonLimits = DEFAULT_JSON_LIMITS): ClientFrame | FrameError {
  const shape = jsonShape(text, limits);
  if (shape !== undefined) return new FrameError("bad_request", shape);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return new FrameError("bad_request", "Frame is not valid JSON");
  }
  if (!isRecord(parsed)) return new FrameError("bad_request", "Frame must be a JSON object");
  const ref = readRef(parsed);
  if (ref instanceof FrameError) return ref;
  if (hasHugeNumber(text, parsed)) return new FrameError("bad_request", HUGE_NUMBER, ref);
  try {
    return decodeObject(parsed, ref);
  } catch (err) {
    if (err instanceof FrameError) return err;
    throw err;
  }
}

/** A frame a transport built from what its own parser read (Socket.IO's packets), checked as
 * `decodeClientFrame` checks a parsed frame: JSON is not parsed again. Its JSON shape and numbers
 * are the transport's to have checked. */
export function decodeClientValue(value: Record<string, unknown>): ClientFrame | FrameError {
  const ref = readRef(value);
  if (ref instanceof FrameError) return ref;
  try {
    return decodeObject(value, ref);
  } catch (err) {
    if (err instanceof FrameError) return err;
    throw err;
  }
}

const encoder = new TextEncoder();

/** Whether `text` is longer than `max` bytes in UTF-8; encodes only when its length can't tell. */
export function exceedsBytes(text: string, max: number): boolean {
  if (text.length > max) return true;
  if (text.length * 3 <= max) return false;
  return encoder.encode(text).length > max;
}
