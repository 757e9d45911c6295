/**
 * Pusher clients for tests: pusher-js 8 (the real library) and the `pusher` server SDK, pointed at
 * a test server started with one app (`PUSHER_APP`), plus a raw WebSocket that speaks the protocol
 * by hand for what a library won't send.
 */
import * as PusherJs from "pusher-js";
import PusherServer from "pusher";
import type { PusherApp } from "../lib/config.ts";
import type { TestServer } from "./_server.ts";
import { takeFrom } from "./_wait.ts";

export type Pusher = PusherJs.default;
export type Channel = PusherJs.Channel;
/** pusher-js is CommonJS: Deno's default import is its `module.exports`, the class itself. */
const PusherClient = PusherJs.default as unknown as new (key: string, options: PusherJs.Options) => Pusher;

export const PUSHER_APP: PusherApp = { id: "app1", key: "key1", secret: "secret-one" };

export function portOf(server: { url: string }): number {
  return Number(new URL(server.url).port);
}

/** The server SDK, as a backend would configure it for a self-hosted Pusher. */
export function sdk(server: TestServer, app: PusherApp = PUSHER_APP, options: Record<string, unknown> = {}) {
  return new PusherServer({
    appId: app.id,
    key: app.key,
    secret: app.secret,
    host: "127.0.0.1",
    port: String(portOf(server)),
    useTLS: false,
    ...options,
  });
}

/** A pusher-js client whose private and presence channels are authorized by `api` (as an app's
 * auth endpoint would), as `user` on presence channels. */
export function client(
  server: TestServer,
  options: { api?: PusherServer; user?: { user_id: string; user_info?: Record<string, unknown> }; key?: string } = {},
): Pusher {
  const api = options.api ?? sdk(server);
  return new PusherClient(options.key ?? PUSHER_APP.key, {
    cluster: "local",
    wsHost: "127.0.0.1",
    wsPort: portOf(server),
    forceTLS: false,
    enabledTransports: ["ws"],
    disableStats: true,
    channelAuthorization: {
      endpoint: "/unused",
      transport: "ajax",
      customHandler: (
        params: { socketId: string; channelName: string },
        callback: PusherJs.ChannelAuthorizationCallback,
      ) => {
        const { socketId, channelName } = params;
        if (channelName.startsWith("presence-")) {
          callback(null, api.authorizeChannel(socketId, channelName, options.user ?? { user_id: "anon" }));
        } else callback(null, api.authorizeChannel(socketId, channelName));
      },
    },
    userAuthentication: {
      endpoint: "/unused",
      transport: "ajax",
      customHandler: (params: { socketId: string }, callback: PusherJs.UserAuthenticationCallback) => {
        const user = options.user ?? { user_id: "anon" };
        callback(null, api.authenticateUser(params.socketId, { id: user.user_id, ...user.user_info }));
      },
    },
  });
}

/** Resolves once the client is connected. */
export function connected(pusher: Pusher): Promise<void> {
  if (pusher.connection.state === "connected") return Promise.resolve();
  return new Promise((resolve) => pusher.connection.bind("connected", () => resolve()));
}

/** Subscribes and resolves with the channel once the subscription succeeded (rejects on error). */
export function subscribed(pusher: Pusher, name: string, ms = 5000): Promise<Channel> {
  const channel = pusher.subscribe(name);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no subscription to ${name} within ${ms} ms`)), ms);
    channel.bind("pusher:subscription_succeeded", () => {
      clearTimeout(timer);
      resolve(channel);
    });
    channel.bind("pusher:subscription_error", (error: unknown) => {
      clearTimeout(timer);
      reject(Object.assign(new Error(`subscription to ${name} refused`), { detail: error }));
    });
  });
}

/** The next `event` on `channel` (its data), within `ms`. */
export function nextEvent<T = unknown>(channel: Channel, event: string, ms = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} on ${channel.name} within ${ms} ms`)), ms);
    const handler = (data: T) => {
      clearTimeout(timer);
      channel.unbind(event, handler);
      resolve(data);
    };
    channel.bind(event, handler);
  });
}

/** Every `event` on `channel`, as it comes. */
export function collect<T = unknown>(channel: Channel, event: string): T[] {
  const seen: T[] = [];
  channel.bind(event, (data: T) => seen.push(data));
  return seen;
}

/** A WebSocket speaking the Pusher protocol by hand: what it received, parsed. */
export class RawPusher {
  readonly frames: { event: string; channel?: string; data?: unknown; user_id?: string }[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly socket: WebSocket;

  constructor(server: TestServer, path = `/app/${PUSHER_APP.key}?protocol=7&client=js&version=8.4.0`) {
    this.socket = new WebSocket(server.url.replace(/^http/, "ws") + path);
    this.closed = new Promise((resolve) =>
      this.socket.addEventListener("close", (e) => {
        resolve({ code: e.code, reason: e.reason });
      })
    );
    this.socket.addEventListener("message", (e) => {
      const frame = JSON.parse(String(e.data));
      if (typeof frame.data === "string") {
        try {
          frame.data = JSON.parse(frame.data);
        } catch { /* a string as sent */ }
      }
      this.frames.push(frame);
    });
  }

  send(frame: unknown): void {
    this.socket.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /** The first frame whose event is `event` (and matches `pred`), taken out, within `ms`. */
  next(
    event: string,
    pred: (frame: RawPusher["frames"][number]) => boolean = () => true,
    ms = 5000,
  ): Promise<RawPusher["frames"][number]> {
    return takeFrom(this.frames, (f) => f.event === event && pred(f), ms, event);
  }

  /** The socket id, once `pusher:connection_established` came. */
  async socketId(): Promise<string> {
    const established = await this.next("pusher:connection_established");
    return (established.data as { socket_id: string }).socket_id;
  }

  close(): void {
    this.socket.close();
  }
}
