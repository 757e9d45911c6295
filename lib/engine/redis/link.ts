/**
 * The connection to Redis that the Redis engine shares (store.ts, backplane.ts,
 * presence.ts): the official `redis` client (node-redis), one connection for commands and
 * one for pub/sub, both reconnecting by themselves. Commands never wait in a queue while Redis is
 * away: they fail at once with `EngineUnavailable`, so that nothing is acknowledged that was not
 * stored, and the service comes back by itself when Redis does.
 *
 * Keys: everything about a room lives under `rc:{<room>}:…`, the room in braces as a hash tag, so
 * that a room's keys share one slot and its Lua scripts run on one node of a Redis Cluster.
 */
import { createClient, ErrorReply } from "redis";
import { EngineUnavailable } from "../store.ts";
import { redisHost } from "../../config.ts";
import { hex } from "../../ids.ts";

type Client = ReturnType<typeof createClient>;

export type LinkState = "up" | "down";

/** A Lua script run by its SHA1 (loaded again after a Redis restart forgot it). */
export class Script {
  #sha: string | undefined;
  constructor(readonly source: string) {}

  async sha(): Promise<string> {
    if (this.#sha) return this.#sha;
    const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(this.source));
    this.#sha = hex(new Uint8Array(digest));
    return this.#sha;
  }
}

/** A room's keys: `rc:{room}:<what>`. Braces in a room name would end the hash tag early: they
 * are escaped. */
export function roomKey(room: string, what: string): string {
  return `rc:${hashTag(room)}:${what}`;
}

/** `{name}`, the hash tag that keeps a name's keys in one Cluster slot (its braces escaped, and
 * the escape character itself first, so that two names never make one tag: user ids may hold any
 * of them; room names hold none). */
export function hashTag(name: string): string {
  return `{${name.replaceAll("%", "%25").replaceAll("{", "%7B").replaceAll("}", "%7D")}}`;
}

export interface RedisLinkOptions {
  url: string;
  /** How long a command may take before it fails (Redis stalled). @default 5000 */
  commandTimeoutMs?: number;
  /** Where a line goes when Redis goes away and when it is back (main.ts: the log). */
  log?: (line: string) => void;
}

export class RedisLink {
  readonly client: Client;
  readonly #options: RedisLinkOptions;
  #subscriber: Client | undefined;
  #state: LinkState = "down";
  readonly #listeners = new Set<() => void>();
  #beenUp = false;
  /** Said that Redis was not there at start. */
  #toldAbsent = false;
  /** When the link last went down (ms). */
  #downSince = 0;
  /** Where Redis is, as the log names it (no credentials). */
  readonly #where: string;
  #closed = false;
  /** Commands sent and not answered yet, with when they were sent. */
  readonly #pending = new Set<{ at: number; reject(error: unknown): void }>();
  #watchdog: ReturnType<typeof setInterval> | undefined;

  constructor(options: RedisLinkOptions) {
    this.#options = options;
    this.#where = redisHost(options.url);
    this.client = this.#client();
    this.#watch(this.client, true);
  }

