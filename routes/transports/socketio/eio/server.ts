/**
 * An Engine.IO server for a fetch-style runtime: `handle(request)` answers every request under its
 * path (handshakes, polls, posts, WebSocket upgrades through `Deno.upgradeWebSocket`) for
 * protocol 4 and, if allowed, 3. It emits `connection` with each new session (`EngineSocket`),
 * which is what the official `socket.io` Server takes: `io.bind(engine)`. Errors are Engine.IO's:
 * `{"code": n, "message": "…"}` with status 400 (403 for code 4).
 */
import { EventEmitter } from "node:events";
import { bodyErrorStatus, readBody } from "../../../body.ts";
import { sessionId } from "../../../../lib/ids.ts";
import { forwardedRequest, ownerOf, requestFrom, responseFrom, type SessionRouting } from "./forward.ts";
import { codecFor, type Protocol } from "./parser.ts";
import { Heartbeats } from "./heartbeats.ts";
import { EngineSocket, type Handshake, type PacketGate, type SessionOptions, type SessionSlot } from "./socket.ts";
import { PollingTransport, type Transport, type WebSocketOptions, WebSocketTransport } from "./transports.ts";

export interface EngineServerOptions extends SessionOptions {
  /** The protocol versions served: [4], or [3, 4]. */
  protocols: readonly Protocol[];
  /** How long a POST body may take to arrive. @default 10000 */
  bodyTimeoutMs?: number;
  /** How long a closing polling session waits for the GET that carries its close packet. @default 30000 */
  closeTimeoutMs?: number;
  /** Headers for every response to `request` (CORS), or none. */
  headers?: (request: Request) => Headers;
  /** Runs before a session is made: a Response refuses it (and ends there); a slot lets it through,
   * held by the session (`EngineSocket.slot`) and released when it ends. */
  admit?: (request: Request, info: RequestInfo) => Response | SessionSlot | Promise<Response | SessionSlot>;
  /** Made for each new session, before its first packet: sees every message in and out (the
   * Socket.IO layer's packet checks, routes/transports/socketio/gate.ts). */
  gate?: (socket: EngineSocket) => PacketGate;
  /** A session id: unguessable. @default 15 random bytes, base64url */
  generateId?: () => string;
  /** Several isolates on one port: session ids name their isolate, and a request for another
   * isolate's session is forwarded to it (routes/transports/socketio/eio/forward.ts). */
  routing?: SessionRouting | undefined;
}

export interface RequestInfo {
  remoteAddress: string;
  /** Whatever the caller passes along (the web framework's context), for `admit`. */
  context?: unknown;
}

/** Engine.IO's own heartbeat finds dead peers: Deno's idle timeout (a timer per socket, made again
 * for every message that comes) is off. */
const NO_IDLE_TIMEOUT = { idleTimeout: 0 };

const ERRORS = {
  0: "Transport unknown",
  1: "Session ID unknown",
  2: "Bad handshake method",
  3: "Bad request",
  4: "Forbidden",
  5: "Unsupported protocol version",
} as const;

export class EngineServer extends EventEmitter {
  readonly clients = new Map<string, EngineSocket>();
  readonly options: EngineServerOptions;
  /** Every session's heartbeat deadlines, on a few timers. */
  readonly heartbeats: Heartbeats;

  #forwards = 0;

  constructor(options: EngineServerOptions) {
    super();
    this.options = options;
    this.heartbeats = new Heartbeats(options);
    options.routing?.serve((forwarded, signal) =>
      this.handle(requestFrom(forwarded, signal), { remoteAddress: forwarded.remoteAddress })
    );
  }

  get clientsCount(): number {
    return this.clients.size;
  }

