/**
 * Reads the environment once into a validated `Config`. Every field has a documented default
 * (docs/CONFIG.md, checked against this file by tests/config_doc_test.ts); a bad value stops start-up with a message naming the variable.
 */

import type { JsonLimits } from "./codec.ts";
import { randomHex } from "./ids.ts";

export type Sequencer = "local" | "kv";

export interface LimitsConfig extends JsonLimits {
  /** Largest accepted text frame or HTTP body, in bytes. @default 65536 */
  maxFrameBytes: number;
  /** Publishes (and directs) a connection may send per window. @default 50 */
  publishBurst: number;
  /** @default 10000 */
  publishWindowMs: number;
  /** Signals (typing, cursors) a connection may send per publish window. @default 200 */
  signalBurst: number;
  /** Publishes and directs per user (JWT `sub`: all its connections and HTTP publishes) or per
   * address for guests, per `userWindowMs`. @default 100 */
  userPublishBurst: number;
  /** Signals per user (or guest address) per `userWindowMs`. @default 400 */
  userSignalBurst: number;
  /** @default 10000 */
  userWindowMs: number;
  /** Joins and leaves a connection may send per `joinWindowMs`. @default 200 */
  joinBurst: number;
  /** @default 10000 */
  joinWindowMs: number;
  /** Rooms one connection may be in at once. @default 100 */
  maxRooms: number;
  /** Rooms with more members than this send no member join/leave events, and `joined` lists only
   * this many members (`presence` lists all): presence traffic would grow with the square of the
   * room size. @default 100 */
  memberEventsMax: number;
  /** Consecutive `rate_limited` answers before the connection is closed with 4429. @default 20 */
  floodStrikes: number;
  /** Bytes a connection may have queued unsent before it is closed with 4008. Bounds the server's
   * memory at about connections × this. @default 131072 */
  sendQueueBytes: number;
}

