/**
 * Socket.IO's connection state recovery (socket.io 4.6+, `socket.recovered`), on roomcast's history,
 * so that it holds across isolates, processes and Deploy instances (docs/PROTOCOL.md, "Socket.IO").
 *
 * What the stock client does: its CONNECT answer carries a private session id (`pid`); every event
 * it gets ends with an offset string, and it keeps the last one; reconnecting after a drop, it sends
 * `{pid, offset}` in its CONNECT auth, and takes `recovered` to be true when the answer names the
 * same `pid`.
 *
 * What roomcast does: each socket's offsets are a count of the events written to it (`SessionLog`),
 * and the log keeps the last `LOG_ENTRIES` of them: a stored message as its room and offset, any
 * other event as its arguments. When the socket drops (a transport close or error, a ping timeout,
 * the server going away), its session (`Parked`: rooms and positions, user, the log) is parked in
 * the store for `ROOMCAST_SIO_RECOVERY`, where every isolate and process finds it. A client that
 * comes back with its `pid` and last offset gets, in the order they were written, the events of the
 * log after that offset, then every message stored in its rooms since (the room's history), before
 * anything live; then its rooms, user and `socket.id` are its own again. Anything unknown (no such
 * session, expired, taken, an offset the log can't place, a room whose history no longer reaches
 * back, another user's token) gets a fresh session: `recovered: false`.
 */
import type { User } from "../../../lib/protocol.ts";
import { MAX_PARKED_BYTES } from "../../../lib/engine/store.ts";
import type { Position, StoredMessage } from "../../../lib/protocol.ts";
import type { Hub } from "../../../lib/hub.ts";
import type { Identity } from "../../../lib/auth.ts";
import { roomAllowed } from "../../../lib/auth.ts";

/** Disconnect reasons after which a session is parked (socket.io's); a shutdown parks too, told by
 * the peer (`goingAway`), whatever the reason the layer gives. */
export const RECOVERABLE = new Set(["transport close", "transport error", "ping timeout"]);

/** Events a socket's log keeps at most, and the bytes of their arguments (relayed events). */
export const LOG_ENTRIES = 512;
export const LOG_BYTES = 256 * 1024;

/** One written event: a stored message (replayed from its room's history), or the arguments of
 * another event (kept as written, `$binary` for bytes). */
type Entry = { seq: number; message: StoredMessage } | { seq: number; args: unknown[]; bytes: number };

/** The offsets one socket's client is given, and the events written to it lately. */
export class SessionLog {
  /** The last offset handed out. */
  seq: number;
  /** Offsets up to this one are no longer in the log. */
  floor: number;
  /** The log, flat (no object per entry): `seq, message or args, bytes` for each, oldest first;
   * made with the first entry. */
  #flat: (number | StoredMessage | unknown[])[] | undefined;
  /** Where the oldest kept entry starts in `#flat` (dropped ones are cut off in bulk). */
  #start = 0;
  #bytes = 0;
  /** The last message written to the socket in each room (a join's replay may still be on its way
   * when the socket drops: the hub's position runs ahead of what was written). Made with the first
   * message (an idle socket holds no empty Map). */
  #written: Map<string, Position> | undefined;

  /** Where the socket's last written message in `room` is, if any. */
  writtenIn(room: string): Position | undefined {
    return this.#written?.get(room);
  }

  constructor(seq = 0, floor = seq) {
    this.seq = seq;
    this.floor = floor;
  }

  /** The last offset handed out when the latest heartbeat ping was sent, until its pong. */
  #pinged = -1;

  /** A heartbeat ping is being sent: everything written so far goes before it. */
  pinged(): void {
    this.#pinged = this.seq;
  }

