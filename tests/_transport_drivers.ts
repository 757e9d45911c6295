/**
 * One driver per transport for the transport contract (tests/transport_contract.ts): each opens a
 * client of its protocol and turns what it receives into the same events, so that one suite can
 * hold every transport to the same rules. A new protocol adds a driver here.
 */
import { io, type Socket } from "socket.io-client";
import type { Position } from "../lib/protocol.ts";
import type { TestServer } from "./_server.ts";
import { PUSHER_APP } from "./_pusher.ts";

/** What a client saw, whatever its protocol. */
export type Seen =
  | { kind: "joined"; room: string; epoch: string; offset: number; recovered: boolean }
  | { kind: "message"; room: string; data: unknown; offset: number | undefined }
  | { kind: "ack"; offset: number }
  | { kind: "error"; code: string }
  | { kind: "closed"; code: number | undefined };

export interface ConnectOptions {
  token?: string;
  name?: string;
  /** The room to be in from the start, where the protocol names it on connect (raw, SSE). */
  room?: string;
  since?: Position;
}

export interface DriverClient {
  readonly seen: Seen[];
  /** The first unread event matching `pred` (taken from `seen`), waiting up to `ms`. */
  next(pred: (seen: Seen) => boolean, ms?: number): Promise<Seen>;
  /** Connected (true), or refused (false: an error and/or a close came first). */
  readonly opened: Promise<boolean>;
  join(room: string, since?: Position): void;
  leave(room: string): void;
  publish(room: string, data: unknown): void;
  /** Sends `n` frames as fast as it can (a flood of whatever the protocol takes most of). */
  flood(n: number): void;
  close(): void;
}

export interface TransportDriver {
  name: string;
  can: {
    /** A client publishes (raw: each text frame; SSE: never). */
    publish: boolean;
    /** Its publishes are acknowledged with their offset. */
    acks: boolean;
    /** It can leave a room and stay connected. */
    leave: boolean;
    /** It joins rooms after connecting (raw and SSE name theirs when they connect). */
    joins: boolean;
    /** Back with its last position, it gets what it missed (Pusher clients have no position). */
    recovers: boolean;
    /** It connects as the user of a roomcast JWT when auth is on (Pusher clients are their app's). */
    tokens: boolean;
    /** It can send a flood of frames. */
    floods: boolean;
  };
  /** The close code a draining server sends it. @default 1001 */
  goingAway?: number;
  connect(server: TestServer, options?: ConnectOptions): DriverClient;
}

/** What a driver's client saw, and whether it was let in: one per client. */
class Inbox {
  readonly seen: Seen[] = [];
  readonly #waiters = new Set<() => void>();
  readonly #opened = Promise.withResolvers<boolean>();

  /** Connected (true) or refused (false); the first word counts. */
  open(ok: boolean): void {
    this.#opened.resolve(ok);
  }

  /** The connection ended (a close before it opened is a refusal). */
  closed(code: number | undefined): void {
    this.open(false);
    this.push({ kind: "closed", code });
  }

  /** The client over this inbox, with its protocol's own actions. */
  client(actions: Pick<DriverClient, "join" | "leave" | "publish" | "flood" | "close">): DriverClient {
    return { seen: this.seen, next: (pred, ms) => this.next(pred, ms), opened: this.#opened.promise, ...actions };
  }

  push(seen: Seen): void {
    this.seen.push(seen);
    for (const wake of this.#waiters) wake();
  }

  async next(pred: (seen: Seen) => boolean, ms = 4000): Promise<Seen> {
    const deadline = Date.now() + ms;
    while (true) {
      const index = this.seen.findIndex(pred);
      if (index >= 0) return this.seen.splice(index, 1)[0] as Seen;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`nothing matching within ${ms} ms; seen ${JSON.stringify(this.seen).slice(0, 400)}`);
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.#waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, left);
        this.#waiters.add(wake);
      });
    }
  }
}

