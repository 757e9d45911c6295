/**
 * One room as this isolate sees it: its local subscribers and the ordered feed of stored messages
 * (who is present, across isolates, is the engine's `Presence`). The feed keeps a cursor (the last offset handed to subscribers); a message
 * that skips ahead of it makes the room read the missing ones from the store first, so
 * subscribers see every offset once and in order whatever order the backplane brings them in.
 */
import type { Connection, Subscription } from "./connection.ts";
import { contiguous, oldestKept, recover, type Recovery, type Store } from "./engine/store.ts";
import { Outbound } from "./peer.ts";
import { CloseCode, FROM_START, type Member, type Position, type ServerFrame, type StoredMessage } from "./protocol.ts";

/** How long a gap in a room's offsets waits for the missing messages on the fast path before the
 * store is read for them. */
const GAP_WAIT_MS = 30;

export interface RoomOptions {
  store: Store;
  historyLimit: number;
  /** Messages kept in memory for recoveries (0: none). */
  recentMax: number;
  /** The room's members (as `joined` lists them), from presence. */
  members(room: string): Promise<Member[]>;
}

export class Room {
  readonly name: string;
  readonly subscribers = new Map<string, Connection>();
  /** Resolves once the cursor is known; messages that arrive earlier wait. */
  readonly ready: Promise<Position>;
  /** When the last subscriber left (ms), or Infinity while it has subscribers. */
  emptySince = Infinity;
  #backfilling: Promise<void> | undefined;
  readonly #options: RoomOptions;
  #cursor: Position | undefined;
  #pending: StoredMessage[] = [];
  #catchingUp = false;
  /** A head heard while catching up (see `headMoved`). */
  #headDuringCatchUp: Position | undefined;
  /** Set while a gap waits for its missing messages to come (see `feed`). */
  #gapTimer: ReturnType<typeof setTimeout> | undefined;
  /** The last messages delivered here, contiguous, oldest first: recoveries of recent positions
   * are served from it, sharing the message objects instead of reading the store per client. */
  #recent: StoredMessage[] = [];

  constructor(name: string, options: RoomOptions) {
    this.name = name;
    this.#options = options;
    this.ready = options.store.position(name).then((position) => {
      this.#cursor = { ...position };
      this.#feedPending();
      return position;
    });
  }

  /** Whether it keeps recent messages in memory (worth lingering for after the last subscriber). */
  get holdsRecent(): boolean {
    return this.#recent.length > 0;
  }

  /** The last position delivered to subscribers; a joiner that starts here misses nothing. */
  get cursor(): Position | undefined {
    return this.#cursor ? { ...this.#cursor } : undefined;
  }

  /** A stored message for this room, from the backplane, in whatever order it came. */
  feed(message: StoredMessage): void {
    const cursor = this.#cursor;
    if (!cursor || this.#catchingUp) {
      this.#pending.push(message);
      return;
    }
    if (message.epoch === cursor.epoch) {
      if (message.offset <= cursor.offset) return;
      if (message.offset === cursor.offset + 1) {
        cursor.offset = message.offset;
        this.#deliver(message);
        if (this.#pending.length > 0) this.#deliverPending(cursor);
        return;
      }
    }
    this.#pending.push(message);
    // A later message came first. The missing ones are usually a moment behind on the fast path
    // (another isolate published them): only if they don't come in GAP_WAIT_MS does the store
    // answer. A new epoch is read at once.
    if (this.#gapTimer === undefined) {
      const wait = message.epoch === cursor.epoch ? GAP_WAIT_MS : 0;
      this.#gapTimer = setTimeout(() => {
        this.#gapTimer = undefined;
        if (this.#pending.length > 0 && !this.#catchingUp) void this.#catchUp(cursor);
      }, wait);
    }
  }

  /** Delivers the waiting messages that now follow the cursor, in order; stops the gap's timer
   * once none wait. */
  #deliverPending(cursor: Position): void {
    const pending = this.#pending.filter((m) => m.epoch === cursor.epoch && m.offset > cursor.offset)
      .sort((a, b) => a.offset - b.offset);
    let i = 0;
    for (; i < pending.length && pending[i]?.offset === cursor.offset + 1; i++) {
      const message = pending[i] as StoredMessage;
      cursor.offset = message.offset;
      this.#deliver(message);
    }
    this.#pending = [...pending.slice(i), ...this.#pending.filter((m) => m.epoch !== cursor.epoch)];
    if (this.#pending.length === 0 && this.#gapTimer !== undefined) {
      clearTimeout(this.#gapTimer);
      this.#gapTimer = undefined;
    }
  }

