/**
 * Webhooks in Pusher's format (https://pusher.com/docs/channels/server_api/webhooks/), for every
 * room: `channel_occupied`/`channel_vacated` (a room's first member in, last out), `member_added`/
 * `member_removed`, `client_event`, `cache_miss`. Events are sent in batches (one POST per receiver
 * every `batchMs`) as `{time_ms, events}`, `Content-Type: application/json`, signed with a Pusher
 * app's key and secret (`X-Pusher-Key`, `X-Pusher-Signature`), so any Pusher server SDK's
 * `webhook(req).isValid()` accepts them.
 *
 * Once each: member and channel events are fired by the node where the presence change took
 * effect (`PresenceChange`, which every presence reports once per change, whatever the topology);
 * client events and cache misses by the node of the connection. A receiver that fails (not 2xx,
 * unreachable, over 10 s) gets the same batch again after a backoff (1 s doubling to 60 s), with
 * what came meanwhile, in order; events kept longer than `keepMs` unsent, or beyond `maxPending`
 * per receiver, are dropped and counted. They are kept in the process's memory: a process that
 * ends loses what it had not sent.
 */
import { createHmac } from "node:crypto";
import type { Clock } from "./clock.ts";
import type { PresenceChange } from "./engine/presence.ts";
import type { Metrics } from "./metrics.ts";

export interface WebhookEvent {
  name: "channel_occupied" | "channel_vacated" | "member_added" | "member_removed" | "client_event" | "cache_miss";
  channel: string;
  [field: string]: unknown;
}

/** Sends one POST; resolves with the HTTP status (0: no answer). */
export type Post = (url: string, body: string, headers: Record<string, string>) => Promise<number>;

export interface WebhookOptions {
  urls: string[];
  /** The Pusher app whose key and secret sign the bodies. */
  signer: { key: string; secret: string };
  clock: Clock;
  metrics: Metrics;
  /** How long an event may wait for its receiver. @default 300000 */
  keepMs?: number;
  /** @default 250 */
  batchMs?: number;
  /** Events waiting per receiver at most. @default 10000 */
  maxPending?: number;
  /** Events per POST at most. @default 100 */
  maxBatch?: number;
  post?: Post;
}

const TIMEOUT_MS = 10_000;

/** The webhooks a configuration asks for (`ROOMCAST_WEBHOOK_URL`), or undefined. */
export function webhooksOf(
  config: { webhookUrls: string[]; webhookKeepMs: number; pusherApps: { key: string; secret: string }[] },
  clock: Clock,
  metrics: Metrics,
): Webhooks | undefined {
  const signer = config.pusherApps[0];
  if (config.webhookUrls.length === 0 || !signer) return undefined;
  return new Webhooks({ urls: config.webhookUrls, signer, clock, metrics, keepMs: config.webhookKeepMs });
}
const MAX_BACKOFF_MS = 60_000;

/** What a receiver has waiting: events with the time they were fired. */
class Receiver {
  readonly pending: { at: number; event: WebhookEvent }[] = [];
  /** The batch being sent (kept at the head of `pending` until it is answered 2xx). */
  inFlight = false;
  failures = 0;
  retryAt = 0;
  constructor(readonly url: string) {}
}

