/**
 * Minimal load-generator clients for the three servers the benchmark compares. Each speaks just
 * enough of its protocol to join a room, publish a payload string and hand received payloads to
 * a callback, cheaply (string scans, no JSON.parse per message), so that the generator spends as
 * little CPU as it can on the 2 cores it shares with the server.
 */

/** roomcast-2w: with ROOMCAST_WORKERS=2; roomcast-kv2: two processes sharing one KV
 * (ROOMCAST_SEQUENCER=kv, Deno Deploy's shape), clients spread over both. */
/** roomcast-redis: with ROOMCAST_REDIS_URL (a redis-server the bench starts, appendfsync everysec);
 * roomcast-redis2: two processes on that Redis, each room's clients spread over both.
 * roomcast-socketio: Socket.IO clients on roomcast's /socket.io/ (its own Socket.IO layer, with
 * connection state recovery); roomcast-sio-official: the same with ROOMCAST_SIO_LAYER=official.
 * roomcast-pusher: Pusher protocol 7 clients on /app/:key, each room a private channel, publishing
 * as Pusher clients do, with client events (relayed to the others, not stored).
 * roomcast-pusher-stored: the same receivers, but a client that publishes does it as a backend
 * would trigger: stored messages, through its own /ws connection in the room (which receives the
 * others' messages too: fair for the fan-out, where only one client publishes, not for chat). */
import { createHmac } from "node:crypto";

export type Target =
  | "roomcast"
  | "roomcast-batch"
  | "roomcast-proxy"
  | "roomcast-2w"
  | "roomcast-kv2"
  | "roomcast-kv2i"
  | "roomcast-redis"
  | "roomcast-redis2"
  | "roomcast-socketio"
  | "roomcast-sio-official"
  | "roomcast-pusher"
  | "roomcast-pusher-stored"
  | "bare"
  | "bare-ack"
  | "socketio";

export interface BenchClient {
  /** Resolves once the connection is open and the room joined (or connected, with no room). */
  ready: Promise<void>;
  publish(payload: string): void;
  close(): void;
  /** Set by the caller: every payload received. */
  onPayload: (payload: string) => void;
  /** Reconnects the client made (roomcast recovers from history with `since`). */
  reconnects: number;
}

export interface ClientOptions {
  target: Target;
  /** `ws://127.0.0.1:port` */
  base: string;
  /** Room to join; `undefined`: connect only. */
  room: string | undefined;
}

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void } {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => [resolve, reject] = [res, rej]);
  return { promise, resolve, reject };
}

const MESSAGE = '{"type":"message"';
const DATA = '"data":"';
const OFFSET = '"offset":';

/** roomcast's JSON protocol on /ws (optionally batched: frames joined by "\n"), its room joined
 * through the connect URL (`?room=`, with `since` after a reconnect), as the bare client's is. */
class RoomcastClient implements BenchClient {
  onPayload: (payload: string) => void = () => {};
  reconnects = 0;
  readonly ready: Promise<void>;
  #socket!: WebSocket;
  #epoch = "";
  #offset = 0;
  #closing = false;
  #joined = deferred();
  #backlog: string[] = [];
  /** Reconnects since the last successful join. */
  #attempt = 0;
  /** Joined on the current socket: publishes go out at once (before: they wait in the backlog). */
  #inRoom = false;

  constructor(private readonly options: ClientOptions, private readonly batch: boolean) {
    this.ready = this.#joined.promise;
    this.#open();
  }

