/**
 * Pusher's HTTP API (https://pusher.com/docs/channels/library_auth_reference/rest-api/), what
 * the `pusher` server SDKs call, under `/apps/:app_id`: events (stored in the channel's room, like
 * any message), batches, channel and user queries, and ending a user's connections. Every request
 * is signed with the app's secret (`signature.ts`); a bad or stale signature is 401.
 */
import type { Hono } from "hono";
import { jsonObject } from "../../../lib/codec.ts";
import type { PusherApp } from "../../../lib/config.ts";
import { isRoomName, ProtocolError, type User } from "../../../lib/protocol.ts";
import type { AppContext, AppDeps, AppEnv } from "../../deps.ts";
import { readBody } from "../../body.ts";
import { channelKind, EVENT_NAME, storedData, USER_CHANNEL_PREFIX } from "./channels.ts";
import { requestProblem } from "./signature.ts";

/** Who a triggered event is from, as other clients see it. */
const SERVER: User = { id: "server", name: "server" };
/** Pusher's limits: channels per event, events per batch. */
const MAX_CHANNELS = 100;
const MAX_BATCH = 10;
const UTF8 = new TextDecoder("utf-8", { fatal: true });

/** One event to trigger, as `events` and `batch_events` give it. */
interface Trigger {
  name: string;
  data: string;
  channels: string[];
  socketId: string | undefined;
  info: string[];
}

/** The app of a signed request, and its body (parsed, for a POST); throws 401/404/400. */
async function signed(c: AppContext, deps: AppDeps): Promise<{ app: PusherApp; body: Record<string, unknown> }> {
  const app = deps.config.pusherApps.find((a) => a.id === c.req.param("app_id"));
  if (!app) throw new ProtocolError("not_found", "No such app");
  const url = new URL(c.req.url);
  let bytes: Uint8Array | undefined;
  if (c.req.method === "POST") {
    const { limits, pusherMaxEventBytes, bodyTimeoutMs } = deps.config;
    const maxBytes = Math.max(limits.maxFrameBytes, pusherMaxEventBytes * (MAX_BATCH + 1));
    bytes = await readBody(c.req.raw, { maxBytes, timeoutMs: bodyTimeoutMs });
  }
  const problem = requestProblem(app, c.req.method, url.pathname, url.search.slice(1), bytes, deps.clock.now());
  if (problem) throw new ProtocolError("unauthorized", problem);
  return { app, body: bytes ? parseBody(bytes, deps) : {} };
}

function parseBody(bytes: Uint8Array, deps: AppDeps): Record<string, unknown> {
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    throw new ProtocolError("bad_request", "Body is not valid UTF-8");
  }
  const value = jsonObject(text, deps.config.limits, "Body");
  if (typeof value === "string") throw new ProtocolError("bad_request", value);
  return value;
}

function trigger(value: Record<string, unknown>, deps: AppDeps, batch: boolean): Trigger {
  const { name, data } = value;
  if (typeof name !== "string" || !EVENT_NAME.test(name) || name.startsWith("pusher")) {
    throw new ProtocolError("bad_request", "name must be an event name of 1–200 characters, not pusher…");
  }
  if (typeof data !== "string") throw new ProtocolError("bad_request", "data must be a string");
  if (data.length > deps.config.pusherMaxEventBytes) {
    throw new ProtocolError("too_large", `Event data is larger than ${deps.config.pusherMaxEventBytes} bytes`);
  }
  const channels = batch ? [value.channel] : Array.isArray(value.channels) ? value.channels : [value.channel];
  if (channels.length === 0 || channels.length > MAX_CHANNELS) {
    throw new ProtocolError("bad_request", `An event goes to 1–${MAX_CHANNELS} channels`);
  }
  for (const channel of channels) {
    if (typeof channel !== "string" || !(isRoomName(channel) || userOf(channel) !== undefined)) {
      throw new ProtocolError("bad_request", "Channel names are 1–128 characters of A-Z a-z 0-9 _ - = @ , . ; :");
    }
  }
  const socketId = value.socket_id;
  if (socketId !== undefined && (typeof socketId !== "string" || !/^\d+\.\d+$/.test(socketId))) {
    throw new ProtocolError("bad_request", "socket_id must look like 123.456");
  }
  const info = typeof value.info === "string" ? value.info.split(",").map((i) => i.trim()).filter(Boolean) : [];
  return { name, data, channels: channels as string[], socketId, info };
}

/** The user of a `#server-to-user-<id>` channel, or undefined. */
function userOf(channel: string): string | undefined {
  if (!channel.startsWith(USER_CHANNEL_PREFIX)) return undefined;
  const id = channel.slice(USER_CHANNEL_PREFIX.length);
  return id.length > 0 && id.length <= 128 ? id : undefined;
}

