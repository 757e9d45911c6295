/**
 * The roomcast wire contract as types: the frames a client may send on `/ws`, the frames the
 * server sends, the error codes and the close codes (docs/PROTOCOL.md). Nothing here does I/O.
 */

/** Who is connected. `id` is the JWT `sub` or a generated `guest-…` id. */
export interface User {
  id: string;
  name: string;
  /** What a presence lists about the user besides the name: a Pusher presence channel's
   * `user_info` (JSON, at most 1 KB), absent otherwise. */
  info?: unknown;
}

/** A client-chosen correlation id, echoed on the reply, ack or error of a request. */
export type Ref = string | number;

/** A position in a room's history: recovery resumes after `offset` within `epoch`. */
export interface Position {
  epoch: string;
  offset: number;
}

/** A `since` that asks for the room's whole kept history, whatever its epoch (SSE's `?since=0`):
 * known by identity, so no client-sent position can stand for it. */
export const FROM_START: Position = Object.freeze({ epoch: "", offset: 0 });

/** A stored room event. `(room, epoch, offset)` identifies it everywhere. */
export interface StoredMessage {
  type: "message";
  room: string;
  id: string;
  epoch: string;
  offset: number;
  from: User;
  data: unknown;
  ts: number;
}

/** A message before the store has given it an epoch and offset. */
export type NewMessage = Omit<StoredMessage, "epoch" | "offset">;

export interface Member {
  id: string;
  name: string;
  connections: number;
  /** The user's `info`, where it has one. */
  info?: unknown;
}

/** The member a presence lists for `user` with `connections` connections. */
export function memberOf(user: User, connections: number): Member {
  const member: Member = { id: user.id, name: user.name, connections };
  if (user.info !== undefined) member.info = user.info;
  return member;
}

interface WithRef {
  ref?: Ref;
}

export type ClientFrame =
  | { type: "join"; room: string; since?: Position } & WithRef
  | { type: "leave"; room: string } & WithRef
  | { type: "publish"; room: string; data: unknown; key?: string } & WithRef
  | { type: "direct"; to: string; data: unknown } & WithRef
  | { type: "signal"; room: string; event: string; data: unknown } & WithRef
  | { type: "history"; room: string; before?: number; after?: number; limit: number } & WithRef
  | { type: "presence"; room: string } & WithRef
  | { type: "ping" } & WithRef
  | { type: "pong" } & WithRef;

export type ClientFrameType = ClientFrame["type"];

export type ServerFrame =
  | {
    type: "welcome";
    connection: string;
    user: User;
    heartbeat: number;
    node: string;
    /** A guest's identity token (no auth secret set): sent back as `?guest=`, the same user again. */
    guest?: string;
  }
  | {
    type: "joined";
    room: string;
    epoch: string;
    offset: number;
    recovered: boolean;
    members: Member[];
  } & WithRef
  | { type: "left"; room: string } & WithRef
  | {
    type: "ack";
    room?: string;
    id: string;
    offset?: number;
    epoch?: string;
    delivered?: number;
    /** The data stored, where the app's backend replaced the publisher's (publish proxy). */
    data?: unknown;
    /** false: the app's backend had the message skip history (no offset; sent as a signal). */
    stored?: false;
  } & WithRef
  | StoredMessage
  | { type: "direct"; id: string; from: User; data: unknown; ts: number }
  | { type: "signal"; room: string; from: User; event: string; data: unknown }
  | { type: "history"; room: string; epoch: string; messages: StoredMessage[] } & WithRef
  | { type: "presence"; room: string; members: Member[] } & WithRef
  | { type: "member"; room: string; event: "join" | "leave"; user: User }
  | { type: "broadcast"; id: string; data: unknown; ts: number }
  | { type: "ping" }
  | { type: "pong" } & WithRef
  | { type: "error"; code: ErrorCode; message: string; backendCode?: number } & WithRef;

export type ErrorCode =
  | "bad_request"
  | "not_joined"
  | "forbidden"
  | "unauthorized"
  | "not_found"
  | "too_large"
  | "rate_limited"
  | "internal"
  | "timeout"
  | "unsupported_media_type"
  | "unavailable";

/** HTTP status for each error code, as the contract lists them (the last three are roomcast's:
 * docs/PROTOCOL.md). */
export const errorStatus: Record<ErrorCode, 400 | 401 | 403 | 404 | 408 | 413 | 415 | 429 | 500 | 503> = {
  bad_request: 400,
  not_joined: 400,
  forbidden: 403,
  unauthorized: 401,
  not_found: 404,
  too_large: 413,
  rate_limited: 429,
  internal: 500,
  timeout: 408,
  unsupported_media_type: 415,
  unavailable: 503,
};

/** A client mistake: becomes an `error` frame or a JSON error body, never a crash. Thrown by the
 * HTTP routes and the auth code; the frame decoder uses the cheaper `FrameError`. */
export class ProtocolError extends Error {
  readonly code: ErrorCode;
  readonly ref: Ref | undefined;
  /** The app's backend's own numeric code, where it refused (lib/proxy.ts `BackendRefusal`). */
  readonly backendCode: number | undefined;
  constructor(code: ErrorCode, message: string, ref?: Ref, backendCode?: number) {
    super(message);
    this.name = "ProtocolError";
    this.code = code;
    this.ref = ref;
    this.backendCode = backendCode;
  }
}

/** An error's fields as every JSON answer carries them: `code`, `message`, and `backendCode` where
 * the app's backend gave one (an error frame, an HTTP error body, Socket.IO's error data). */
export function errorFields(
  code: ErrorCode,
  message: string,
  backendCode?: number,
): { code: ErrorCode; message: string; backendCode?: number } {
  return backendCode === undefined ? { code, message } : { code, message, backendCode };
}

/** A client mistake found while decoding a frame, as plain data: no `Error`, so no stack trace is
 * captured (a flood of bad frames must cost next to nothing). */
export class FrameError {
  constructor(readonly code: ErrorCode, readonly message: string, readonly ref?: Ref) {}

  /** The same mistake as a thrown `ProtocolError` (HTTP routes answer it as JSON). */
  toError(): ProtocolError {
    return new ProtocolError(this.code, this.message, this.ref);
  }
}

/** WebSocket close codes. 4000–4499: the client may reconnect. */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  unsupported: 1003,
  policy: 1008,
  tooLarge: 1009,
  internal: 1011,
  tryAgainLater: 1013,
  heartbeat: 4000,
  slowConsumer: 4008,
  /** The app ended the user's connections (HTTP API): clients don't reconnect by themselves. */
  terminated: 4009,
  flood: 4429,
} as const;

/** A room name's characters: roomcast's `[A-Za-z0-9_.:@-]` and Pusher's channel characters
 * `=`, `,` and `;`, so every Pusher channel name of up to 128 characters is a room. */
export const ROOM_RULE = "[A-Za-z0-9_.:@=,;-]{1,128}";
export const ROOM_PATTERN = /^[A-Za-z0-9_.:@=,;-]{1,128}$/;

export function isRoomName(value: unknown): value is string {
  return typeof value === "string" && ROOM_PATTERN.test(value);
}