function query(options: ConnectOptions): string {
  const params = new URLSearchParams();
  if (options.token) params.set("token", options.token);
  if (options.name) params.set("name", options.name);
  return params.toString();
}

/** A JSON frame as the driver's events. */
function fromJson(inbox: Inbox, frame: Record<string, unknown>): void {
  switch (frame.type) {
    case "joined":
      return inbox.push({
        kind: "joined",
        room: frame.room as string,
        epoch: frame.epoch as string,
        offset: frame.offset as number,
        recovered: frame.recovered as boolean,
      });
    case "message":
      return inbox.push({
        kind: "message",
        room: frame.room as string,
        data: frame.data,
        offset: frame.offset as number,
      });
    case "ack":
      if (typeof frame.offset === "number") inbox.push({ kind: "ack", offset: frame.offset });
      return;
    case "error":
      return inbox.push({ kind: "error", code: frame.code as string });
  }
}

/** `/ws`, one JSON frame per message; `batch`: `/ws?batch=1`, several per message, one per line. */
function jsonSocket(batch: boolean): TransportDriver {
  return {
    name: batch ? "batch" : "ws",
    can: { publish: true, acks: true, leave: true, joins: true, recovers: true, tokens: true, floods: true },
    connect(server, options = {}) {
      const inbox = new Inbox();
      const q = [batch ? "batch=1" : "", query(options)].filter((p) => p).join("&");
      const socket = new WebSocket(server.ws(`/ws${q ? `?${q}` : ""}`));
      socket.onmessage = (event) => {
        for (const line of String(event.data).split("\n")) {
          if (!line.trim()) continue;
          const frame = JSON.parse(line);
          if (frame.type === "welcome") inbox.open(true);
          if (frame.type === "error") inbox.open(false);
          fromJson(inbox, frame);
        }
      };
      socket.onclose = (event) => {
        inbox.closed(event.code);
      };
      const send = (frames: Record<string, unknown>[]) => {
        if (socket.readyState !== WebSocket.OPEN) return;
        if (batch) socket.send(frames.map((f) => JSON.stringify(f)).join("\n"));
        else for (const f of frames) socket.send(JSON.stringify(f));
      };
      return inbox.client({
        join: (room, since) => send([since ? { type: "join", room, since } : { type: "join", room }]),
        leave: (room) => send([{ type: "leave", room }]),
        publish: (room, data) => send([{ type: "publish", room, data }]),
        flood(n) {
          // Joins (rate limited: the flood guard closes the connection after enough refusals).
          const joins = Array.from({ length: n }, (_, i) => ({ type: "join", room: `flood-${i}` }));
          if (!batch) return send(joins);
          for (let i = 0; i < n; i += 100) send(joins.slice(i, i + 100));
        },
        close: () => socket.close(),
      });
    },
  };
}

/** `/raw/:room`: the room is the path; every text frame is a message's data, received as text. */
const raw: TransportDriver = {
  name: "raw",
  can: { publish: true, acks: false, leave: false, joins: false, recovers: false, tokens: true, floods: true },
  connect(server, options = {}) {
    const inbox = new Inbox();
    const room = options.room ?? "lobby";
    const q = query(options);
    const socket = new WebSocket(server.ws(`/raw/${room}${q ? `?${q}` : ""}`));
    // A raw client gets no welcome nor joined: open is connected and in its room, unless an
    // error frame and a close follow at once.
    socket.onopen = () =>
      setTimeout(() => {
        if (socket.readyState !== WebSocket.OPEN) return;
        inbox.open(true);
        inbox.push({ kind: "joined", room, epoch: "", offset: 0, recovered: false });
      }, 50);
    socket.onmessage = (event) => {
      const text = String(event.data);
      if (text.startsWith('{"type":"error"')) {
        inbox.open(false);
        return inbox.push({ kind: "error", code: JSON.parse(text).code });
      }
      inbox.push({ kind: "message", room, data: text, offset: undefined });
    };
    socket.onclose = (event) => {
      inbox.closed(event.code);
    };
    return inbox.client({
      join: () => {},
      leave: () => {},
      publish: (_room, data) => socket.readyState === WebSocket.OPEN && socket.send(String(data)),
      flood(n) {
        for (let i = 0; i < n && socket.readyState === WebSocket.OPEN; i++) socket.send(`flood ${i}`);
      },
      close: () => socket.close(),
    });
  },
};