export class Webhooks {
  readonly #options: Required<Omit<WebhookOptions, "urls">>;
  readonly #receivers: Receiver[];
  #timer: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  constructor(options: WebhookOptions) {
    this.#options = {
      keepMs: 300_000,
      batchMs: 250,
      maxPending: 10_000,
      maxBatch: 100,
      post: defaultPost,
      ...options,
    };
    this.#receivers = options.urls.map((url) => new Receiver(url));
  }

  /** What a presence change means to webhooks: a member in or out, and the room occupied or vacated. */
  memberChange(change: PresenceChange): void {
    const { room: channel, user, event, occupancy } = change;
    // Names held through the presence (Hub.claim: WAMP procedures) are no rooms.
    if (channel.startsWith("#")) return;
    if (event === "join") {
      if (occupancy === "occupied") this.#fire({ name: "channel_occupied", channel });
      this.#fire({ name: "member_added", channel, user_id: user.id });
    } else {
      this.#fire({ name: "member_removed", channel, user_id: user.id });
      if (occupancy === "vacated") this.#fire({ name: "channel_vacated", channel });
    }
  }

  clientEvent(e: { channel: string; event: string; data: string; socketId: string; userId?: string }): void {
    const event: WebhookEvent = {
      name: "client_event",
      channel: e.channel,
      event: e.event,
      data: e.data,
      socket_id: e.socketId,
    };
    if (e.userId !== undefined) event.user_id = e.userId;
    this.#fire(event);
  }

  cacheMiss(channel: string): void {
    this.#fire({ name: "cache_miss", channel });
  }

  #fire(event: WebhookEvent): void {
    if (this.#closed) return;
    const at = this.#options.clock.now();
    for (const receiver of this.#receivers) {
      if (receiver.pending.length >= this.#options.maxPending) {
        // The oldest not in flight goes (the batch in flight is sent as it is).
        const index = receiver.inFlight ? Math.min(this.#options.maxBatch, receiver.pending.length - 1) : 0;
        receiver.pending.splice(index, 1);
        this.#options.metrics.webhooks.incLabel("dropped");
      }
      receiver.pending.push({ at, event });
    }
    this.#timer ??= setInterval(() => this.#tick(), this.#options.batchMs);
  }

  /** Sends what each receiver has waiting, unless it is in flight or backing off. */
  #tick(): void {
    const now = this.#options.clock.now();
    let waiting = false;
    for (const receiver of this.#receivers) {
      this.#expire(receiver, now);
      if (receiver.pending.length > 0) waiting = true;
      if (receiver.inFlight || receiver.pending.length === 0 || now < receiver.retryAt) continue;
      void this.#send(receiver);
    }
    if (!waiting && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  /** Drops what waited longer than `keepMs` (never the batch in flight). */
  #expire(receiver: Receiver, now: number): void {
    const from = receiver.inFlight ? Math.min(this.#options.maxBatch, receiver.pending.length) : 0;
    let stale = 0;
    while (from + stale < receiver.pending.length) {
      const entry = receiver.pending[from + stale];
      if (!entry || now - entry.at <= this.#options.keepMs) break;
      stale++;
    }
    if (stale === 0) return;
    receiver.pending.splice(from, stale);
    this.#options.metrics.webhooks.incLabel("dropped", stale);
    console.warn(
      `roomcast: ${stale} webhook events for ${safeUrl(receiver.url)} dropped, unsent after ${
        this.#options.keepMs / 1000
      } s`,
    );
  }

  async #send(receiver: Receiver): Promise<void> {
    const { clock, signer, maxBatch, post, metrics } = this.#options;
    const batch = receiver.pending.slice(0, maxBatch);
    receiver.inFlight = true;
    const body = JSON.stringify({ time_ms: clock.now(), events: batch.map((entry) => entry.event) });
    const headers = {
      "content-type": "application/json",
      "x-pusher-key": signer.key,
      "x-pusher-signature": createHmac("sha256", signer.secret).update(body).digest("hex"),
    };
    let status = 0;
    try {
      status = await post(receiver.url, body, headers);
    } catch {
      status = 0;
    }
    receiver.inFlight = false;
    if (status >= 200 && status < 300) {
      // What was sent leaves the head (entries dropped meanwhile were never among the first maxBatch).
      receiver.pending.splice(0, batch.length);
      receiver.failures = 0;
      receiver.retryAt = 0;
      metrics.webhooks.incLabel("sent", batch.length);
    } else {
      receiver.failures++;
      receiver.retryAt = clock.now() + Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (receiver.failures - 1));
      metrics.webhooks.incLabel("retried", batch.length);
      if (receiver.failures === 1 || receiver.failures % 10 === 0) {
        console.warn(
          `roomcast: webhook receiver ${safeUrl(receiver.url)} failed (${
            status || "no answer"
          }); retrying ${batch.length} events`,
        );
      }
    }
    if (receiver.pending.length > 0) this.#timer ??= setInterval(() => this.#tick(), this.#options.batchMs);
  }

  /** Events waiting for `url` (or every receiver). */
  pending(url?: string): number {
    return this.#receivers.filter((r) => url === undefined || r.url === url).reduce((n, r) => n + r.pending.length, 0);
  }

  /** Tries once more to send what is waiting (a draining server), within `timeoutMs`, then stops. */
  async close(timeoutMs = 2000): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    const deadline = Date.now() + timeoutMs;
    for (const receiver of this.#receivers) {
      while (receiver.pending.length > 0 && !receiver.inFlight && Date.now() < deadline) {
        const failures = receiver.failures;
        await this.#send(receiver);
        if (receiver.failures > failures) break;
      }
    }
  }
}

/** A receiver's URL without credentials, for logs. */
function safeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.origin}${parsed.pathname}`;
  } catch {
    return "(a webhook URL)";
  }
}

const defaultPost: Post = async (url, body, headers) => {
  const response = await fetch(url, { method: "POST", body, headers, signal: AbortSignal.timeout(TIMEOUT_MS) });
  await response.body?.cancel();
  return response.status;
};
