/**
 * `GET /events?room=a&room=b`: Server-Sent Events. The stream is one hub connection that joins
 * each room (with `since` from `Last-Event-ID` or `?since=`), so it gets the same ordered,
 * gap-free feed as a WebSocket. Every `message` (and `joined`) event carries an id holding the
 * stream's position in each room, which the browser sends back as `Last-Event-ID`:
 * one room: `<epoch>:<offset>`; several: `<room>=<epoch>:<offset>,<room>=<epoch>:<offset>…`, where
 * a room name's own `=` and `,` (Pusher's channel characters) are written `%3D` and `%2C`.
 */
import type { Hono } from "hono";
import { type Identity, roomAllowed } from "../../../lib/auth.ts";
import { jsonEncoder, type Peer, QueueEstimate } from "../../../lib/peer.ts";
import { connectionId } from "../../../lib/ids.ts";
import {
  CloseCode,
  FROM_START,
  isRoomName,
  type Position,
  ProtocolError,
  ROOM_RULE,
  type ServerFrame,
  type User,
} from "../../../lib/protocol.ts";
import type { AppDeps, AppEnv } from "../../deps.ts";
import { isHead } from "../../serve/head.ts";
import { jsonError } from "../../errors.ts";
import { addressOf, identify, nameParam, refuseStream, vetConnect } from "../identity.ts";
import { Admitted } from "../admitted.ts";

const encoder = new TextEncoder();
export const SSE_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache, no-transform",
  "x-accel-buffering": "no",
};

/** `<epoch>:<offset>`, or `0`: the room's whole kept history. */
function parsePosition(text: string): Position | undefined {
  if (text === "0") return FROM_START;
  const colon = text.lastIndexOf(":");
  const epoch = text.slice(0, colon);
  const offset = Number(text.slice(colon + 1));
  if (colon <= 0 || !Number.isSafeInteger(offset) || offset < 0) return undefined;
  return { epoch, offset };
}

/** Reads a stream id (see the module comment) into a position per requested room. */
export function parseStreamId(text: string | undefined, rooms: string[]): Map<string, Position> {
  const positions = new Map<string, Position>();
  if (!text) return positions;
  if (!text.includes("=")) {
    const position = parsePosition(text.trim());
    if (position === FROM_START) { for (const room of rooms) positions.set(room, position); }
    else if (position && rooms.length === 1 && rooms[0]) positions.set(rooms[0], position);
    return positions;
  }
  for (const part of text.split(",")) {
    const eq = part.indexOf("=");
    const room = unescapeRoom(part.slice(0, eq).trim());
    const position = parsePosition(part.slice(eq + 1).trim());
    if (eq > 0 && position && rooms.includes(room)) positions.set(room, position);
  }
  return positions;
}

/** A room name as a multi-room stream id writes it: its `=` and `,` escaped (names have no `%`). */
function escapeRoom(room: string): string {
  return room.replaceAll("=", "%3D").replaceAll(",", "%2C");
}

function unescapeRoom(text: string): string {
  return text.replaceAll("%3D", "=").replaceAll("%2C", ",");
}

/** The hub's view of one event stream. */
class SsePeer implements Peer {
  readonly encoder = jsonEncoder;
  readonly liveness = "transport" as const;
  readonly #controller: ReadableStreamDefaultController<Uint8Array>;
  readonly #positions: Map<string, string>;
  readonly #rooms: string[];
  #closed = false;

  constructor(
    readonly id: string,
    readonly user: User,
    controller: ReadableStreamDefaultController<Uint8Array>,
    rooms: string[],
    resume: Map<string, Position>,
    readonly onEnd: (peer: SsePeer) => void,
  ) {
    this.#controller = controller;
    this.#rooms = rooms;
    // A room resumed from its start says so (`0`) until its first replayed message.
    this.#positions = new Map(
      [...resume].map(([room, p]) => [room, p === FROM_START ? "0" : `${p.epoch}:${p.offset}`]),
    );
  }

  readonly #queue = new QueueEstimate();

  get queuedBytes(): number {
    return this.#queue.bytes(Math.max(0, -(this.#controller.desiredSize ?? 0)));
  }

  #write(text: string): void {
    if (this.#closed) return;
    const bytes = encoder.encode(text);
    this.#controller.enqueue(bytes);
    this.#queue.sent(bytes.length);
  }

  #streamId(): string {
    if (this.#rooms.length === 1) return this.#positions.get(this.#rooms[0] ?? "") ?? "";
    return this.#rooms.flatMap((room) => {
      const position = this.#positions.get(room);
      return position ? [`${escapeRoom(room)}=${position}`] : [];
    }).join(",");
  }

  send(text: string, frame: ServerFrame): void {
    if (frame.type === "ping") return this.comment("ping");
    let id = "";
    if (frame.type === "message" || (frame.type === "joined" && !frame.recovered)) {
      // A recovered join keeps the resume position: the replayed messages advance it one by one.
      this.#positions.set(frame.room, `${frame.epoch}:${frame.offset}`);
      id = `id: ${this.#streamId()}\n`;
    }
    this.#write(`event: ${frame.type}\n${id}data: ${text}\n\n`);
  }

  comment(text: string): void {
    this.#write(`: ${text}\n\n`);
  }

  /** The hub ends the stream: say why, then close it. */
  close(code: number, reason: string): void {
    if (this.#closed) return;
    this.#write(`event: close\ndata: ${JSON.stringify({ code, reason })}\n\n`);
    this.#controller.close();
    this.gone();
  }

  /** The stream ended (closed here, or the client went away). */
  gone(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.onEnd(this);
  }
}