/** `/events?room=…`: one stream, read with fetch; it only reads. */
const sse: TransportDriver = {
  name: "sse",
  can: { publish: false, acks: false, leave: false, joins: false, recovers: true, tokens: true, floods: false },
  connect(server, options = {}) {
    const inbox = new Inbox();
    const room = options.room ?? "lobby";
    const params = new URLSearchParams(query(options));
    params.set("room", room);
    // A member, as the contract's presence checks expect (a reader is none unless it asks).
    params.set("presence", "1");
    if (options.since) params.set("since", `${options.since.epoch}:${options.since.offset}`);
    const controller = new AbortController();
    (async () => {
      try {
        const response = await server.fetch(`/events?${params}`, { signal: controller.signal });
        if (response.status !== 200) {
          const body = await response.json().catch(() => ({}));
          inbox.push({ kind: "error", code: body.error?.code ?? String(response.status) });
          return inbox.closed(response.status);
        }
        inbox.open(true);
        let buffer = "";
        for await (const chunk of response.body!.pipeThrough(new TextDecoderStream())) {
          buffer += chunk;
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const event = /^event: (.*)$/m.exec(block)?.[1];
            const data = /^data: (.*)$/m.exec(block)?.[1];
            if (event === "close") {
              inbox.closed(JSON.parse(data ?? "{}").code);
            } else if (event && data) fromJson(inbox, JSON.parse(data));
          }
        }
        inbox.closed(undefined);
      } catch {
        inbox.closed(undefined);
      }
    })();
    return inbox.client({
      join: () => {},
      leave: () => {},
      publish: () => {},
      flood: () => {},
      close: () => controller.abort(),
    });
  },
};

/** `/socket.io/`: socket.io-client 4 over a WebSocket; roomcast's events mapped back. */
const socketio: TransportDriver = {
  name: "socketio",
  can: { publish: true, acks: true, leave: true, joins: true, recovers: true, tokens: true, floods: true },
  connect(server, options = {}) {
    const inbox = new Inbox();
    const auth: Record<string, unknown> = {};
    if (options.token) auth.token = options.token;
    if (options.name) auth.name = options.name;
    const socket: Socket = io(server.url, { transports: ["websocket"], reconnection: false, forceNew: true, auth });
    socket.on("connect", () => inbox.open(true));
    socket.on("connect_error", (error: Error & { data?: { code?: string } }) => {
      inbox.push({ kind: "error", code: error.data?.code ?? error.message });
      inbox.closed(undefined);
    });
    socket.on("roomcast:error", (error: { code: string; message: string }) => {
      if (error.code === "closed") return;
      inbox.push({ kind: "error", code: error.code });
      inbox.open(false);
    });
    socket.on(
      "disconnect",
      (reason: string) => inbox.closed(reason === "io server disconnect" ? 1001 : undefined),
    );
    // With connection state recovery every event ends with a string offset: `meta` is an object.
    socket.on("message", (first: unknown, meta?: { room: string; offset: number } | string) => {
      if (typeof meta === "object") {
        return inbox.push({ kind: "message", room: meta.room, data: first, offset: meta.offset });
      }
      const m = first as { room: string; data: unknown; offset: number };
      inbox.push({ kind: "message", room: m.room, data: m.data, offset: m.offset });
    });
    const answer = (
      reply: { error?: { code: string }; offset?: number; epoch?: string; room?: string; recovered?: boolean },
    ) => {
      if (reply?.error) return inbox.push({ kind: "error", code: reply.error.code });
      if (reply?.recovered !== undefined) {
        return inbox.push({
          kind: "joined",
          room: reply.room as string,
          epoch: reply.epoch as string,
          offset: reply.offset as number,
          recovered: reply.recovered,
        });
      }
      if (typeof reply?.offset === "number") inbox.push({ kind: "ack", offset: reply.offset });
    };
    socket.on("joined", answer);
    return inbox.client({
      join: (room, since) => void socket.emit("join", since ? { room, since } : room, answer),
      leave: (room) => void socket.emit("leave", room, () => {}),
      publish: (room, data) => void socket.emit("message", { room, data }, answer),
      flood(n) {
        for (let i = 0; i < n; i++) socket.emit("join", `flood-${i}`, () => {});
      },
      close: () => void socket.close(),
    });
  },
};

