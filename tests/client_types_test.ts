/**
 * static/roomcast.js keeps its own typedefs of the server's frames (so the file works alone);
 * this file holds them to lib/protocol.ts, the one source. The checks are types: `deno check`
 * (and `deno test`, which type-checks first) fails when a field is added, dropped or changed on
 * either side. The one widening on purpose: the client's error `code` is any string.
 */
import assert from "node:assert/strict";
import type * as Client from "../static/roomcast.js";
import type { ErrorCode, Member, Position, ServerFrame, User } from "../lib/protocol.ts";

type Of<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;
/** True when A and B are assignable both ways and have the same keys (so an optional field added
 * on one side only counts as a difference). */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? SameKeys<A, B> : false) : false;
type SameKeys<A, B> = [keyof A] extends [keyof B] ? ([keyof B] extends [keyof A] ? true : false) : false;
/** Compiles only when given `true`. */
const same = <T extends true>(_: T) => {};

same<Same<Client.User, User>>(true);
same<Same<Client.Member, Member>>(true);
same<Same<Client.Position, Position>>(true);
same<Same<Client.WelcomeFrame, Of<"welcome">>>(true);
same<Same<Client.JoinedFrame, Of<"joined">>>(true);
same<Same<Client.LeftFrame, Of<"left">>>(true);
same<Same<Client.MessageFrame, Of<"message">>>(true);
same<Same<Client.AckFrame, Of<"ack">>>(true);
same<Same<Client.DirectFrame, Of<"direct">>>(true);
same<Same<Client.SignalFrame, Of<"signal">>>(true);
same<Same<Client.HistoryFrame, Of<"history">>>(true);
same<Same<Client.PresenceFrame, Of<"presence">>>(true);
same<Same<Client.MemberFrame, Of<"member">>>(true);
same<Same<Client.BroadcastFrame, Of<"broadcast">>>(true);
same<Same<Client.PingFrame, Of<"ping">>>(true);
same<Same<Client.PongFrame, Of<"pong">>>(true);
same<Same<Omit<Client.ErrorFrame, "code"> & { code: ErrorCode }, Of<"error">>>(true);

/** Every server frame type has a client typedef above; a new one fails to compile here. */
const COVERED = [
  "welcome",
  "joined",
  "left",
  "message",
  "ack",
  "direct",
  "signal",
  "history",
  "presence",
  "member",
  "broadcast",
  "ping",
  "pong",
  "error",
] as const;
same<Same<typeof COVERED[number], ServerFrame["type"]>>(true);

Deno.test("roomcast.js typedefs: one per server frame type, each the shape lib/protocol.ts gives", () => {
  // The shapes are checked when this file compiles; here, that the list has no duplicates.
  assert.equal(new Set(COVERED).size, COVERED.length);
});
