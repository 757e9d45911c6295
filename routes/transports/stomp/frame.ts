/**
 * STOMP frames (https://stomp.github.io/stomp-specification-1.2.html): read from a WebSocket
 * message's bytes and written back. A message holds whole frames (and heart-beat EOLs between
 * them); a frame split over messages is an error here. Bounded: at most MAX_HEADERS headers of
 * MAX_HEADER_BYTES each, a body of `content-length` bytes followed by NULL, or up to the first NULL.
 */

export interface StompFrame {
  command: string;
  /** In the order sent; `header()` gives the first of a name, as the spec says repeated ones mean. */
  headers: [string, string][];
  body: Uint8Array;
}

export const MAX_HEADERS = 64;
export const MAX_HEADER_BYTES = 8192;

const COMMANDS = new Set([
  "CONNECT",
  "STOMP",
  "SEND",
  "SUBSCRIBE",
  "UNSUBSCRIBE",
  "ACK",
  "NACK",
  "BEGIN",
  "COMMIT",
  "ABORT",
  "DISCONNECT",
]);

const LF = 10;
const CR = 13;
const NULL = 0;
const UTF8 = new TextDecoder("utf-8", { fatal: true });
const ENCODER = new TextEncoder();

/** A frame that can't be read: what to tell the client in its ERROR. */
export class StompError {
  constructor(readonly message: string, readonly receipt?: string) {}
}

export function header(frame: StompFrame, name: string): string | undefined {
  for (const [key, value] of frame.headers) if (key === name) return value;
  return undefined;
}

/** 1.2 escapes: \\r \\n \\c \\\\ (CONNECT and CONNECTED are not escaped). */
function unescape(text: string): string | undefined {
  if (!text.includes("\\")) return text;
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c !== "\\") {
      out += c;
      continue;
    }
    const next = text[++i];
    if (next === "n") out += "\n";
    else if (next === "r") out += "\r";
    else if (next === "c") out += ":";
    else if (next === "\\") out += "\\";
    else return undefined;
  }
  return out;
}

function escape(text: string): string {
  return text.replace(/[\\\r\n:]/g, (c) => c === "\\" ? "\\\\" : c === "\r" ? "\\r" : c === "\n" ? "\\n" : "\\c");
}

/** Where the line that starts at `from` ends (its LF), within `limit` bytes, or -1. */
function lineEnd(bytes: Uint8Array, from: number, limit: number): number {
  const end = Math.min(bytes.length, from + limit);
  for (let i = from; i < end; i++) if (bytes[i] === LF) return i;
  return -1;
}

function text(bytes: Uint8Array, from: number, to: number): string | undefined {
  const stop = to > from && bytes[to - 1] === CR ? to - 1 : to;
  try {
    return UTF8.decode(bytes.subarray(from, stop));
  } catch {
    return undefined;
  }
}

/** The frames of one WebSocket message (heart-beats skipped), or why it can't be read. */
export function readFrames(bytes: Uint8Array): StompFrame[] | StompError {
  const frames: StompFrame[] = [];
  let at = 0;
  while (at < bytes.length) {
    // EOLs between frames are heart-beats.
    if (bytes[at] === LF) {
      at++;
      continue;
    }
    if (bytes[at] === CR && bytes[at + 1] === LF) {
      at += 2;
      continue;
    }
    const frame = readFrame(bytes, at);
    if (frame instanceof StompError) return frame;
    frames.push(frame.frame);
    at = frame.next;
  }
  return frames;
}

function readFrame(bytes: Uint8Array, from: number): { frame: StompFrame; next: number } | StompError {
  const commandEnd = lineEnd(bytes, from, 32);
  const command = commandEnd < 0 ? undefined : text(bytes, from, commandEnd);
  if (command === undefined || !COMMANDS.has(command)) return new StompError("Unknown or missing command");
  const escaped = command !== "CONNECT" && command !== "STOMP";
  const headers: [string, string][] = [];
  let at = commandEnd + 1;
  while (true) {
    if (at >= bytes.length) return new StompError("Frame ends before its headers do (no blank line)");
    if (bytes[at] === LF) {
      at++;
      break;
    }
    if (bytes[at] === CR && bytes[at + 1] === LF) {
      at += 2;
      break;
    }
    if (headers.length >= MAX_HEADERS) return new StompError(`A frame may have ${MAX_HEADERS} headers`);
    const end = lineEnd(bytes, at, MAX_HEADER_BYTES);
    if (end < 0) return new StompError(`Header lines end with LF within ${MAX_HEADER_BYTES} bytes`);
    const line = text(bytes, at, end);
    const colon = line?.indexOf(":") ?? -1;
    if (line === undefined || colon <= 0) return new StompError("Headers are name:value lines of UTF-8");
    const name = escaped ? unescape(line.slice(0, colon)) : line.slice(0, colon);
    const value = escaped ? unescape(line.slice(colon + 1)) : line.slice(colon + 1);
    if (name === undefined || value === undefined) return new StompError("A header holds an undefined escape");
    headers.push([name, value]);
    at = end + 1;
  }
  const frame: StompFrame = { command, headers, body: new Uint8Array(0) };
  const length = header(frame, "content-length");
  let end: number;
  if (length !== undefined) {
    const n = /^\d{1,9}$/.test(length) ? Number(length) : NaN;
    if (!Number.isSafeInteger(n)) return new StompError("content-length must be a number of bytes");
    end = at + n;
    if (end >= bytes.length || bytes[end] !== NULL) {
      return new StompError("content-length does not match the body (no NULL after it)", header(frame, "receipt"));
    }
  } else {
    end = bytes.indexOf(NULL, at);
    if (end < 0) return new StompError("Frame has no NULL at its end", header(frame, "receipt"));
  }
  frame.body = bytes.subarray(at, end);
  return { frame, next: end + 1 };
}

/** A frame as text (`body` a string) or bytes (a binary body), with `content-length` set. */
export function writeFrame(
  command: string,
  headers: [string, string][],
  body: string | Uint8Array = "",
): string | Uint8Array {
  const bytes = typeof body === "string" ? undefined : body;
  const length = typeof body === "string" ? ENCODER.encode(body).length : body.length;
  const escaped = command !== "CONNECTED";
  let head = `${command}\n`;
  for (const [name, value] of headers) head += `${escaped ? escape(name) : name}:${escaped ? escape(value) : value}\n`;
  head += `content-length:${length}\n\n`;
  if (!bytes) return `${head}${body}\0`;
  const headBytes = ENCODER.encode(head);
  const out = new Uint8Array(headBytes.length + bytes.length + 1);
  out.set(headBytes);
  out.set(bytes, headBytes.length);
  return out;
}