  #client(): Client {
    return createClient({
      url: this.#options.url,
      disableOfflineQueue: true,
      socket: {
        connectTimeout: 2000,
        reconnectStrategy: (retries: number) => Math.min(50 * 2 ** Math.min(retries, 6), 2000),
      },
    });
  }

  /** Follows a connection's state (the command connection's is the link's). */
  #watch(client: Client, main: boolean): void {
    // node-redis throws if nobody listens to "error"; each failure is also a state change.
    client.on("error", (error: unknown) => {
      if (main) this.#set("down", error instanceof Error ? error.message : String(error));
    });
    client.on("end", () => {
      if (main) this.#set("down", "connection ended");
    });
    client.on("ready", () => {
      if (main) this.#set("up");
    });
  }

  #set(state: LinkState, why = ""): void {
    if (this.#closed) return;
    const where = this.#where;
    const log = this.#options.log;
    if (state === "down" && !this.#beenUp && !this.#toldAbsent) {
      // Not there at start: said once, not at each retry.
      this.#toldAbsent = true;
      log?.(`roomcast: Redis at ${where} can't be reached yet (${why}); retrying`);
    }
    if (this.#state === state) return;
    this.#state = state;
    if (state === "down") {
      this.#downSince = Date.now();
      if (this.#beenUp) {
        log?.(`roomcast: Redis at ${where} went away (${why}): publishes answer "unavailable" until it is back`);
      }
      return;
    }
    // Up again after having been up: Redis was away (and may have come back empty).
    if (this.#beenUp) {
      const seconds = ((Date.now() - this.#downSince) / 1000).toFixed(1);
      log?.(`roomcast: Redis at ${where} is back after ${seconds} s; rooms catch up from it`);
      for (const listener of this.#listeners) listener();
    } else if (this.#toldAbsent) log?.(`roomcast: Redis at ${where} is reachable`);
    this.#beenUp = true;
  }

  get state(): LinkState {
    return this.#state;
  }

  /** Calls `listener` each time the link is back after Redis went away: what was published meanwhile
   * never arrived, and what was written may be gone. */
  onBack(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Connects, waiting at most `waitMs` for Redis (it may come later: the link keeps trying). */
  async open(waitMs = 3000): Promise<void> {
    const connected = this.client.connect().then(() => {}, () => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([connected, new Promise((resolve) => timer = setTimeout(resolve, waitMs))]);
    clearTimeout(timer);
  }

  /** The pub/sub connection, made on first use. */
  subscriber(): Promise<Client> {
    if (!this.#subscriber) {
      const subscriber = this.#subscriber = this.client.duplicate();
      this.#watch(subscriber, false);
      subscriber.connect().catch(() => {});
    }
    return Promise.resolve(this.#subscriber);
  }

  /** Runs a command; fails with `EngineUnavailable` while Redis is away or too slow. (One watchdog
   * times commands out, not a timer each: a publish is a command.) */
  command<T = unknown>(args: string[]): Promise<T> {
    if (this.#closed) return Promise.reject(new EngineUnavailable("The Redis engine is closed"));
    this.#watchdog ??= setInterval(() => this.#expire(), 250);
    return new Promise<T>((resolve, reject) => {
      const pending = { at: Date.now(), reject };
      this.#pending.add(pending);
      (this.client.sendCommand(args) as Promise<T>).then(
        (value) => {
          this.#pending.delete(pending);
          resolve(value);
        },
        (error) => {
          this.#pending.delete(pending);
          reject(
            isReplyError(error) && !notNow(error)
              ? error
              : new EngineUnavailable(`Redis is unavailable: ${error?.message ?? error}`),
          );
        },
      );
    });
  }

  /** Fails the commands Redis has not answered within the timeout (it is stalled or gone). */
  #expire(): void {
    const timeoutMs = this.#options.commandTimeoutMs ?? 5000;
    const late = Date.now() - timeoutMs;
    for (const pending of this.#pending) {
      if (pending.at > late) continue;
      this.#pending.delete(pending);
      // Sent, so it may still run once Redis catches up: said so to whoever waited for it.
      pending.reject(new EngineUnavailable(`Redis did not answer within ${timeoutMs} ms`, { unanswered: true }));
    }
  }

  /** Runs a script by SHA1, loading it first where Redis doesn't know it. */
  async eval<T = unknown>(script: Script, keys: string[], args: string[]): Promise<T> {
    const sha = await script.sha();
    try {
      return await this.command<T>(["EVALSHA", sha, String(keys.length), ...keys, ...args]);
    } catch (error) {
      if (!isReplyError(error) || !/NOSCRIPT/.test(String((error as Error).message))) throw error;
      return await this.command<T>(["EVAL", script.source, String(keys.length), ...keys, ...args]);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    clearInterval(this.#watchdog);
    for (const client of [this.#subscriber, this.client]) {
      if (!client) continue;
      try {
        if (client.isOpen) await client.close();
        else client.destroy();
      } catch {
        client.destroy();
      }
    }
  }
}

/** Replies that mean Redis did not run the command and may later: loading its data (AOF, RDB) after
 * a start, busy with a long script, a replica without its master, a cluster changing. */
function notNow(error: unknown): boolean {
  return /^(LOADING|BUSY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN)\b/.test(String((error as Error)?.message));
}

/** An error Redis answered (a wrong command, a script's error): not a lost connection. */
function isReplyError(error: unknown): boolean {
  return error instanceof ErrorReply;
}