  #open(): void {
    // The room (and where to recover it from) in the connect URL: joined at once, after welcome.
    const room = this.options.room;
    const join = room === undefined
      ? ""
      : `&room=${encodeURIComponent(room)}${this.#epoch ? `&since=${this.#epoch}:${this.#offset}` : ""}`;
    const url = `${this.options.base}/ws?name=bench${this.batch ? "&batch=1" : ""}${join}`;
    const socket = this.#socket = new WebSocket(url);
    socket.onmessage = (e) => {
      const text = e.data as string;
      if (this.batch && text.includes("\n")) { for (const frame of text.split("\n")) this.#frame(frame); }
      else this.#frame(text);
    };
    socket.onerror = () => this.#joined.reject(new Error("roomcast socket error"));
    socket.onclose = (e) => {
      this.#inRoom = false;
      if (this.#closing || e.code === 1000) return;
      // 4008 slow consumer, 1001 restart…: come back and recover what was missed, backing off
      // as static/roomcast.js does (500 ms doubling to 10 s, with jitter).
      this.reconnects++;
      const delay = Math.min(10_000, 500 * 2 ** this.#attempt++) * (0.5 + Math.random() / 2);
      setTimeout(() => this.#open(), delay);
    };
  }

  #frame(frame: string): void {
    if (frame.startsWith(MESSAGE)) {
      const at = frame.indexOf(OFFSET) + OFFSET.length;
      this.#offset = parseInt(frame.slice(at, at + 12), 10);
      const start = frame.indexOf(DATA) + DATA.length;
      this.onPayload(frame.slice(start, frame.indexOf('"', start)));
    } else if (frame === '{"type":"ping"}') {
      this.#socket.send('{"type":"pong"}');
    } else if (frame.startsWith('{"type":"welcome"')) {
      if (this.options.room === undefined) this.#joined.resolve();
    } else if (frame.startsWith('{"type":"joined"')) {
      const epoch = /"epoch":"([^"]+)","offset":(\d+)/.exec(frame);
      if (epoch && !/"recovered":true/.test(frame)) {
        this.#epoch = epoch[1] ?? "";
        this.#offset = Number(epoch[2]);
      }
      this.#joined.resolve();
      this.#attempt = 0;
      this.#inRoom = true;
      for (const frame of this.#backlog.splice(0)) this.#socket.send(frame);
    }
  }

  publish(payload: string): void {
    const frame = `{"type":"publish","room":"${this.options.room}","data":"${payload}"}`;
    // While reconnecting (closed as a slow consumer under overload), publishes wait for the rejoin.
    if (this.#inRoom && this.#socket.readyState === WebSocket.OPEN && this.#backlog.length === 0) {
      this.#socket.send(frame);
    } else this.#backlog.push(frame);
  }

  close(): void {
    this.#closing = true;
    this.#socket.close(1000);
  }
}

/** The bare reference server: text in, the same text out to the room's others. */
class BareClient implements BenchClient {
  onPayload: (payload: string) => void = () => {};
  reconnects = 0;
  readonly ready: Promise<void>;
  readonly #socket: WebSocket;

  constructor(options: ClientOptions) {
    const opened = deferred();
    this.ready = opened.promise;
    this.#socket = new WebSocket(`${options.base}/${options.room ?? "idle"}`);
    this.#socket.onopen = () => opened.resolve();
    this.#socket.onerror = () => opened.reject(new Error("bare socket error"));
    this.#socket.onmessage = (e) => {
      const text = e.data as string;
      // bare-ack speaks roomcast's frames: the payload is a message's data; its acks are not deliveries.
      if (text.startsWith(MESSAGE)) {
        const start = text.indexOf(DATA) + DATA.length;
        this.onPayload(text.slice(start, text.indexOf('"', start)));
      } else if (!text.startsWith('{"type":"ack"')) this.onPayload(text);
    };
  }

  publish(payload: string): void {
    this.#socket.send(payload);
  }

  close(): void {
    this.#socket.close(1000);
  }
}

/** The Pusher app bench/run.ts gives roomcast (ROOMCAST_PUSHER_APPS). */
export const BENCH_PUSHER_APP = { id: "bench", key: "benchkey", secret: "bench-secret" };
const PUSHER_EVENT = '{"event":"client-m"';
const PUSHER_MESSAGE = '{"event":"message"';

/** Pusher protocol 7: subscribes to `private-<room>` (signed as an app's auth endpoint would),
 * publishes client events, answers pings. */
class PusherClient implements BenchClient {
  onPayload: (payload: string) => void = () => {};
  reconnects = 0;
  readonly ready: Promise<void>;
  readonly #socket: WebSocket;
  readonly #channel: string;
  /** roomcast-pusher-stored: the /ws connection that publishes, opened on the first publish. */
  #publisher: RoomcastClient | undefined;

