/**
 * Socket.IO clients for tests: the real `socket.io-client` 4.x and 2.3.0, with a queue of what
 * each received so that a test can wait for the next event of a kind.
 */
import { io, type Socket } from "socket.io-client";
import io2 from "socket.io-client-v2";
import assert from "node:assert/strict";
import { until } from "./_wait.ts";

export interface Received {
  event: string;
  args: unknown[];
}

export interface SioClient {
  socket: Socket;
  received: Received[];
  /** The first unread `event` whose args pass `pred`, waiting up to `ms`. */
  next(event: string, pred?: (args: unknown[]) => boolean, ms?: number): Promise<unknown[]>;
  /** Emits with an ack and resolves with the ack's first argument. */
  request(event: string, ...args: unknown[]): Promise<unknown>;
  close(): void;
}

function wrap(socket: Socket): SioClient {
  const received: Received[] = [];
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of waiters) w();
  };
  const record = (event: string, ...args: unknown[]) => {
    received.push({ event, args });
    wake();
  };
  if (typeof socket.onAny === "function") socket.onAny(record);
  else {
    // socket.io-client 2.x has no onAny: every event goes through `onevent`.
    const legacy = socket as unknown as { onevent(packet: { data: unknown[] }): void };
    const onevent = legacy.onevent;
    legacy.onevent = function (packet) {
      const [event, ...args] = packet.data;
      record(String(event), ...args);
      onevent.call(this, packet);
    };
  }
  for (const event of ["connect", "disconnect", "connect_error"]) {
    socket.on(event, (...args: unknown[]) => {
      received.push({ event, args });
      wake();
    });
  }
  return {
    socket,
    received,
    async next(event, pred = () => true, ms = 4000) {
      const deadline = Date.now() + ms;
      while (true) {
        const index = received.findIndex((r) => r.event === event && pred(r.args));
        if (index >= 0) return received.splice(index, 1)[0]?.args ?? [];
        const left = deadline - Date.now();
        if (left <= 0) {
          throw new Error(`No ${event} within ${ms} ms; received: ${JSON.stringify(received).slice(0, 500)}`);
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, left);
          function done() {
            clearTimeout(timer);
            waiters.delete(done);
            resolve();
          }
          waiters.add(done);
        });
      }
    },
    request(event, ...args) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ack for ${event} within 4 s`)), 4000);
        socket.emit(event, ...args, (reply: unknown) => {
          clearTimeout(timer);
          resolve(reply);
        });
      });
    },
    close: () => {
      socket.close();
    },
  };
}

export type Transports = ("polling" | "websocket")[];

/** A socket.io-client 4.x socket; resolves once connected. */
export async function sio4(
  url: string,
  options: { transports?: Transports; auth?: Record<string, unknown>; upgrade?: boolean } = {},
): Promise<SioClient> {
  const client = wrap(io(url, { reconnection: false, forceNew: true, ...options }));
  await client.next("connect");
  return client;
}

/** A socket.io-client 4.x socket that reconnects by itself after a drop (50 ms later, unless
 * `reconnectionDelay` says otherwise), as a browser's would; resolves once connected. */
export async function sio4Reconnecting(
  url: string,
  options: { transports?: Transports; auth?: Record<string, unknown>; reconnectionDelay?: number } = {},
): Promise<SioClient> {
  const delay = options.reconnectionDelay ?? 50;
  const client = wrap(
    io(url, {
      forceNew: true,
      reconnectionDelay: delay,
      reconnectionDelayMax: delay,
      randomizationFactor: 0,
      ...options,
    }),
  );
  await client.next("connect");
  return client;
}

/** A socket.io-client 2.3.0 socket; resolves once connected. */
export async function sio2(url: string, options: Record<string, unknown> = {}): Promise<SioClient> {
  const client = wrap(io2(url, { reconnection: false, forceNew: true, ...options }) as unknown as Socket);
  await client.next("connect");
  return client;
}

/** Waits until `socket` is on `transport` (the upgrade from polling happens on its own). */
export async function onTransport(client: SioClient, transport: string, ms = 4000): Promise<void> {
  const name = () => client.socket.io.engine?.transport?.name;
  await until(() => name() === transport, ms, () => `${transport} (still on ${name()})`);
}

/** An Engine.IO polling handshake spoken by hand (no socket.io-client): the session id. */
export async function eioHandshake(url: string, eio = 4): Promise<string> {
  const response = await fetch(`${url}/socket.io/?EIO=${eio}&transport=polling`);
  const body = await response.text();
  assert.equal(response.status, 200, body);
  return JSON.parse(eio === 4 ? body.slice(1) : body.slice(body.indexOf(":") + 2)).sid;
}

/** A polling POST of `body` (packets as the protocol frames them) to session `sid`. */
export function eioPost(url: string, sid: string, body: string, eio = 4): Promise<Response> {
  return fetch(`${url}/socket.io/?EIO=${eio}&transport=polling&sid=${sid}`, { method: "POST", body });
}