  /** Stops the gap's timer: the room is being dropped or the hub closed. */
  stop(): void {
    if (this.#gapTimer !== undefined) clearTimeout(this.#gapTimer);
    this.#gapTimer = undefined;
  }

  #deliver(message: StoredMessage): void {
    this.#remember(message);
    const out = new Outbound(message);
    for (const connection of this.subscribers.values()) {
      const sub = connection.rooms.get(this.name);
      if (sub) connection.deliver(sub, message, out);
    }
  }

  /** Reads what the backplane skipped (or a new epoch) from the store and delivers it in order. */
  async #catchUp(cursor: Position): Promise<void> {
    this.#catchingUp = true;
    // Whatever arrived before the read is in the store already: the read delivers it or it is stale.
    const seen = this.#pending.length;
    const { store, historyLimit } = this.#options;
    try {
      let page = await store.read(this.name, { after: cursor.offset, limit: historyLimit });
      if (page.epoch !== cursor.epoch) {
        this.epochChanged(page.epoch);
        page = await store.read(this.name, { after: 0, limit: historyLimit });
      }
      for (const message of page.messages) {
        if (message.epoch !== cursor.epoch || message.offset <= cursor.offset) continue;
        if (message.offset !== cursor.offset + 1) this.#fellBehind();
        cursor.offset = message.offset;
        this.#deliver(message);
      }
    } catch (error) {
      // The messages stay in the store; the next arrival or a rejoin with `since` brings them.
      console.error(`roomcast: catching up room ${this.name} from the store failed:`, error);
    } finally {
      this.#catchingUp = false;
    }
    this.#pending = this.#pending.slice(seen);
    this.#feedPending();
    const head = this.#headDuringCatchUp;
    this.#headDuringCatchUp = undefined;
    if (head) this.headMoved(head);
  }

  /** Looks in the store for messages the backplane may have lost (it said so). */
  catchUpNow(): void {
    const cursor = this.#cursor;
    if (cursor && !this.#catchingUp) void this.#catchUp(cursor);
  }

  /** The store holds the room's messages up to `head`: catches up if that is past what was
   * delivered here. Heard during a catch-up (whose read may have come before it), it is looked at
   * again once that catch-up ends. */
  headMoved(head: Position): void {
    const cursor = this.#cursor;
    if (!cursor) return;
    if (this.#catchingUp) {
      this.#headDuringCatchUp = head;
      return;
    }
    if (head.epoch !== cursor.epoch || head.offset > cursor.offset) this.catchUpNow();
  }

  /** Asks the store for the room's latest position and catches up if the backplane did not bring
   * everything up to it (a dropped event, the last of a burst, would otherwise wait for the next). */
  async checkHead(): Promise<void> {
    if (!this.#cursor || this.#catchingUp) return;
    this.headMoved(await this.#options.store.position(this.name));
  }

  #feedPending(): void {
    const pending = this.#pending;
    this.#pending = [];
    for (const message of pending) this.feed(message);
  }

  #remember(message: StoredMessage): void {
    const max = this.#options.recentMax;
    if (max <= 0) return;
    // Only a contiguous run can answer recoveries: after a hole it starts again.
    const last = this.#recent.at(-1);
    if (last && (last.offset + 1 !== message.offset || last.epoch !== message.epoch)) this.#recent = [];
    this.#recent.push(message);
    if (this.#recent.length > max + 64) this.#recent.splice(0, this.#recent.length - max);
  }

  /** Makes the recent messages reach back to just after `since`, reading the store once for all
   * the clients that ask at the same time (a reconnect storm), so that they share one copy. */
  async backfill(since: Position): Promise<void> {
    for (let round = 0; round < 3; round++) {
      await this.#backfilling;
      const cursor = this.#cursor;
      if (!cursor || since.epoch !== cursor.epoch || this.#options.recentMax <= 0) return;
      const start = this.#recent[0]?.offset ?? cursor.offset + 1;
      if (since.offset + 1 >= start || since.offset + 1 < oldestKept(cursor.offset, this.#options.historyLimit)) return;
      this.#backfilling ??= this.#prepend(since.offset, start).finally(() => this.#backfilling = undefined);
    }
  }

  async #prepend(after: number, before: number): Promise<void> {
    const { store, recentMax } = this.#options;
    const limit = Math.min(before - after - 1, recentMax);
    const page = await store.read(this.name, { after: Math.max(after, before - 1 - limit), before, limit });
    const first = this.#recent[0]?.offset ?? (this.#cursor?.offset ?? 0) + 1;
    const older = page.messages.filter((m) => m.epoch === this.#cursor?.epoch && m.offset < first);
    // Only a contiguous run that ends right before what is held keeps the recent messages contiguous.
    const start = (older[0]?.offset ?? 0) - 1;
    if (older.length === 0 || start + older.length + 1 !== first || !contiguous(older, start)) return;
    this.#recent = [...older, ...this.#recent];
    if (this.#recent.length > recentMax) this.#recent = this.#recent.slice(-recentMax);
  }

  /** What a joiner that was at `since` missed, before any live message: from memory when this
   * room still holds it (messages from `minTs` on), else from the store. Without `since`, or when
   * the gap can't be filled exactly, `recovered` is false and there is nothing to replay. */
  async recover(since: Position | undefined, minTs: number): Promise<Recovery> {
    const cursor = await this.ready.then(() => this.cursor as Position);
    if (!since) return { ...cursor, recovered: false, messages: [] };
    if (since === FROM_START) since = await this.#beforeOldest(cursor);
    await this.backfill(since);
    const recent = this.recentAfter(since, minTs);
    if (recent) return { ...this.cursor as Position, recovered: true, messages: recent };
    return await recover(this.#options.store, this.name, since, this.#options.historyLimit);
  }

  /** The position just before the oldest message the store keeps (holes and trims counted), so
   * that recovering from it replays the whole kept history. */
  async #beforeOldest(cursor: Position): Promise<Position> {
    const page = await this.#options.store.read(this.name, { after: 0, limit: 1 });
    const first = page.messages[0];
    if (!first || page.epoch !== cursor.epoch) return cursor;
    return { epoch: first.epoch, offset: first.offset - 1 };
  }

  /** Every message after `since` if this room still holds them all in memory (same epoch, none
   * older than `minTs`), else undefined and the store must answer. Ends at the cursor. */
  recentAfter(since: Position, minTs: number): StoredMessage[] | undefined {
    const cursor = this.#cursor;
    if (!cursor || since.epoch !== cursor.epoch || since.offset > cursor.offset) return undefined;
    if (since.offset === cursor.offset) return [];
    // The same window as the store keeps: what it has trimmed can't be recovered from here either.
    if (since.offset + 1 < oldestKept(cursor.offset, this.#options.historyLimit)) return undefined;
    const first = this.#recent[0];
    if (!first || since.offset + 1 < first.offset) return undefined;
    const replay = this.#recent.slice(since.offset + 1 - first.offset);
    if (replay[0]?.offset !== since.offset + 1 || (replay[0]?.ts ?? 0) < minTs) return undefined;
    return replay;
  }

  /** The store dropped messages these subscribers never got: they must reconnect and recover. */
  #fellBehind(): void {
    for (const connection of this.subscribers.values()) {
      connection.close(CloseCode.slowConsumer, "Fell behind the room's retained history", "fell_behind");
    }
  }

  /** The room's history was reset (or found reset): start the new epoch and tell subscribers to
   * reload, with a `joined` listing the members; live messages of the new epoch wait meanwhile. */
  epochChanged(epoch: string): void {
    if (!this.#cursor || this.#cursor.epoch === epoch) return;
    this.#cursor.epoch = epoch;
    this.#cursor.offset = 0;
    this.#recent = [];
    const told: [Connection, Subscription][] = [];
    for (const connection of this.subscribers.values()) {
      const sub = connection.rooms.get(this.name);
      if (!sub || sub.held) continue;
      sub.epoch = epoch;
      sub.offset = 0;
      sub.held = [];
      told.push([connection, sub]);
    }
    if (told.length === 0) return;
    const tell = (members: Member[]) => {
      for (const [connection, sub] of told) {
        if (connection.rooms.get(this.name) !== sub) continue;
        connection.send({ type: "joined", room: this.name, epoch, offset: 0, recovered: false, members });
        connection.release(sub);
      }
    };
    this.#options.members(this.name).then(tell, (error) => {
      console.error(`roomcast: listing the members of ${this.name} failed:`, error);
      tell([]);
    });
  }

  /** Sends a frame to every subscriber but `except` (a connection id). */
  sendOthers(frame: ServerFrame, except: string | undefined): void {
    const out = new Outbound(frame);
    for (const connection of this.subscribers.values()) {
      if (connection.id !== except) connection.sendOut(out);
    }
  }
}
