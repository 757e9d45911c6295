/**
 * Socket.IO packets checked per Engine.IO session before socket.io parses them: a session carries
 * at most one connection per namespace (a CONNECT while one is pending or open ends the session:
 * socket.io would make a socket for each), at most MAX_NAMESPACES of them, and every CONNECT after
 * the session's first spends the address's connect rate, as a new connection would; a BINARY
 * packet announces at most MAX_ATTACHMENTS attachments, whose bytes are counted as they arrive
 * (at most `maxPayload` for one packet), and binary data comes only where an attachment is due;
 * JSON stays within the shape limits. What the server sends tells the gate when a connection
 * opened or ended.
 */
import { type JsonLimits, jsonShape } from "../../../lib/codec.ts";
import type { PacketGate } from "./eio/socket.ts";

/** Attachments one BINARY_EVENT or BINARY_ACK may carry (socket.io sets no bound). */
export const MAX_ATTACHMENTS = 10;
/** Namespaces one session may connect to, or try to. */
const MAX_NAMESPACES = 4;

const CONNECT = 0;
const DISCONNECT = 1;
const CONNECT_ERROR = 4;
const BINARY_EVENT = 5;
const BINARY_ACK = 6;

/** What every session's gate shares (one object for all of them). */
export interface GateOptions<S extends GatedSession = GatedSession> {
  limits: JsonLimits;
  /** Bytes of attachments one packet may carry. */
  maxPayload: number;
  /** Spends `session`'s connect rate for a CONNECT after its first: false refuses it. */
  again(session: S): boolean;
}

/** The session a gate watches: Engine.IO 3 (Socket.IO 2.x clients) has its default namespace
 * connected without a CONNECT. */
export interface GatedSession {
  readonly protocol: 3 | 4;
}

/** A packet's type and namespace, read from its head without parsing the rest. */
interface Head {
  type: number;
  nsp: string;
  /** BINARY packets: the attachments announced; else 0. */
  attachments: number;
}

/** Reads `<type>[<attachments>-][/<nsp>,]…`; undefined for text that is no packet (socket.io
 * refuses it itself). */
export function packetHead(text: string): Head | undefined {
  const type = text.charCodeAt(0) - 48;
  if (!(type >= 0 && type <= 6)) return undefined;
  let at = 1;
  let attachments = 0;
  if (type === BINARY_EVENT || type === BINARY_ACK) {
    const dash = text.indexOf("-", at);
    const digits = dash < 0 ? "" : text.slice(at, dash);
    if (!/^\d{1,6}$/.test(digits)) return { type, nsp: "/", attachments: Infinity };
    attachments = Number(digits);
    at = dash + 1;
  }
  let nsp = "/";
  if (text[at] === "/") {
    const comma = text.indexOf(",", at);
    nsp = comma < 0 ? text.slice(at) : text.slice(at, comma);
    // Engine.IO 3 clients put a query after the namespace.
    const query = nsp.indexOf("?");
    if (query >= 0) nsp = nsp.slice(0, query);
  }
  return { type, nsp, attachments };
}

export class SocketIoGate<S extends GatedSession> implements PacketGate {
  readonly #options: GateOptions<S>;
  readonly #session: S;
  /** Namespaces connecting or connected (MAX_NAMESPACES at most: a short list). */
  readonly #namespaces: string[] = [];
  #connects = 0;
  /** Attachments still due for the last BINARY packet, and their bytes so far. */
  #due = 0;
  #dueBytes = 0;

  constructor(options: GateOptions<S>, session: S) {
    this.#options = options;
    this.#session = session;
    if (session.protocol === 3) {
      this.#namespaces.push("/");
      this.#connects = 1;
    }
  }

  #forget(nsp: string): void {
    const at = this.#namespaces.indexOf(nsp);
    if (at >= 0) this.#namespaces.splice(at, 1);
  }

  inbound(data: string | Uint8Array): string | undefined {
    if (typeof data !== "string") return this.#attachment(data.byteLength);
    if (this.#due > 0) return "a text packet came while attachments were due";
    const head = packetHead(data);
    if (head === undefined) return undefined;
    switch (head.type) {
      case CONNECT: {
        if (this.#namespaces.includes(head.nsp)) return `namespace ${head.nsp.slice(0, 64)} is connected or connecting`;
        if (this.#namespaces.length >= MAX_NAMESPACES) return "too many namespaces";
        if (this.#connects++ > 0 && !this.#options.again(this.#session)) return "connecting too often";
        this.#namespaces.push(head.nsp);
        break;
      }
      case DISCONNECT:
        this.#forget(head.nsp);
        break;
      case BINARY_EVENT:
      case BINARY_ACK:
        if (!(head.attachments >= 1 && head.attachments <= MAX_ATTACHMENTS)) {
          return `a packet may carry 1 to ${MAX_ATTACHMENTS} attachments`;
        }
        this.#due = head.attachments;
        this.#dueBytes = 0;
        break;
    }
    return jsonShape(data, this.#options.limits) === undefined ? undefined : "JSON too deep or too large";
  }

  #attachment(bytes: number): string | undefined {
    if (this.#due === 0) return "binary data came where no attachment was due";
    this.#due--;
    this.#dueBytes += bytes;
    return this.#dueBytes > this.#options.maxPayload ? "attachments too large" : undefined;
  }

  outbound(data: string | Uint8Array): void {
    if (typeof data !== "string") return;
    const head = packetHead(data);
    // A refused or ended connection frees its namespace (an open one keeps it).
    if (head?.type === CONNECT_ERROR || head?.type === DISCONNECT) this.#forget(head.nsp);
  }
}