/** `/app/:key`: the Pusher protocol by hand (tests/pusher_test.ts uses pusher-js itself). A channel
 * is a room; clients don't publish stored messages (their client events are signals). */
const pusher: TransportDriver = {
  name: "pusher",
  can: { publish: false, acks: false, leave: true, joins: true, recovers: false, tokens: false, floods: true },
  goingAway: 4200,
  connect(server, options = {}) {
    const inbox = new Inbox();
    const q = options.name ? `&name=${encodeURIComponent(options.name)}` : "";
    const socket = new WebSocket(server.ws(`/app/${PUSHER_APP.key}?protocol=7&client=js&version=8${q}`));
    socket.onmessage = (event) => {
      const frame = JSON.parse(String(event.data));
      let data = frame.data;
      if (typeof data === "string") {
        try {
          data = JSON.parse(data);
        } catch { /* a string as sent */ }
      }
      switch (frame.event) {
        case "pusher:connection_established":
          return inbox.open(true);
        case "pusher:error":
          inbox.open(false);
          return inbox.push({ kind: "error", code: String(data?.code ?? "error") });
        case "pusher:subscription_error":
          return inbox.push({ kind: "error", code: String(data?.type ?? "error") });
        case "pusher_internal:subscription_succeeded":
          return inbox.push({ kind: "joined", room: frame.channel, epoch: "", offset: 0, recovered: false });
        default:
          if (typeof frame.channel === "string" && !frame.event.startsWith("pusher")) {
            inbox.push({ kind: "message", room: frame.channel, data, offset: undefined });
          }
      }
    };
    socket.onclose = (event) => inbox.closed(event.code);
    const send = (frame: unknown) => socket.readyState === WebSocket.OPEN && socket.send(JSON.stringify(frame));
    return inbox.client({
      join: (room) => send({ event: "pusher:subscribe", data: { channel: room } }),
      leave: (room) => send({ event: "pusher:unsubscribe", data: { channel: room } }),
      publish: () => {},
      flood(n) {
        for (let i = 0; i < n; i++) send({ event: "pusher:subscribe", data: { channel: `flood-${i}` } });
      },
      close: () => socket.close(),
    });
  },
};