/** Stores the event in each channel's room (a user's channel: a direct to the user). */
async function fire(deps: AppDeps, t: Trigger): Promise<Record<string, Record<string, number>> | undefined> {
  const data: Record<string, unknown> = { ...storedData(t.name, t.data, deps.config.limits) };
  if (t.socketId) data.socket_id = t.socketId;
  await Promise.all(t.channels.map((channel) => {
    const user = userOf(channel);
    return user !== undefined ? deps.hub.directAs(SERVER, user, data) : deps.hub.publishAs(channel, data, SERVER);
  }));
  if (t.info.length === 0) return undefined;
  const out: Record<string, Record<string, number>> = {};
  for (const channel of t.channels) out[channel] = await channelInfo(deps, channel, t.info);
  return out;
}

/** `user_count` (presence channels) and `subscription_count` of a channel, as asked. */
async function channelInfo(deps: AppDeps, channel: string, info: string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  if (!info.includes("user_count") && !info.includes("subscription_count")) return out;
  const members = isRoomName(channel) ? await deps.hub.presence(channel) : [];
  if (info.includes("user_count") && channelKind(channel) === "presence") out.user_count = members.length;
  if (info.includes("subscription_count")) out.subscription_count = members.reduce((n, m) => n + m.connections, 0);
  return out;
}

export function mountPusherApi(app: Hono<AppEnv>, deps: AppDeps): void {
  if (deps.config.pusherApps.length === 0) return;
  app.post("/apps/:app_id/events", async (c) => {
    const { body } = await signed(c, deps);
    const channels = await fire(deps, trigger(body, deps, false));
    return c.json(channels ? { channels } : {});
  });

  app.post("/apps/:app_id/batch_events", async (c) => {
    const { body } = await signed(c, deps);
    const items = body.batch;
    if (!Array.isArray(items) || items.length === 0 || items.length > MAX_BATCH) {
      throw new ProtocolError("bad_request", `batch must hold 1–${MAX_BATCH} events`);
    }
    // Every event is checked before any is stored: a bad one fails the batch, not half of it.
    const triggers = items.map((item) => trigger(typeof item === "object" && item ? item : {}, deps, true));
    const batch = [];
    for (const t of triggers) batch.push((await fire(deps, t))?.[t.channels[0] as string] ?? {});
    return c.json(triggers.some((t) => t.info.length > 0) ? { batch } : {});
  });

  app.get("/apps/:app_id/channels", async (c) => {
    await signed(c, deps);
    const prefix = c.req.query("filter_by_prefix") ?? "";
    const info = (c.req.query("info") ?? "").split(",").filter(Boolean);
    if (info.includes("user_count") && !prefix.startsWith("presence-")) {
      throw new ProtocolError("bad_request", "info=user_count needs filter_by_prefix=presence-");
    }
    const channels: Record<string, Record<string, number>> = {};
    for (const { room, members, connections } of await deps.hub.rooms()) {
      if (!room.startsWith(prefix)) continue;
      const attributes: Record<string, number> = {};
      if (info.includes("user_count")) attributes.user_count = members;
      if (info.includes("subscription_count")) attributes.subscription_count = connections;
      channels[room] = attributes;
    }
    return c.json({ channels });
  });

  app.get("/apps/:app_id/channels/:channel_name", async (c) => {
    await signed(c, deps);
    const channel = c.req.param("channel_name");
    const info = (c.req.query("info") ?? "").split(",").filter(Boolean);
    if (info.includes("user_count") && channelKind(channel) !== "presence") {
      throw new ProtocolError("bad_request", "info=user_count is for presence channels");
    }
    const members = isRoomName(channel) ? await deps.hub.presence(channel) : [];
    return c.json({ occupied: members.length > 0, ...await channelInfo(deps, channel, info) });
  });

  app.get("/apps/:app_id/channels/:channel_name/users", async (c) => {
    await signed(c, deps);
    const channel = c.req.param("channel_name");
    if (channelKind(channel) !== "presence" || !isRoomName(channel)) {
      throw new ProtocolError("bad_request", "Users are listed for presence channels only");
    }
    return c.json({ users: (await deps.hub.presence(channel)).map((m) => ({ id: m.id })) });
  });

  app.post("/apps/:app_id/users/:user_id/terminate_connections", async (c) => {
    await signed(c, deps);
    const user = c.req.param("user_id");
    if (user.length === 0 || user.length > 128) throw new ProtocolError("bad_request", "User id must be 1–128 chars");
    deps.hub.terminate(user);
    return c.json({});
  });
}