  /** Its pong came: the client has had everything written before the ping (one ordered stream), so
   * the log lets those entries go; an offset before them is no longer its client's. */
  ponged(): void {
    const upTo = this.#pinged;
    this.#pinged = -1;
    if (upTo <= this.floor) return;
    const flat = this.#flat ?? [];
    while (this.#start < flat.length && (flat[this.#start] as number) <= upTo) this.#dropOldest();
    this.#compact();
    this.floor = upTo;
  }

  /** Lets the oldest kept entry go; returns its offset. */
  #dropOldest(): number {
    const flat = this.#flat as (number | StoredMessage | unknown[])[];
    this.#bytes -= flat[this.#start + 2] as number;
    this.#start += 3;
    return flat[this.#start - 3] as number;
  }

  /** Cuts dropped entries off once they are as many as the kept ones (the log goes once empty). */
  #compact(): void {
    const flat = this.#flat;
    if (!flat || this.#start === 0) return;
    if (this.#start === flat.length) this.#flat = undefined;
    else if (this.#start * 2 >= flat.length) flat.splice(0, this.#start);
    else return;
    this.#start = 0;
  }

  /** An offset for an event that is not logged (a join's answer, an error). */
  stamp(): string {
    return String(++this.seq);
  }

  /** An offset for an event worth replaying: a message, or another event's arguments. */
  note(message: StoredMessage | undefined, args: () => unknown[], bytes: number): string {
    const seq = ++this.seq;
    const flat = this.#flat ??= [];
    if (message) {
      flat.push(seq, message, 0);
      (this.#written ??= new Map()).set(message.room, { epoch: message.epoch, offset: message.offset });
    } else {
      flat.push(seq, args(), bytes);
      this.#bytes += bytes;
    }
    while ((flat.length - this.#start) / 3 > LOG_ENTRIES || this.#bytes > LOG_BYTES) this.floor = this.#dropOldest();
    this.#compact();
    return String(seq);
  }

  get entries(): readonly Entry[] {
    const flat = this.#flat ?? [];
    const entries: Entry[] = [];
    for (let i = this.#start; i < flat.length; i += 3) {
      const seq = flat[i] as number;
      const payload = flat[i + 1] as StoredMessage | unknown[];
      entries.push(
        Array.isArray(payload) ? { seq, args: payload, bytes: flat[i + 2] as number } : { seq, message: payload },
      );
    }
    return entries;
  }
}

/** A dropped session as parked: `log` entries are `[seq, room, epoch, offset]` for messages and
 * `[seq, args]` for other events. */
export interface Parked {
  v: 1;
  sid: string;
  user: User;
  /** When it was parked (ms). */
  at: number;
  seq: number;
  floor: number;
  rooms: [room: string, epoch: string, offset: number][];
  log: ([number, string, string, number] | [number, unknown[]])[];
}

/** What a recovered socket starts from: its id and user, what it missed (messages and other
 * events' arguments, in order), and each room's position after them. */
export interface Restored {
  sid: string;
  user: User;
  replay: (StoredMessage | unknown[])[];
  rooms: { room: string; since: Position }[];
  /** The offset the client had, and the last one handed out: the new log goes on from them. */
  offset: number;
  seq: number;
}

const key = (pid: string) => `sio:${pid}`;

/** An open socket's Engine.IO session, as far as recovery ends it. */
export interface Droppable {
  destroy(reason: string): void;
}

/** A session's shape, when it came back from the store: anything else is no session. */
function parkedShape(value: unknown): value is Parked {
  if (typeof value !== "object" || value === null) return false;
  const p = value as Partial<Parked>;
  return p.v === 1 && typeof p.sid === "string" && typeof p.at === "number" && Number.isSafeInteger(p.seq) &&
    Number.isSafeInteger(p.floor) && Array.isArray(p.rooms) && Array.isArray(p.log) &&
    typeof p.user === "object" && p.user !== null;
}

/** The sessions of one isolate's Socket.IO sockets: parked when they drop, restored when their
 * client comes back (here or anywhere else the store reaches). */
export class Sessions {
  /** Parks under way, by pid: a client that comes back at once waits for its session to be parked. */
  readonly #parking = new Map<string, Promise<void>>();
  /** Sockets still open here, by pid: a client that comes back before its old connection was seen
   * to drop takes it over. */
  readonly #live = new Map<string, { user: string; session: Droppable }>();

  constructor(
    readonly hub: Hub,
    readonly options: { ttlMs: number; now: () => number; authOn: boolean },
  ) {}

  /** `session` is ended as a transport close would end it (its session is parked) when its client
   * comes back before the drop was seen. */
  opened(pid: string, user: string, session: Droppable): void {
    this.#live.set(pid, { user, session });
  }

  /** Parks the session of a socket that dropped; `undefined`: it ended for good. */
  closed(pid: string, session: Omit<Parked, "v" | "at"> | undefined): void {
    this.#live.delete(pid);
    if (!session) return;
    const parked: Parked = { v: 1, at: this.options.now(), ...session };
    let json = JSON.stringify(parked);
    // Too big for the store: the oldest events go (a client that missed them is not recovered).
    while (new TextEncoder().encode(json).length > MAX_PARKED_BYTES && parked.log.length > 0) {
      const cut = Math.ceil(parked.log.length / 4);
      parked.floor = parked.log[cut - 1]?.[0] as number;
      parked.log = parked.log.slice(cut);
      json = JSON.stringify(parked);
    }
    if (new TextEncoder().encode(json).length > MAX_PARKED_BYTES) return;
    const parking = this.hub.park(key(pid), json, this.options.ttlMs).catch((error) => {
      console.error("roomcast: a Socket.IO session could not be kept for recovery:", String(error));
    }).finally(() => {
      if (this.#parking.get(pid) === parking) this.#parking.delete(pid);
    });
    this.#parking.set(pid, parking);
  }

  /** The session `pid` names, restored for `identity` from the client's last `offset`, or
   * undefined: the client gets a fresh session. */
  async restore(pid: string, offset: string, identity: Identity): Promise<Restored | undefined> {
    if (pid.length > 64 || !/^(0|[1-9][0-9]{0,15})$/.test(offset)) return undefined;
    const last = Number(offset);
    // Its old connection, still open here: ended now, as a drop would (by its own user only).
    const live = this.#live.get(pid);
    if (live && this.options.authOn && live.user !== identity.user.id) return undefined;
    live?.session.destroy("transport close");
    await this.#parking.get(pid);
    let json = await this.hub.unpark(key(pid));
    // Parked by another isolate or process that saw the drop a moment after the client did (up to
    // 2 s later: a loaded machine; a forged pid only makes its own client wait).
    for (const wait of [100, 300, 600, 1000]) {
      if (json !== undefined) break;
      await new Promise((resolve) => setTimeout(resolve, wait));
      json = await this.hub.unpark(key(pid));
    }
    if (json === undefined) return undefined;
    let parked: unknown;
    try {
      parked = JSON.parse(json);
    } catch {
      return undefined;
    }
    if (!parkedShape(parked)) return undefined;
    const left = parked.at + this.options.ttlMs - this.options.now();
    if (left <= 0) return undefined;
    // With auth on a session is its user's: another user's token gets a fresh one. An offset it
    // never handed out is not its client's. Either way the session waits on for its own client.
    const foreign = this.options.authOn && parked.user.id !== identity.user.id;
    if (foreign || last > parked.seq) {
      await this.hub.park(key(pid), json, left);
      return undefined;
    }
    if (last < parked.floor) return undefined;
    return await this.#replay(parked, last, identity);
  }

  async #replay(parked: Parked, last: number, identity: Identity): Promise<Restored | undefined> {
    const since = new Map<string, Position>();
    for (const [room, epoch, offset] of parked.rooms) {
      if (!roomAllowed(identity.rooms, room)) return undefined;
      since.set(room, { epoch, offset });
    }
    const missed = parked.log.filter((entry) => entry[0] > last);
    // A room's first missed message: the client's position there is the one before it.
    const placed = new Set<string>();
    for (const entry of missed) {
      if (entry.length !== 4) continue;
      const [, room, epoch, offset] = entry;
      if (!since.has(room) || placed.has(room)) continue;
      placed.add(room);
      since.set(room, { epoch, offset: offset - 1 });
    }
    const pages = new Map<string, StoredMessage[]>();
    const rooms: Restored["rooms"] = [];
    for (const [room, position] of since) {
      const recovery = await this.hub.recover(room, position);
      if (!recovery.recovered) return undefined;
      pages.set(room, [...recovery.messages]);
      rooms.push({ room, since: { epoch: recovery.epoch, offset: recovery.offset } });
    }
    // The missed events in the order they were written; each message with those of its room before
    // it (stored there while this socket's own publishes were acked to it), then what was stored in
    // each room after the drop.
    const replay: Restored["replay"] = [];
    for (const entry of missed) {
      if (entry.length === 2) {
        replay.push(entry[1]);
        continue;
      }
      const page = pages.get(entry[1]);
      while (page && page.length > 0 && (page[0] as StoredMessage).offset <= entry[3]) {
        replay.push(page.shift() as StoredMessage);
      }
    }
    // Rooms' remaining messages merged by time, each room's in its own order.
    const heads = [...pages.values()].filter((page) => page.length > 0);
    while (heads.length > 0) {
      let first = 0;
      for (let i = 1; i < heads.length; i++) {
        if ((heads[i]?.[0] as StoredMessage).ts < (heads[first]?.[0] as StoredMessage).ts) first = i;
      }
      const page = heads[first] as StoredMessage[];
      replay.push(page.shift() as StoredMessage);
      if (page.length === 0) heads.splice(first, 1);
    }
    return { sid: parked.sid, user: parked.user, replay, rooms, offset: last, seq: parked.seq };
  }
}