export interface Config {
  /** @default 8000 */
  port: number;
  /** The address to listen on. Loopback by default: keyless API writes and `/metrics` are for
   * callers on this machine, and only while the server listens on loopback only; any other address
   * (`0.0.0.0` for a LAN, a container) closes them until `ROOMCAST_API_KEY` is set.
   * @default "127.0.0.1" ("0.0.0.0" on Deno Deploy, which ignores it) */
  hostname: string;
  /** Deno KV path; `undefined` opens the platform's KV (Deno Deploy). @default "./data/roomcast.kv" */
  kvPath: string | undefined;
  /** Who numbers messages: `"local"`, this process (delivery first, the KV commit right after;
   * one process per KV file), or `"kv"`, a KV commit before delivery (any number of processes or
   * isolates share the KV). @default "local" for a local KV file, "kv" on Deno Deploy */
  sequencer: Sequencer;
  /** Isolates serving the port: 1, or N: the main one (which coordinates) and N − 1 Workers (`auto`: one per core).
   * @default 1 */
  workers: number;
  /** @default undefined */
  redisUrl: string | undefined;
  /** Open WebSocket and SSE connections at most; `undefined`: derived from the file-descriptor
   * limit when the server starts (routes/serve/server.ts). @default undefined */
  maxConnections: number | undefined;
  /** Open connections at most per client address (IPv6: per /64); 0 = no cap. @default 256 */
  maxConnectionsPerIp: number;
  /** New connections a client address may open per `connectWindowMs`; 0 = no limit. @default 60 */
  connectBurst: number;
  /** @default 10000 */
  connectWindowMs: number;
  /** Addresses of reverse proxies whose `X-Forwarded-For` names the client (for the per-address
   * limits; forwarded requests never get loopback trust). @default [] */
  trustedProxies: string[];
  /** Bearer key for `/api/*` writes; unset = loopback callers only. @default undefined */
  apiKey: string | undefined;
  /** HS256 secret that connection tokens must be signed with; unset = anonymous guests. @default undefined */
  authSecret: string | undefined;
  /** Allowed `Origin`s for upgrades, SSE and CORS; `undefined` = same origin and no-origin
   * clients. @default undefined */
  origins: string[] | undefined;
  /** Host names this server answers to as itself: a request to another `Host` (a DNS name
   * rebound to this machine) gets no loopback trust and is no "same origin". `*`: any.
   * @default ["localhost", "127.0.0.1", "::1"] (Deno Deploy: ["*"]) */
  hosts: string[];
  /** Bearer key for `GET /metrics`; loopback callers need none. @default undefined */
  metricsKey: string | undefined;
  /** One line per HTTP request and WebSocket upgrade on stdout (`ROOMCAST_ACCESS_LOG`): method,
   * path without its query (a `?token=` stays out), status, time, client address. @default "off" */
  accessLog: "off" | "text" | "json";
  /** Signs guests' identity tokens (`welcome.guest`). Random at each start unless set: set it
   * where several processes or Deno Deploy instances serve one site, so a guest is the same guest
   * on each. */
  guestSecret: string;
  /** A user whose connection drops and who is back in the room within this long is told to no one
   * as a leave and a join (`ROOMCAST_LEAVE_GRACE`). @default 2000 */
  leaveGraceMs: number;
  /** Server ping interval; a `/ws` peer silent for two intervals is closed with 4000. @default 25000 */
  heartbeatMs: number;
  /** Where several processes or instances share the KV (`ROOMCAST_SEQUENCER=kv`, Deno Deploy): how
   * often (ms) each reads it for what the others published. @default 200, 2000 on Deno Deploy */
  kvPollMs: number;
  /** There: how many rooms each process or instance watches (`kv.watch`, news at once where the
   * platform's watch sees the others' writes), the rest only polled; 0: poll only. @default 1000 */
  kvWatchRooms: number;
  /** Where the KV is shared: how long an instance's presence outlives its last renewal (it
   * renews every third of that). @default 15000 */
  kvLeaseMs: number;
  /** With Redis (`redisUrl`): how long a process's presence outlives its last renewal; a killed
   * process's members leave within about 1.5 × this. @default 15000 */
  redisLeaseMs: number;
  /** Interval of keep-alive comments on SSE streams. @default 15000 */
  sseKeepAliveMs: number;
  /** How long an HTTP request body may take to arrive before the request is answered 408. @default 10000 */
  bodyTimeoutMs: number;
  /** Messages kept per room. @default 1000 */
  historyLimit: number;
  /** Age after which messages are dropped from history; `undefined` keeps them by count only. @default undefined */
  historyTtlMs: number | undefined;
  /** Socket.IO (`/socket.io/`): Engine.IO's ping interval, ping timeout, the largest payload (a
   * polling POST or a WebSocket message, bytes), and whether EIO=3 clients (socket.io-client 2.x)
   * are served; `layer` picks who speaks Socket.IO: roomcast's own layer on `socket.io-parser`
   * (routes/transports/socketio/own.ts, the default), or the official `socket.io` Server. */
  socketIo: {
    pingIntervalMs: number;
    pingTimeoutMs: number;
    maxPayload: number;
    eio3: boolean;
    layer: "official" | "own";
    /** Connection state recovery (socket.io's `maxDisconnectionDuration`): how long a dropped
     * session waits for its client; 0: off. Needs the own layer. @default 120000 */
    recoveryMs: number;
    /** How long an Engine.IO session may take to CONNECT to Socket.IO (socket.io's `connectTimeout`)
     * before it is closed. @default 45000 */
    connectTimeoutMs: number;
  };
  /** Pusher Channels (protocol 7, `/app/:key`, the HTTP API under `/apps/:id`): the apps, from
   * `app_id:key:secret` items; empty: those endpoints answer 404. @default [] */
  pusherApps: PusherApp[];
  /** Client events (`client-*`) a Pusher connection may send per `pusherClientEventWindowMs`
   * (Pusher's own limit is 10 per second). @default 10 */
  pusherClientEventBurst: number;
  /** @default 1000 */
  pusherClientEventWindowMs: number;
  /** The largest event data a Pusher client event or API trigger may carry, in bytes (Pusher's is
   * 10 KB). @default 10240 */
  pusherMaxEventBytes: number;
  /** Where webhooks go (Pusher's format, signed with the first Pusher app's secret), for every
   * room; needs `pusherApps`. @default [] */
  webhookUrls: string[];
  /** How long a webhook event waits for a receiver that fails before it is dropped. @default 300000 */
  webhookKeepMs: number;
  /** WAMP realms clients may join (`/wamp`); empty: any. @default [] */
  wampRealms: string[];
  /** The app's backend in the loop (lib/proxy.ts): where each connect, join and client publish is
   * asked, in Centrifugo's HTTP proxy format; unset: not asked. */
  proxy: ProxyConfig;
  limits: LimitsConfig;
}