/** `?room=` as SSE and `/ws` read it: each room once, at most `maxRooms` (`whose` they are, for the
 * message), every name valid; or why not. */
export function roomsParam(rooms: string[], maxRooms: number, whose: string): string[] | ProtocolError {
  const unique = [...new Set(rooms)];
  if (unique.length > maxRooms) {
    return new ProtocolError("bad_request", `Too many rooms: ${whose} may follow ${maxRooms}`);
  }
  if (unique.some((room) => !isRoomName(room))) {
    return new ProtocolError("bad_request", `Room names must match ${ROOM_RULE}`);
  }
  return unique;
}

/** The join of `room` a URL asks for, resumed where its `?since=` (or `Last-Event-ID`) says. */
export function urlJoin(room: string, resume: Map<string, Position>): { type: "join"; room: string; since?: Position } {
  const since = resume.get(room);
  return since ? { type: "join", room, since } : { type: "join", room };
}

export function mountSse(app: Hono<AppEnv>, deps: AppDeps): void {
  const { hub, config } = deps;
  const streams = new Set<SsePeer>();
  let keepAlive: ReturnType<typeof setInterval> | undefined;
  const track = (peer: SsePeer, open: boolean) => {
    if (open) streams.add(peer);
    else streams.delete(peer);
    if (open) {
      keepAlive ??= setInterval(() => streams.forEach((s) => s.comment("keep-alive")), config.sseKeepAliveMs);
    } else if (streams.size === 0 && keepAlive !== undefined) {
      clearInterval(keepAlive);
      keepAlive = undefined;
    }
  };

  app.get("/events", async (c) => {
    const refused = refuseStream(c, deps);
    if (refused) return refused;
    const named = c.req.queries("room") ?? [];
    if (named.length === 0) throw new ProtocolError("bad_request", "Name at least one room: /events?room=lobby");
    const rooms = roomsParam(named, config.limits.maxRooms, "a stream");
    if (rooms instanceof ProtocolError) throw rooms;
    const address = addressOf(c, deps);
    // Admitted before anything else is done for the client (a JWT checked, say); a HEAD opens
    // nothing and takes no slot.
    const admitted = isHead(c) ? undefined : Admitted.take(deps, address);
    if (admitted !== undefined && !(admitted instanceof Admitted)) {
      c.header("retry-after", String(admitted.retryAfterS));
      return jsonError(c, admitted.code, admitted.message);
    }
    let identity: Identity;
    const id = connectionId();
    try {
      identity = await identify(c, deps, nameParam(c), address);
      // A HEAD opens nothing: the app's backend is not asked.
      if (admitted && deps.proxy?.asks("connect")) {
        identity = await vetConnect(deps, identity, {
          client: id,
          transport: "sse",
          headers: c.req.raw.headers,
          address,
        });
      }
    } catch (error) {
      admitted?.release();
      throw error;
    }
    const denied = rooms.find((room) => !roomAllowed(identity.rooms, room));
    if (denied) {
      admitted?.release();
      return jsonError(c, "forbidden", `Not allowed to join room ${denied}`);
    }
    const resume = parseStreamId(c.req.header("last-event-id") ?? c.req.query("since"), rooms);
    if (!admitted) return new Response(new ReadableStream({ start: (s) => s.close() }), { headers: SSE_HEADERS });

    let peer: SsePeer | undefined;
    const ended = (p: SsePeer) => {
      track(p, false);
      admitted.release();
    };
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        peer = new SsePeer(id, identity.user, controller, rooms, resume, ended);
        controller.enqueue(encoder.encode("retry: 1000\n\n"));
        // A reader is no member (not in presence, no member events) unless it asks: ?presence=1.
        const connection = admitted.connect(peer, { ...identity, member: c.req.query("presence") === "1" }, "sse");
        if (connection instanceof ProtocolError) return peer.close(CloseCode.policy, connection.message);
        track(peer, true);
        for (const room of rooms) hub.frames.submit(connection, urlJoin(room, resume));
      },
      cancel() {
        peer?.gone();
        admitted.release();
      },
    }, { highWaterMark: 0, size: (chunk) => chunk.byteLength });
    return new Response(body, { headers: SSE_HEADERS });
  });
}