  constructor(private readonly options: ClientOptions, private readonly stored: boolean) {
    const joined = deferred();
    this.ready = joined.promise;
    this.#channel = `private-${options.room ?? "idle"}`;
    const socket = this.#socket = new WebSocket(`${options.base}/app/${BENCH_PUSHER_APP.key}?protocol=7&client=bench`);
    socket.onerror = () => joined.reject(new Error("pusher socket error"));
    socket.onmessage = (e) => {
      const text = e.data as string;
      if (text.startsWith(PUSHER_EVENT) || text.startsWith(PUSHER_MESSAGE)) {
        const start = text.indexOf(DATA) + DATA.length;
        this.onPayload(text.slice(start, text.indexOf('"', start)));
      } else if (text.startsWith('{"event":"pusher:ping"')) {
        socket.send('{"event":"pusher:pong","data":{}}');
      } else if (text.startsWith('{"event":"pusher:connection_established"')) {
        if (options.room === undefined) return joined.resolve();
        const socketId = /socket_id\\?":\\?"([\d.]+)/.exec(text)?.[1] ?? "";
        const signature = createHmac("sha256", BENCH_PUSHER_APP.secret).update(`${socketId}:${this.#channel}`).digest(
          "hex",
        );
        socket.send(JSON.stringify({
          event: "pusher:subscribe",
          data: { channel: this.#channel, auth: `${BENCH_PUSHER_APP.key}:${signature}` },
        }));
      } else if (text.startsWith('{"event":"pusher_internal:subscription_succeeded"')) {
        joined.resolve();
      } else if (text.startsWith('{"event":"pusher:subscription_error"')) {
        joined.reject(new Error(`pusher subscription refused: ${text}`));
      }
    };
  }

  publish(payload: string): void {
    if (!this.stored) return this.#socket.send(`{"event":"client-m","channel":"${this.#channel}","data":"${payload}"}`);
    // The JSON protocol's client waits for its join before it sends (its backlog).
    this.#publisher ??= new RoomcastClient({ ...this.options, room: this.#channel }, false);
    this.#publisher.publish(payload);
  }

  close(): void {
    this.#publisher?.close();
    this.#socket.close(1000);
  }
}

/** How a Socket.IO server maps rooms: the bench's Node server takes `publish` with the room,
 * roomcast takes `message` with `{room, data}` and sends `{room, data, …}` back. */
interface SocketIoDialect {
  /** The CONNECT packet, and whether it joins the room itself (roomcast's `auth.join`: the room
   * instead of the lobby, answered with a `joined` event) or an ack'd `join` follows it. */
  connect(room: string | undefined): { packet: string; joins: boolean };
  publish(room: string | undefined, payload: string): string;
  /** The payload of a received frame, or undefined when it is not a message. */
  payload(text: string): string | undefined;
}

const NODE_DIALECT: SocketIoDialect = {
  connect: () => ({ packet: "40", joins: false }),
  publish: (room, payload) => `42["publish","${room}","${payload}"]`,
  payload: (text) => text.startsWith('42["message","') ? text.slice(14, -2) : undefined,
};

const ROOMCAST_DIALECT: SocketIoDialect = {
  connect: (room) =>
    room === undefined ? { packet: "40", joins: false } : { packet: `40{"join":"${room}"}`, joins: true },
  publish: (room, payload) => `42["message",{"room":"${room}","data":"${payload}"}]`,
  payload(text) {
    if (!text.startsWith('42["message",{')) return undefined;
    const at = text.indexOf('"data":"') + 8;
    return text.slice(at, text.indexOf('"', at));
  },
};

/** Socket.IO 4 over Engine.IO v4's websocket transport, spoken directly: join (on connect where the
 * server can, else with an ack), then publish and receive in the server's dialect. */
class SocketIoClient implements BenchClient {
  onPayload: (payload: string) => void = () => {};
  reconnects = 0;
  readonly ready: Promise<void>;
  readonly #socket: WebSocket;

  constructor(private readonly options: ClientOptions, private readonly dialect: SocketIoDialect) {
    const joined = deferred();
    this.ready = joined.promise;
    const connect = dialect.connect(options.room);
    const socket = this.#socket = new WebSocket(`${options.base}/socket.io/?EIO=4&transport=websocket`);
    socket.onerror = () => joined.reject(new Error("socket.io socket error"));
    socket.onmessage = (e) => {
      const text = e.data as string;
      const payload = dialect.payload(text);
      if (payload !== undefined) this.onPayload(payload);
      else if (text === "2") socket.send("3");
      else if (text.startsWith("0{")) socket.send(connect.packet);
      else if (text.startsWith("40")) {
        if (options.room === undefined) joined.resolve();
        else if (!connect.joins) socket.send(`421["join","${options.room}"]`);
      } else if (text.startsWith("431") || (connect.joins && text.startsWith('42["joined"'))) joined.resolve();
    };
  }

  publish(payload: string): void {
    this.#socket.send(this.dialect.publish(this.options.room, payload));
  }

  close(): void {
    this.#socket.close(1000);
  }
}

export function createClient(options: ClientOptions): BenchClient {
  switch (options.target) {
    case "roomcast":
    case "roomcast-2w":
    case "roomcast-kv2":
    case "roomcast-kv2i":
    case "roomcast-redis":
    case "roomcast-redis2":
    case "roomcast-proxy":
      return new RoomcastClient(options, false);
    case "roomcast-batch":
      return new RoomcastClient(options, true);
    case "roomcast-pusher":
      return new PusherClient(options, false);
    case "roomcast-pusher-stored":
      return new PusherClient(options, true);
    case "bare":
    case "bare-ack":
      return new BareClient(options);
    case "socketio":
      return new SocketIoClient(options, NODE_DIALECT);
    case "roomcast-socketio":
    case "roomcast-sio-official":
      return new SocketIoClient(options, ROOMCAST_DIALECT);
  }
}