export interface ProxyConfig {
  connectUrl: string | undefined;
  subscribeUrl: string | undefined;
  publishUrl: string | undefined;
  /** How long a call may take before the action is refused (`unavailable`). @default 1000 */
  timeoutMs: number;
  /** Signs each body: `X-Roomcast-Signature`, HMAC-SHA256 hex. */
  secret: string | undefined;
  /** Lets connects, joins and publishes through when the backend fails (down, slow, 5xx, garbage),
   * not when it refuses. @default false */
  failOpen: boolean;
}

/** A Pusher app: its id (in API paths), key (clients connect with it) and secret (signatures). */
export interface PusherApp {
  id: string;
  key: string;
  secret: string;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

export type Env = Record<string, string | undefined>;

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `"250ms"`, `"30s"`, `"10m"`, `"24h"`, `"7d"`; a bare number is seconds. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(text.trim());
  if (!match) return undefined;
  const value = Number(match[1]) * (UNITS[match[2] ?? "s"] ?? 1000);
  return value > 0 && Number.isFinite(value) ? Math.round(value) : undefined;
}

class Reader {
  readonly problems: string[] = [];
  /** Every name asked for, set or not: what the environment may hold. */
  readonly known = new Set<string>();
  constructor(private readonly env: Env) {}

  string(name: string): string | undefined {
    this.known.add(name);
    const value = this.env[name]?.trim();
    return value ? value : undefined;
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const text = this.string(name);
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isInteger(value) || value < min || value > max) {
      this.problems.push(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(text)}`);
      return fallback;
    }
    return value;
  }

  /** A duration in ms; with `allowOff`, `0` or `off` is 0 (the feature off). */
  duration(name: string, fallback: number | undefined, allowOff = false): number | undefined {
    const text = this.string(name);
    if (text === undefined) return fallback;
    if (allowOff && (text === "0" || text === "off")) return 0;
    const value = parseDuration(text);
    if (value === undefined) {
      this.problems.push(`${name} must be a duration like 30s, 10m, 7d, got ${JSON.stringify(text)}`);
    }
    return value ?? fallback;
  }

  choice<T extends string>(name: string, choices: readonly T[], fallback: T): T {
    const text = this.string(name);
    if (text === undefined) return fallback;
    if ((choices as readonly string[]).includes(text)) return text as T;
    this.problems.push(`${name} must be one of ${choices.join(", ")}, got ${JSON.stringify(text)}`);
    return fallback;
  }

  rate(name: string, fallback: [number, number], allowOff = false): [number, number] {
    const text = this.string(name);
    if (text === undefined) return fallback;
    if (allowOff && (text === "0" || text === "off")) return [0, fallback[1]];
    const match = /^(\d+)\s*\/\s*(.+)$/.exec(text);
    const count = match ? Number(match[1]) : NaN;
    const window = match?.[2] ? parseDuration(match[2]) : undefined;
    if (!(count >= 1) || window === undefined) {
      this.problems.push(
        `${name} must look like 50/10s${allowOff ? " (or 0 for no limit)" : ""}, got ${JSON.stringify(text)}`,
      );
      return fallback;
    }
    return [count, window];
  }
}

/** Where a Redis URL points, without its credentials (for the log). */
export function redisHost(url: string): string {
  try {
    const { hostname, port } = new URL(url);
    return `${hostname}:${port || 6379}`;
  } catch {
    return "(an unreadable URL)";
  }
}

/** A host name as `ROOMCAST_HOSTS` lists it: lower case, without port, brackets or final dot. */
export function hostName(host: string): string {
  const bracketed = /^\[([^\]]*)\](?::\d+)?$/.exec(host);
  const name = bracketed ? bracketed[1] as string : host.includes("::") ? host : host.replace(/:\d+$/, "");
  return name.toLowerCase().replace(/\.$/, "");
}

/** Builds the configuration from an environment map (`Deno.env.toObject()` in main.ts);
 * `cores` is what `ROOMCAST_WORKERS=auto` means. */
export function loadConfig(
  env: Env,
  cores = navigator.hardwareConcurrency ?? 1,
  warn: (message: string) => void = () => {},
): Config {
  const read = new Reader(env);
  const onDeploy = read.string("DENO_DEPLOYMENT_ID") !== undefined;
  // On Deno Deploy the KV watch brings the other instances' news, and every poll reads each room's
  // keys (billed reads): the poll is a slower safety net there.
  const kvPollDefault = onDeploy ? 2000 : 200;
  const kvPath = read.string("ROOMCAST_KV_PATH") ?? (onDeploy ? undefined : "./data/roomcast.kv");
  const origins = read.string("ROOMCAST_ORIGINS")?.split(",").map((o) => o.trim().replace(/\/$/, ""))
    .filter((o) => o.length > 0);
  const [publishBurst, publishWindowMs] = read.rate("ROOMCAST_PUBLISH_RATE", [50, 10_000]);
  const [connectBurst, connectWindowMs] = read.rate("ROOMCAST_CONNECT_RATE", [60, 10_000], true);
  const [userPublishBurst, userWindowMs] = read.rate("ROOMCAST_USER_PUBLISH_RATE", [100, 10_000]);
  const [joinBurst, joinWindowMs] = read.rate("ROOMCAST_JOIN_RATE", [200, 10_000]);
  const list = (name: string) => read.string(name)?.split(",").map((item) => item.trim()).filter((item) => item);
  const maxConnections = read.int("ROOMCAST_MAX_CONNECTIONS", 0, 0, 10_000_000);
  // Read on Deno Deploy too, where it means nothing: a known setting there, not a typo.
  const workersText = read.string("ROOMCAST_WORKERS");
  const [pusherClientEventBurst, pusherClientEventWindowMs] = read.rate("ROOMCAST_PUSHER_CLIENT_EVENT_RATE", [
    10,
    1000,
  ]);
  const config: Config = {
    port: read.int("PORT", 8000, 0, 65535),
    hostname: read.string("HOSTNAME") ?? (onDeploy ? "0.0.0.0" : "127.0.0.1"),
    kvPath,
    // On Deno Deploy instances share the KV whatever its path: its commits number the messages.
    sequencer: read.choice("ROOMCAST_SEQUENCER", ["local", "kv"], onDeploy || kvPath === undefined ? "kv" : "local"),
    // Deno Deploy runs many instances of one isolate each: no Workers there.
    workers: onDeploy ? 1 : workersText === "auto" ? cores : read.int("ROOMCAST_WORKERS", 1, 1, 64),
    redisUrl: read.string("ROOMCAST_REDIS_URL"),
    maxConnections: maxConnections > 0 ? maxConnections : undefined,
    maxConnectionsPerIp: read.int("ROOMCAST_MAX_CONNECTIONS_PER_IP", 256, 0, 10_000_000),
    connectBurst,
    connectWindowMs,
    trustedProxies: list("ROOMCAST_TRUSTED_PROXIES") ?? [],
    apiKey: read.string("ROOMCAST_API_KEY"),
    authSecret: read.string("ROOMCAST_AUTH_SECRET"),
    origins: origins && origins.length > 0 ? origins : undefined,
    hosts: list("ROOMCAST_HOSTS")?.map((host) => host === "*" ? host : hostName(host)) ??
      (onDeploy ? ["*"] : ["localhost", "127.0.0.1", "::1"]),
    metricsKey: read.string("ROOMCAST_METRICS_KEY"),
    accessLog: read.choice("ROOMCAST_ACCESS_LOG", ["off", "text", "json"], "off"),
    guestSecret: read.string("ROOMCAST_GUEST_SECRET") ?? randomHex(32),
    leaveGraceMs: read.duration("ROOMCAST_LEAVE_GRACE", 2000, true) ?? 2000,
    heartbeatMs: read.duration("ROOMCAST_HEARTBEAT", 25_000) ?? 25_000,
    sseKeepAliveMs: read.duration("ROOMCAST_SSE_KEEPALIVE", 15_000) ?? 15_000,
    kvPollMs: read.duration("ROOMCAST_KV_POLL", kvPollDefault) ?? kvPollDefault,
    kvWatchRooms: read.int("ROOMCAST_KV_WATCH_ROOMS", 1000, 0, 100_000),
    kvLeaseMs: read.duration("ROOMCAST_KV_LEASE", 15_000) ?? 15_000,
    redisLeaseMs: read.duration("ROOMCAST_REDIS_LEASE", 15_000) ?? 15_000,
    bodyTimeoutMs: read.duration("ROOMCAST_BODY_TIMEOUT", 10_000) ?? 10_000,
    historyLimit: read.int("ROOMCAST_HISTORY_LIMIT", 1000, 1, 100_000),
    historyTtlMs: read.duration("ROOMCAST_HISTORY_TTL", undefined),
    socketIo: {
      pingIntervalMs: read.duration("ROOMCAST_SIO_PING_INTERVAL", 25_000) ?? 25_000,
      pingTimeoutMs: read.duration("ROOMCAST_SIO_PING_TIMEOUT", 20_000) ?? 20_000,
      maxPayload: read.int("ROOMCAST_SIO_MAX_PAYLOAD", 1_000_000, 1024, 100_000_000),
      eio3: read.choice("ROOMCAST_SIO_EIO3", ["on", "off"], "on") === "on",
      layer: read.choice("ROOMCAST_SIO_LAYER", ["official", "own"], "own"),
      recoveryMs: read.duration("ROOMCAST_SIO_RECOVERY", 120_000, true) ?? 120_000,
      connectTimeoutMs: read.duration("ROOMCAST_SIO_CONNECT_TIMEOUT", 45_000) ?? 45_000,
    },
    pusherApps: pusherApps(list("ROOMCAST_PUSHER_APPS") ?? [], read.problems),
    pusherClientEventBurst,
    pusherClientEventWindowMs,
    pusherMaxEventBytes: read.int("ROOMCAST_PUSHER_MAX_EVENT_BYTES", 10_240, 64, 1_048_576),
    webhookUrls: webhookUrls(list("ROOMCAST_WEBHOOK_URL") ?? [], read.problems),
    webhookKeepMs: read.duration("ROOMCAST_WEBHOOK_KEEP", 300_000) ?? 300_000,
    wampRealms: list("ROOMCAST_WAMP_REALMS") ?? [],
    proxy: {
      connectUrl: httpUrl(read.string("ROOMCAST_PROXY_CONNECT_URL"), "ROOMCAST_PROXY_CONNECT_URL", read.problems),
      subscribeUrl: httpUrl(read.string("ROOMCAST_PROXY_SUBSCRIBE_URL"), "ROOMCAST_PROXY_SUBSCRIBE_URL", read.problems),
      publishUrl: httpUrl(read.string("ROOMCAST_PROXY_PUBLISH_URL"), "ROOMCAST_PROXY_PUBLISH_URL", read.problems),
      timeoutMs: read.duration("ROOMCAST_PROXY_TIMEOUT", 1000) ?? 1000,
      secret: read.string("ROOMCAST_PROXY_SECRET"),
      failOpen: read.choice("ROOMCAST_PROXY_FAIL_OPEN", ["0", "1"], "0") === "1",
    },
    limits: {
      maxFrameBytes: read.int("ROOMCAST_MAX_FRAME_BYTES", 65_536, 256, 1_048_576),
      maxJsonDepth: read.int("ROOMCAST_MAX_JSON_DEPTH", 32, 2, 1000),
      maxJsonValues: read.int("ROOMCAST_MAX_JSON_VALUES", 10_000, 10, 1_000_000),
      publishBurst,
      publishWindowMs,
      signalBurst: read.int("ROOMCAST_SIGNAL_BURST", 200, 1, 100_000),
      userPublishBurst,
      userSignalBurst: read.int("ROOMCAST_USER_SIGNAL_BURST", 400, 1, 10_000_000),
      userWindowMs,
      joinBurst,
      joinWindowMs,
      maxRooms: read.int("ROOMCAST_MAX_ROOMS", 100, 1, 100_000),
      memberEventsMax: read.int("ROOMCAST_MEMBER_EVENTS_MAX", 100, 0, 1_000_000),
      floodStrikes: 20,
      sendQueueBytes: read.int("ROOMCAST_SEND_QUEUE_BYTES", 131_072, 1024, 1 << 30),
    },
  };
  if (config.webhookUrls.length > 0 && config.pusherApps.length === 0) {
    read.problems.push(
      "ROOMCAST_WEBHOOK_URL needs ROOMCAST_PUSHER_APPS: webhooks are signed with its first app's secret",
    );
  }
  if (read.problems.length > 0) throw new ConfigError(read.problems.join("; "));
  for (const name of unknownSettings(env, read.known)) warn(name);
  return config;
}

/** A warning for each `ROOMCAST_*` variable roomcast does not read (a typo is otherwise silently
 * ignored), naming the nearest known one. `ROOMCAST_TEST_*` are the test suite's own. */
function unknownSettings(env: Env, known: Set<string>): string[] {
  return Object.keys(env).filter((name) => name.startsWith("ROOMCAST_") && !name.startsWith("ROOMCAST_TEST_"))
    .filter((name) => !known.has(name)).sort().map((name) => {
      let nearest: string | undefined;
      let best = Infinity;
      for (const candidate of known) {
        const distance = editDistance(name, candidate);
        if (distance < best) [nearest, best] = [candidate, distance];
      }
      const hint = nearest && best <= Math.max(2, Math.floor(name.length / 4)) ? ` (did you mean ${nearest}?)` : "";
      return `roomcast: unknown setting ${name} is ignored${hint}; docs/CONFIG.md lists them all`;
    });
}

/** Levenshtein distance: insertions, deletions and substitutions. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min((previous[j] as number) + 1, (row[j - 1] as number) + 1, (previous[j - 1] as number) + cost);
    }
    previous = row;
  }
  return previous[b.length] as number;
}

/** http(s) URLs; one that is not names its place, never its text (it may hold credentials). */
function webhookUrls(items: string[], problems: string[]): string[] {
  return items.filter((item, i) => {
    let ok = false;
    try {
      ok = ["http:", "https:"].includes(new URL(item).protocol);
    } catch {
      ok = false;
    }
    if (!ok) problems.push(`ROOMCAST_WEBHOOK_URL item ${i + 1} must be an http:// or https:// URL`);
    return ok;
  });
}