  #headers(request: Request): Headers {
    return this.options.headers?.(request) ?? new Headers();
  }

  #error(request: Request, code: keyof typeof ERRORS): Response {
    const headers = this.#headers(request);
    headers.set("content-type", "application/json");
    return new Response(JSON.stringify({ code, message: ERRORS[code] }), { status: code === 4 ? 403 : 400, headers });
  }

  /** Answers one request under the engine's path. */
  async handle(request: Request, info: RequestInfo): Promise<Response> {
    if (request.method === "OPTIONS") return new Response(null, { status: 204, headers: this.#headers(request) });
    const url = new URL(request.url);
    const query = url.searchParams;
    const transport = query.get("transport");
    if (transport !== "polling" && transport !== "websocket") return this.#error(request, 0);
    // EIO=3's JSONP polling (`j=`, for browsers without XHR2/CORS) is not served: a clear refusal
    // rather than answers such a client can't read.
    if (query.has("j")) return this.#error(request, 3);
    const upgrade = request.headers.get("upgrade")?.toLowerCase() === "websocket";
    const sid = query.get("sid");
    if (sid !== null) {
      const socket = this.clients.get(sid);
      if (!socket) {
        const owner = ownerOf(sid);
        const routing = this.options.routing;
        if (routing && owner && owner !== routing.node) {
          return await this.#forward(request, info, routing, owner, transport);
        }
        return this.#error(request, 1);
      }
      if (transport === "websocket") return this.#upgrade(request, query, socket, upgrade);
      if (socket.transport.name !== "polling" || socket.upgraded) return this.#error(request, 3);
      const polling = socket.transport as PollingTransport;
      if (request.method === "GET") return await polling.get(request, this.#headers(request));
      if (request.method === "POST") return await polling.post(request, this.#headers(request));
      return new Response(null, { status: 400, headers: this.#headers(request) });
    }
    if (request.method !== "GET") return this.#error(request, 2);
    const eio = query.get("EIO");
    const protocol = eio === "4" ? 4 : eio === "3" ? 3 : undefined;
    if (protocol === undefined || !this.options.protocols.includes(protocol)) return this.#error(request, 5);
    if (transport === "websocket" && !upgrade) return this.#error(request, 3);
    const slot = await this.options.admit?.(request, info);
    if (slot instanceof Response) return slot;
    try {
      return this.#handshake(request, info, protocol, transport, url, slot);
    } catch (error) {
      slot?.release();
      if (error instanceof TypeError) return this.#error(request, 3); // a malformed WebSocket handshake
      throw error;
    }
  }

  #handshake(
    request: Request,
    info: RequestInfo,
    protocol: Protocol,
    name: "polling" | "websocket",
    url: URL,
    slot: SessionSlot | undefined,
  ): Response | Promise<Response> {
    const query = url.searchParams;
    const supportsBinary = !query.has("b64");
    const routing = this.options.routing;
    const id = (this.options.generateId ?? sessionId)() + (routing ? `.${routing.node}` : "");
    // Read before an upgrade: after it, the request's headers are gone.
    const described = engineRequest(request, url);
    let transport: Transport;
    let response: Response | undefined;
    if (name === "websocket") {
      const upgraded = Deno.upgradeWebSocket(request, NO_IDLE_TIMEOUT);
      response = upgraded.response;
      transport = new WebSocketTransport(upgraded.socket, this.#socketOptions(protocol, supportsBinary));
    } else {
      transport = this.#polling(protocol, supportsBinary);
    }
    const socket = new EngineSocket(id, protocol, described, info.remoteAddress, transport, this.options, slot, this);
    if (this.options.gate) socket.gate = this.options.gate(socket);
    this.clients.set(id, socket);
    socket.open(name === "polling" ? ["websocket"] : []);
    try {
      this.emit("connection", socket);
    } catch (error) {
      // A listener's bug ends this session, not the server (after an upgrade, its response must
      // still be returned).
      console.error(`roomcast: Engine.IO session ${id} failed to start:`, error);
      socket.destroy("server error");
    }
    if (response) return response;
    // The open packet waits in the buffer: this first GET carries it.
    return (transport as PollingTransport).get(request, this.#headers(request));
  }

  /** What every WebSocket transport of a protocol and binary mode shares (one object each). */
  readonly #socketOptionsMade = new Map<string, WebSocketOptions>();

  #socketOptions(protocol: Protocol, supportsBinary: boolean): WebSocketOptions {
    const key = `${protocol}${supportsBinary ? "b" : "t"}`;
    let options = this.#socketOptionsMade.get(key);
    if (!options) {
      options = { codec: codecFor(protocol), supportsBinary, maxPayload: this.options.maxPayload };
      this.#socketOptionsMade.set(key, options);
    }
    return options;
  }

  /** A session has ended (`EngineSocket` calls it once, after its own `close` listeners: they see
   * the session's state as it closed, a Socket.IO session kept for recovery its rooms, before its
   * slot is given back). */
  ended(socket: EngineSocket): void {
    if (this.clients.get(socket.id) === socket) this.clients.delete(socket.id);
    socket.slot?.release();
  }

  #polling(protocol: Protocol, supportsBinary: boolean): PollingTransport {
    return new PollingTransport({
      codec: codecFor(protocol),
      supportsBinary,
      maxPayload: this.options.maxPayload,
      bodyTimeoutMs: this.options.bodyTimeoutMs ?? 10_000,
      closeTimeoutMs: this.options.closeTimeoutMs ?? 30_000,
    });
  }

  /** A request for a session another isolate holds: sent there, its answer returned. A WebSocket
   * can't follow (the session stays on polling). */
  async #forward(
    request: Request,
    info: RequestInfo,
    routing: SessionRouting,
    owner: string,
    transport: "polling" | "websocket",
  ): Promise<Response> {
    if (transport === "websocket" || (request.method !== "GET" && request.method !== "POST")) {
      return this.#error(request, 3);
    }
    let body: Uint8Array | null = null;
    if (request.method === "POST") {
      try {
        body = await readBody(request, {
          maxBytes: this.options.maxPayload,
          timeoutMs: this.options.bodyTimeoutMs ?? 10_000,
        });
      } catch (error) {
        return new Response(null, { status: bodyErrorStatus(error), headers: this.#headers(request) });
      }
    }
    const forwarded = forwardedRequest(`${routing.node}:${++this.#forwards}`, request, body, info.remoteAddress);
    let answered = false;
    request.signal.addEventListener("abort", () => {
      if (!answered) routing.abort(owner, forwarded.id);
    }, { once: true });
    try {
      return responseFrom(await routing.forward(owner, forwarded));
    } catch {
      return this.#error(request, 1);
    } finally {
      answered = true;
    }
  }

  /** A WebSocket for a polling session: it is probed, then takes over (`EngineSocket.probe`). */
  #upgrade(request: Request, query: URLSearchParams, socket: EngineSocket, upgrade: boolean): Response {
    if (!upgrade) return this.#error(request, 3);
    let upgraded: { socket: WebSocket; response: Response };
    try {
      upgraded = Deno.upgradeWebSocket(request, NO_IDLE_TIMEOUT);
    } catch {
      return this.#error(request, 3);
    }
    if (socket.transport.name !== "polling" || socket.upgrading || socket.upgraded) {
      // Another WebSocket for a session that has one, or is getting one: accepted and closed, as
      // the reference server does (a client library reports a refused upgrade as an error).
      upgraded.socket.onopen = () => upgraded.socket.close();
      return upgraded.response;
    }
    socket.probe(new WebSocketTransport(upgraded.socket, this.#socketOptions(socket.protocol, !query.has("b64"))));
    return upgraded.response;
  }

  /** Ends every session. */
  close(): this {
    for (const socket of [...this.clients.values()]) socket.destroy("server close");
    this.heartbeats.stop();
    return this;
  }
}

/** The handshake's headers a session keeps (socket.io shows them as `handshake.headers`): a few,
 * since every session holds its copy for as long as it lasts. */
const KEPT_HEADERS = ["host", "origin", "user-agent", "referer", "accept-language", "cookie", "authorization"];

/** What a session keeps of its handshake request (socket.io reads it node-style, `EngineSocket.request`). */
function engineRequest(request: Request, url: URL): Handshake {
  const headers: Record<string, string> = {};
  for (const name of KEPT_HEADERS) {
    const value = request.headers.get(name);
    if (value !== null) headers[name] = value;
  }
  return {
    headers,
    url: url.pathname + url.search,
    query: Object.fromEntries(url.searchParams),
    encrypted: url.protocol === "https:",
  };
}