/** `/stomp`: STOMP 1.2 by hand; a destination `/topic/<room>` is a room, RECEIPTs answer. */
const stomp: TransportDriver = {
  name: "stomp",
  can: { publish: true, acks: false, leave: true, joins: true, recovers: true, tokens: true, floods: true },
  connect(server, options = {}) {
    const inbox = new Inbox();
    const q = query(options);
    const socket = new WebSocket(server.ws(`/stomp${q ? `?${q}` : ""}`), ["v12.stomp"]);
    const send = (frame: string) => socket.readyState === WebSocket.OPEN && socket.send(frame);
    socket.onopen = () => send(`CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\0`);
    socket.onmessage = (event) => {
      for (const frame of String(event.data).split("\0")) {
        const [head = "", body = ""] = frame.replace(/^\n+/, "").split("\n\n");
        const [command, ...lines] = head.split("\n");
        const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1)]));
        if (command === "CONNECTED") inbox.open(true);
        else if (command === "ERROR") {
          inbox.open(false);
          inbox.push({ kind: "error", code: headers.code ?? headers.message ?? "error" });
        } else if (command === "RECEIPT" && headers["receipt-id"]?.startsWith("j-")) {
          inbox.push({
            kind: "joined",
            room: headers["receipt-id"].slice(2),
            epoch: headers.epoch ?? "",
            offset: Number(headers.offset),
            recovered: headers.recovered === "true",
          });
        } else if (command === "MESSAGE") {
          const data = headers["content-type"] === "application/json" ? JSON.parse(body) : body;
          inbox.push({
            kind: "message",
            room: (headers.destination ?? "").replace("/topic/", ""),
            data,
            offset: Number(headers.offset),
          });
        }
      }
    };
    socket.onclose = (event) => inbox.closed(event.code);
    return inbox.client({
      join: (room, since) =>
        send(
          `SUBSCRIBE\nid:${room}\ndestination:/topic/${room}\nreceipt:j-${room}\n${
            since ? `since:${since.epoch}:${since.offset}\n` : ""
          }\n\0`,
        ),
      leave: (room) => send(`UNSUBSCRIBE\nid:${room}\n\n\0`),
      publish: (room, data) => send(`SEND\ndestination:/topic/${room}\n\n${String(data)}\0`),
      flood(n) {
        for (let i = 0; i < n; i++) send(`SUBSCRIBE\nid:f${i}\ndestination:/topic/flood-${i}\n\n\0`);
      },
      close: () => socket.close(),
    });
  },
};

/** `/wamp`: WAMP v2 by hand; a topic is a room, SUBSCRIBED stands for joined, EVENT for a message. */
const wamp: TransportDriver = {
  name: "wamp",
  can: { publish: true, acks: false, leave: true, joins: true, recovers: true, tokens: true, floods: true },
  connect(server, options = {}) {
    const inbox = new Inbox();
    const q = query(options);
    const socket = new WebSocket(server.ws(`/wamp${q ? `?${q}` : ""}`), ["wamp.2.json"]);
    const send = (message: unknown) => socket.readyState === WebSocket.OPEN && socket.send(JSON.stringify(message));
    /** Request id → room of a SUBSCRIBE; room → subscription id. */
    const requests = new Map<number, string>();
    const subscriptions = new Map<string, number>();
    let next = 0;
    socket.onopen = () => send([1, "realm1", { roles: { subscriber: {}, publisher: {} } }]);
    socket.onmessage = (event) => {
      const m = JSON.parse(String(event.data)) as unknown[];
      switch (m[0]) {
        case 2:
          return inbox.open(true);
        case 3:
          inbox.open(false);
          return inbox.push({ kind: "error", code: String(m[2]) });
        case 8:
          return inbox.push({ kind: "error", code: String(m[4]) });
        case 33: {
          const room = requests.get(m[1] as number) ?? "";
          subscriptions.set(room, m[2] as number);
          return inbox.push({ kind: "joined", room, epoch: "", offset: 0, recovered: false });
        }
        case 36: {
          const details = m[3] as { topic: string; offset: number };
          return inbox.push({
            kind: "message",
            room: details.topic,
            data: (m[4] as unknown[])[0],
            offset: details.offset,
          });
        }
      }
    };
    socket.onclose = (event) => inbox.closed(event.code);
    const subscribe = (room: string, options: Record<string, unknown>) => {
      const request = ++next;
      requests.set(request, room);
      send([32, request, options, room]);
    };
    return inbox.client({
      join: (room, since) => subscribe(room, since ? { since: `${since.epoch}:${since.offset}` } : {}),
      leave: (room) => send([34, ++next, subscriptions.get(room) ?? 0]),
      publish: (room, data) => send([16, ++next, {}, room, [data]]),
      flood(n) {
        for (let i = 0; i < n; i++) subscribe(`flood-${i}`, {});
      },
      close: () => socket.close(),
    });
  },
};

export const DRIVERS: TransportDriver[] = [
  jsonSocket(false),
  jsonSocket(true),
  raw,
  sse,
  socketio,
  pusher,
  stomp,
  wamp,
];