/** An http(s) URL, or a problem naming the setting (never its text: it may hold credentials). */
function httpUrl(text: string | undefined, name: string, problems: string[]): string | undefined {
  if (text === undefined) return undefined;
  try {
    if (["http:", "https:"].includes(new URL(text).protocol)) return text;
  } catch {
    // Not a URL: said below.
  }
  problems.push(`${name} must be an http:// or https:// URL`);
  return undefined;
}

/** `app_id:key:secret` items; a malformed or repeated one is a problem (the secret is never quoted). */
function pusherApps(items: string[], problems: string[]): PusherApp[] {
  const apps: PusherApp[] = [];
  for (const [i, item] of items.entries()) {
    const [id, key, secret, ...rest] = item.split(":");
    const part = /^[A-Za-z0-9_.-]{1,64}$/;
    if (!id || !key || !secret || rest.length > 0 || !part.test(id) || !part.test(key) || secret.length < 8) {
      problems.push(
        `ROOMCAST_PUSHER_APPS item ${
          i + 1
        } must be app_id:key:secret (ids and keys of letters, digits, _ . -; a secret of 8 characters or more)`,
      );
    } else if (apps.some((app) => app.id === id || app.key === key)) {
      problems.push(`ROOMCAST_PUSHER_APPS item ${i + 1} repeats an app id or key`);
    } else {
      apps.push({ id, key, secret });
    }
  }
  return apps;
}

/** The defaults with some fields replaced: handy for tests and embedding. */
export function configWith(
  overrides: Partial<Omit<Config, "limits">> & { limits?: Partial<LimitsConfig> } = {},
): Config {
  const base = loadConfig({});
  return { ...base, ...overrides, limits: { ...base.limits, ...overrides.limits } };
}
