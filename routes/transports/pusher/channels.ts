/**
 * Pusher channels as roomcast rooms, and roomcast's frames as Pusher events
 * (docs/PROTOCOL.md, "Pusher"). A channel is the room of the same name. The mapping of events:
 *
 * - A stored message whose data is `{event, data}` (what a Pusher trigger stores, with the
 *   `socket_id` it excludes, if any) is that event with that data; any other message is the event
 *   `message` with the message's data. Data goes
 *   out as a string: a string as it is, anything else as its JSON.
 * - A signal is a client event of its name (`client-…` from Pusher clients), with `user_id` on
 *   presence channels.
 * - Member joins and leaves are `pusher_internal:member_added`/`member_removed` on presence
 *   channels only; a direct to the user is an event on `#server-to-user-<id>`; a broadcast is an
 *   event on no channel.
 */
import { type JsonLimits, jsonValue } from "../../../lib/codec.ts";
import type { Member, ServerFrame, StoredMessage, User } from "../../../lib/protocol.ts";

export type ChannelKind = "public" | "private" | "presence" | "encrypted" | "user";

/** The channel of a user's own events (after `pusher:signin`). */
export const USER_CHANNEL_PREFIX = "#server-to-user-";

export function channelKind(channel: string): ChannelKind {
  if (channel.startsWith("private-encrypted-")) return "encrypted";
  if (channel.startsWith("private-")) return "private";
  if (channel.startsWith("presence-")) return "presence";
  if (channel.startsWith(USER_CHANNEL_PREFIX)) return "user";
  return "public";
}

/** A cache channel keeps its last event for new subscribers. */
export function isCacheChannel(channel: string): boolean {
  return /^(?:private-encrypted-|private-|presence-)?cache-/.test(channel);
}

/** Pusher's event names: up to 200 characters (roomcast's signals: 64). */
export const EVENT_NAME = /^[\x21-\x7e]{1,200}$/;

/** What a Pusher trigger stores as a message's data. */
export interface PusherEventData {
  event: string;
  data: unknown;
}

/** The stored form of a Pusher event's data: its JSON parsed when it is JSON within `limits`, else
 * the string as it came (Pusher's data is an opaque string). */
export function storedData(event: string, data: string, limits: JsonLimits): PusherEventData {
  const read = jsonValue(data, limits, "Data");
  return { event, data: typeof read === "string" ? data : read.value };
}

/** The Pusher event a message's data stands for (see the module comment). */
export function eventOf(data: unknown): { event: string; data: string } {
  if (typeof data === "object" && data !== null && !Array.isArray(data)) {
    const record = data as Record<string, unknown>;
    const keys = Object.keys(record).filter((key) => key !== "socket_id");
    if (
      keys.length === 2 && typeof record.event === "string" && "data" in record &&
      EVENT_NAME.test(record.event) && !record.event.startsWith("pusher")
    ) {
      return { event: record.event, data: dataText(record.data) };
    }
  }
  return { event: "message", data: dataText(data) };
}

export function dataText(data: unknown): string {
  return typeof data === "string" ? data : JSON.stringify(data) ?? "null";
}

/** `pusher_internal:subscription_succeeded`'s data for a presence channel. */
export function presenceData(members: Member[]): string {
  const hash: Record<string, unknown> = {};
  for (const member of members) hash[member.id] = member.info ?? {};
  return JSON.stringify({ presence: { ids: Object.keys(hash), hash, count: Object.keys(hash).length } });
}

/** Encodings shared by every Pusher connection that receives the same frame (a fan-out encodes a
 * message once, not once per receiver). */
const shared = new WeakMap<ServerFrame, string>();

function once(frame: ServerFrame, make: () => string | undefined): string | undefined {
  const known = shared.get(frame);
  if (known !== undefined) return known;
  const text = make();
  if (text !== undefined) shared.set(frame, text);
  return text;
}

/** The Pusher text of a frame every receiver sees alike, or undefined when Pusher clients get
 * nothing for it. Per-connection frames (welcome, joined, direct, error) are the peer's. */
export function sharedText(frame: ServerFrame): string | undefined {
  switch (frame.type) {
    case "message":
      return once(frame, () => messageText(frame));
    case "signal":
      return once(frame, () => {
        const { room, event, data, from } = frame;
        const out: Record<string, unknown> = { event, channel: room, data };
        if (channelKind(room) === "presence") out.user_id = from.id;
        return JSON.stringify(out);
      });
    case "member":
      if (channelKind(frame.room) !== "presence") return undefined;
      return once(frame, () => memberText(frame.room, frame.event, frame.user));
    case "broadcast":
      return once(frame, () => {
        const { event, data } = eventOf(frame.data);
        return JSON.stringify({ event, data });
      });
    case "ping":
      return PING;
    default:
      return undefined;
  }
}

const PING = JSON.stringify({ event: "pusher:ping", data: {} });

function messageText(message: StoredMessage): string {
  const { event, data } = eventOf(message.data);
  return JSON.stringify({ event, channel: message.room, data });
}

function memberText(channel: string, event: "join" | "leave", user: User): string {
  if (event === "leave") {
    return JSON.stringify({
      event: "pusher_internal:member_removed",
      channel,
      data: JSON.stringify({ user_id: user.id }),
    });
  }
  return JSON.stringify({
    event: "pusher_internal:member_added",
    channel,
    data: JSON.stringify({ user_id: user.id, user_info: user.info ?? {} }),
  });
}
