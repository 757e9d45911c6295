// @ts-check
// @ts-self-types="./roomcast.d.ts"
/**
 * roomcast browser client: one `RoomcastClient` per user session speaks the JSON protocol of
 * `/ws` (docs: PROTOCOL.md). It owns the socket, reconnects with backoff after any drop,
 * rejoins every room with `since` = the last position it saw so the server replays exactly what
 * was missed, never dispatches the same `(room, epoch, offset)` twice, answers heartbeats and
 * detects a dead server. Works in browsers, Deno and Node 22 (pass `url` where there is no
 * `location`; on Node 20, also `WebSocketImpl`, e.g. the `ws` package's `WebSocket`). Its types:
 * roomcast.d.ts, made from this file by `deno task client:types`.
 *
 * @example
 * const client = new RoomcastClient({ name: "Ann" });
 * client.addEventListener("message", (e) => console.log(e.detail.data));
 * client.connect();
 * await client.join("lobby");
 * await client.publish("lobby", { text: "hi" });
 * @module
 */

/**
 * The frames the server sends (docs/PROTOCOL.md), as this module's own typedefs so the file works
 * alone; tests/client_types_test.ts checks each against lib/protocol.ts, the one source.
 * `ErrorFrame.code` is any string here, so a newer server's code is not a type error.
 *
 * @typedef {{ id: string, name: string, info?: unknown }} User
 * @typedef {{ id: string, name: string, connections: number, info?: unknown }} Member
 * @typedef {{ epoch: string, offset: number }} Position
 * @typedef {"idle" | "connecting" | "open" | "reconnecting" | "closed"} ClientState
 * @typedef {{ type: "welcome", connection: string, user: User, heartbeat: number, node: string, guest?: string }} WelcomeFrame
 * @typedef {{ type: "joined", room: string, epoch: string, offset: number, recovered: boolean,
 *   members: Member[], ref?: string | number }} JoinedFrame
 * @typedef {{ type: "left", room: string, ref?: string | number }} LeftFrame
 * @typedef {{ type: "message", room: string, id: string, epoch: string, offset: number, from: User,
 *   data: unknown, ts: number }} MessageFrame
 * @typedef {{ type: "ack", id: string, ref?: string | number, room?: string, offset?: number,
 *   epoch?: string, delivered?: number, data?: unknown, stored?: false }} AckFrame
 * @typedef {{ type: "direct", id: string, from: User, data: unknown, ts: number }} DirectFrame
 * @typedef {{ type: "signal", room: string, from: User, event: string, data: unknown }} SignalFrame
 * @typedef {{ type: "history", room: string, epoch: string, messages: MessageFrame[], ref?: string | number }} HistoryFrame
 * @typedef {{ type: "presence", room: string, members: Member[], ref?: string | number }} PresenceFrame
 * @typedef {{ type: "member", room: string, event: "join" | "leave", user: User }} MemberFrame
 * @typedef {{ type: "broadcast", id: string, data: unknown, ts: number }} BroadcastFrame
 * @typedef {{ type: "ping" }} PingFrame
 * @typedef {{ type: "pong", ref?: string | number }} PongFrame
 * @typedef {{ type: "error", code: string, message: string, backendCode?: number, ref?: string | number }} ErrorFrame
 *
 * What the `ack` and `error` events carry besides the frame: a publish's ack has the data sent and
 * who sent it (so a page can draw its own message); an error the client made itself names its room.
 * @typedef {AckFrame & { data?: unknown, from?: User | null }} AckDetail
 * @typedef {ErrorFrame & { room?: string }} ErrorDetail
 *
 * @typedef {object} RoomcastOptions
 * @property {string} [url] WebSocket URL; default: `/ws` on the page's origin (ws: or wss:).
 * @property {string} [name] Display name, sent as `?name=`.
 * @property {string | (() => string | Promise<string>)} [token] JWT sent as `?token=`; a function is
 *   called before every (re)connect, so it can refresh the token.
 * @property {string} [guest] A guest identity token from an earlier `welcome` (`client.guest`), on servers
 *   without auth: the server makes this client the same guest again (same id and name) instead of a new one.
 *   The client keeps the newest one itself across reconnects; keep it (localStorage) across page loads.
 * @property {number} [minDelay] First reconnect delay in ms. Default 500.
 * @property {number} [maxDelay] Largest reconnect delay in ms. Default 10000.
 * @property {number} [requestTimeout] Ms before a request without a reply rejects. Default 10000.
 * @property {number} [connectTimeout] Ms a connection may take to deliver its `welcome`. Default 15000.
 * @property {number} [probeAfter] Ms of silence from the server after which the client pings it. Default 5000.
 * @property {number} [probeTimeout] Ms the server has to answer anything (a ping, a request) before the connection
 *   counts as dead and the client reconnects. Default 4000: a dead network is noticed within 9 s, and within 4 s of
 *   a publish. In browsers the `offline` event drops the connection at once, and `online` reconnects at once.
 * @property {typeof WebSocket} [WebSocketImpl] Default `globalThis.WebSocket`.
 * @property {boolean} [batch] Batched mode (`/ws?batch=1`): the server coalesces frames into one WebSocket message, one per line. Default false.
 */

const DEFAULT_HEARTBEAT = 25_000;
/** Margin over two heartbeat intervals before the server counts as dead. */
const LIVENESS_SLACK = 5_000;
const OPEN = 1;
/** Close code reported when the client itself gives up on a silent or stuck socket. */
const ABNORMAL = 1006;
const POLICY = 1008;
/** The app ended this user's connections: not to come back by itself. */
const TERMINATED = 4009;

/** A failed request: `code` is a protocol error code, or `disconnected`, `timeout`, `closed`. */
export class RoomcastError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {ErrorFrame} [frame] The server's error frame, when there was one.
   */
  constructor(code, message, frame) {
    super(message);
    this.name = "RoomcastError";
    /** @type {string} */
    this.code = code;
    /** @type {ErrorFrame | undefined} */
    this.frame = frame;
  }
}

/**
 * @typedef {object} RoomEntry
 * @property {Position | null} position Last position seen (joined, message, ack); never lowered within an epoch.
 * @property {JoinedFrame | null} joined The `joined` of the current connection, null until then.
 * @property {{ resolve: (f: JoinedFrame) => void, reject: (e: Error) => void }[]} waiters `join()` calls waiting.
 * @property {number} [replayUntil] While a recovered join's replay is arriving: the offset it ends at.
 * @property {MessageFrame[]} [replayed] The messages of that replay, to check unconfirmed publishes against.
 */

/**
 * A publish not acked yet: waiting to be sent (not connected, or the room not joined yet), sent, or
 * unconfirmed (sent on a connection that dropped before its ack: it may or may not be stored).
 * @typedef {object} Outgoing
 * @property {string} room
 * @property {unknown} data
 * @property {string} key Its idempotency key: a resend with it is stored once.
 * @property {"waiting" | "sent" | "unconfirmed"} state
 * @property {string | null} user The user it was sent as (a guest is another user after a reconnect).
 * @property {(ack: AckFrame) => void} resolve
 * @property {(error: Error) => void} reject
 */

/**
 * @typedef {object} Pending
 * @property {(frame: any) => void} resolve
 * @property {(error: Error) => void} reject
 * @property {ReturnType<typeof setTimeout>} timer
 * @property {Record<string, any>} frame The request as sent.
 */

/** A publish's idempotency key: random, so no one else's publish can share it. */
function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * @param {unknown} value
 * @returns {value is Record<string, any>}
 */
function isRecord(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function defaultUrl() {
  let loc;
  try {
    loc = globalThis.location;
  } catch {
    loc = undefined; // Deno without --location throws on access.
  }
  if (!loc || !loc.host) throw new TypeError("RoomcastClient: pass `url` when there is no page location");
  return `${loc.protocol === "https:" ? "wss:" : "ws:"}//${loc.host}/ws`;
}

/** @param {string} url */
function resolveUrl(url) {
  let base;
  try {
    base = globalThis.location?.href;
  } catch {
    base = undefined;
  }
  const resolved = new URL(url, base);
  if (resolved.protocol === "http:") resolved.protocol = "ws:";
  if (resolved.protocol === "https:") resolved.protocol = "wss:";
  return resolved;
}

export class RoomcastClient extends EventTarget {
  #url;
  #name;
  #token;
  /** @type {string | null} */
  #guest = null;
  #minDelay;
  #maxDelay;
  #requestTimeout;
  #connectTimeout;
  #probeAfter;
  #probeTimeout;
  #WebSocket;
  /** The client's own liveness check: a ping after `probeAfter` of silence, or the deadline for an
   * answer (`probeTimeout`) after a ping or a request. @type {ReturnType<typeof setTimeout> | undefined} */
  #probe;
  /** A ping or request is out and nothing has come back since. */
  #awaiting = false;
  /** The browser's `offline`/`online` listeners while connected (none outside browsers). @type {(() => void) | undefined} */
  #unlisten;

  /** @type {WebSocket | null} */
  #socket = null;
  /** @type {ClientState} */
  #state = "idle";
  /** @type {User | null} */
  #user = null;
  /** @type {string | null} */
  #connectionId = null;
  #heartbeat = DEFAULT_HEARTBEAT;
  #welcomed = false;
  /** Bumped by every connect attempt and close(): stale async work checks it. */
  #generation = 0;
  #attempt = 0;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #retryTimer;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #watchdog;
  #nextRef = 0;
  /** @type {Map<number, Pending>} */
  #pending = new Map();
  /** Publishes awaiting their ack (also after a timeout), so a late ack still carries its data. */
  /** @type {Map<number, { room: string, data: unknown }>} */
  #sent = new Map();
  /** @type {Map<string, RoomEntry>} */
  #rooms = new Map();
  /** Publishes not acked yet, in the order they were made. @type {Outgoing[]} */
  #outbox = [];
  /** Batched mode: the server may send several frames in one WebSocket message, one per line. */
  #batch = false;
  /** @type {Map<string, RoomSubscription>} */
  #subscriptions = new Map();

  /** @param {RoomcastOptions} [options] */
  constructor(options = {}) {
    super();
    const {
      url,
      name,
      token,
      guest,
      minDelay = 500,
      maxDelay = 10_000,
      requestTimeout = 10_000,
      connectTimeout = 15_000,
      probeAfter = 5_000,
      probeTimeout = 4_000,
      WebSocketImpl = globalThis.WebSocket,
      batch = false,
    } = options;
    if (typeof WebSocketImpl !== "function") throw new TypeError("RoomcastClient: no WebSocket implementation");
    this.#url = url;
    this.#name = name;
    this.#token = token;
    this.#guest = guest ?? null;
    this.#minDelay = Math.max(0, minDelay);
    this.#maxDelay = Math.max(this.#minDelay, maxDelay);
    this.#requestTimeout = requestTimeout;
    this.#connectTimeout = connectTimeout;
    this.#probeAfter = probeAfter;
    this.#probeTimeout = probeTimeout;
    this.#WebSocket = WebSocketImpl;
    this.#batch = batch;
  }

  /** @returns {ClientState} */
  get state() {
    return this.#state;
  }

  /** The user of the current (or last) connection, from `welcome`. */
  get user() {
    return this.#user;
  }

  /** This guest's identity token (servers without auth), to pass as `guest` after a page load. */
  get guest() {
    return this.#guest;
  }

  /** The server's id of the current connection, or null while not open. */
  get connectionId() {
    return this.#connectionId;
  }

  /** Rooms this client is in (or joining), in join order. */
  get rooms() {
    return [...this.#rooms.keys()];
  }

  /**
   * The last position seen in a room, or null.
   * @param {string} room
   * @returns {Position | null}
   */
  position(room) {
    const position = this.#rooms.get(room)?.position;
    return position ? { ...position } : null;
  }

  // ── lifecycle ───────────────────────────────────────────────────────────────

  /** Opens the connection (no-op while connecting or open). Reconnects by itself until `close()`. */
  connect() {
    if (this.#state === "connecting" || this.#state === "open" || this.#state === "reconnecting") return;
    this.#attempt = 0;
    this.#setState("connecting");
    this.#listenNetwork();
    void this.#open();
  }

  /** In browsers: `offline` drops the connection at once (it can't be working), `online` reconnects
   * at once instead of waiting for the backoff. */
  #listenNetwork() {
    const target = /** @type {any} */ (globalThis);
    if (this.#unlisten || typeof target.addEventListener !== "function" || !("onoffline" in target)) return;
    const offline = () => {
      if (this.#socket) this.#dead("The network is offline");
    };
    const online = () => {
      if (this.#state !== "reconnecting") return;
      clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
      this.#attempt = 0;
      void this.#open();
    };
    target.addEventListener("offline", offline);
    target.addEventListener("online", online);
    this.#unlisten = () => {
      target.removeEventListener("offline", offline);
      target.removeEventListener("online", online);
    };
  }

  /** Closes the connection for good: no more reconnects; pending requests and joins reject. */
  close() {
    this.#generation++;
    this.#unlisten?.();
    this.#unlisten = undefined;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const socket = this.#socket;
    this.#detach();
    if (socket) {
      try {
        socket.close(1000, "Client closed");
      } catch {
        // Already closing.
      }
    }
    this.#failPending("disconnected", "Connection closed");
    for (const item of this.#outbox.splice(0)) item.reject(new RoomcastError("closed", "Client closed"));
    for (const entry of this.#rooms.values()) {
      entry.joined = null;
      this.#rejectWaiters(entry, new RoomcastError("closed", "Client closed"));
    }
    if (this.#state !== "closed") this.#setState("closed");
  }

  async #open() {
    const generation = ++this.#generation;
    let url;
    try {
      url = resolveUrl(this.#url ?? defaultUrl());
      if (this.#name !== undefined && this.#name !== "") url.searchParams.set("name", this.#name);
      if (this.#batch) url.searchParams.set("batch", "1");
      const token = typeof this.#token === "function" ? await this.#token() : this.#token;
      if (token) url.searchParams.set("token", token);
      // A guest's identity: the token it has, or an empty one to be given one.
      else url.searchParams.set("guest", this.#guest ?? "");
    } catch (error) {
      if (generation !== this.#generation) return;
      const reason = error instanceof Error ? error.message : String(error);
      this.#lost(ABNORMAL, reason);
      return;
    }
    if (generation !== this.#generation) return;
    let socket;
    try {
      socket = new this.#WebSocket(url.href);
    } catch (error) {
      this.#lost(ABNORMAL, error instanceof Error ? error.message : String(error));
      return;
    }
    this.#socket = socket;
    this.#welcomed = false;
    socket.onopen = () => {
      if (this.#socket === socket) this.#arm();
    };
    socket.onmessage = (event) => {
      if (this.#socket !== socket) return;
      this.#arm();
      if (typeof event.data !== "string") return;
      if (this.#batch && event.data.includes("\n")) {
        for (const line of event.data.split("\n")) if (line) this.#receive(line);
      } else {
        this.#receive(event.data);
      }
    };
    socket.onclose = (event) => {
      if (this.#socket === socket) this.#lost(event.code || ABNORMAL, event.reason);
    };
    socket.onerror = () => {
      // A close event follows.
    };
    this.#arm();
  }

  /** Forgets the socket: handlers off, watchdog off. */
  #detach() {
    clearTimeout(this.#watchdog);
    this.#watchdog = undefined;
    clearTimeout(this.#probe);
    this.#probe = undefined;
    this.#awaiting = false;
    const socket = this.#socket;
    this.#socket = null;
    this.#welcomed = false;
    this.#connectionId = null;
    if (!socket) return;
    socket.onopen = null;
    socket.onmessage = null;
    socket.onclose = null;
    socket.onerror = null;
  }

  /** (Re)starts the dead-connection timer: a welcome is due within connectTimeout, then any frame within 2 heartbeats + slack. */
  #arm() {
    // Something came (or the socket just opened): the server is there; ask again after a silence.
    clearTimeout(this.#probe);
    this.#awaiting = false;
    this.#probe = this.#welcomed && this.#probeAfter > 0 ? setTimeout(() => this.#ping(), this.#probeAfter) : undefined;
    clearTimeout(this.#watchdog);
    const ms = this.#welcomed ? this.#heartbeat * 2 + LIVENESS_SLACK : this.#connectTimeout;
    this.#watchdog = setTimeout(() => {
      const socket = this.#socket;
      if (!socket) return;
      const reason = this.#welcomed ? "Server stopped responding" : "Connection timed out";
      this.#detach();
      try {
        socket.close(4000, "No heartbeat");
      } catch {
        // Nothing to close.
      }
      this.#lost(ABNORMAL, reason);
    }, ms);
  }

  /** A silence: ping the server, which answers `pong` (or anything else first). */
  #ping() {
    if (this.#send({ type: "ping" })) this.#expectReply();
  }

  /** Something was asked of the server: it must answer something within `probeTimeout`. */
  #expectReply() {
    if (this.#awaiting || this.#probeTimeout <= 0 || !this.#welcomed) return;
    this.#awaiting = true;
    clearTimeout(this.#probe);
    this.#probe = setTimeout(() => this.#dead("The server stopped answering"), this.#probeTimeout);
  }

  /**
   * The connection can't be working (no answer, the network gone): drop it and reconnect.
   * @param {string} reason
   */
  #dead(reason) {
    const socket = this.#socket;
    this.#detach();
    try {
      socket?.close(4000, "No answer");
    } catch {
      // Nothing to close.
    }
    this.#lost(ABNORMAL, reason);
  }

  /**
   * The socket is gone (closed, failed or given up on): fail requests, then reconnect unless
   * the close was a policy refusal (1008) or `close()` was called. A token that expired is no
   * refusal where `token` is a function: it is asked for a fresh one on the reconnect.
   * @param {number} code
   * @param {string} reason
   */
  #lost(code, reason) {
    this.#detach();
    this.#failPending("disconnected", reason || "Connection lost");
    this.#sent.clear();
    for (const entry of this.#rooms.values()) entry.joined = null;
    if (this.#state === "closed") return;
    const refreshable = code === POLICY && reason === "Token expired" && typeof this.#token === "function";
    if ((code === POLICY || code === TERMINATED) && !refreshable) {
      this.#generation++;
      const error = new RoomcastError("closed", reason || "Connection refused by policy");
      for (const entry of this.#rooms.values()) this.#rejectWaiters(entry, error);
      this.#setState("closed", { code, reason });
      return;
    }
    const base = Math.min(this.#maxDelay, this.#minDelay * 2 ** this.#attempt);
    const delay = Math.round(Math.max(this.#minDelay, base / 2 + Math.random() * (base / 2)));
    this.#attempt++;
    this.#setState("reconnecting", { code, reason, attempt: this.#attempt, delay }, true);
    clearTimeout(this.#retryTimer);
    const generation = this.#generation;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (generation === this.#generation && this.#state === "reconnecting") void this.#open();
    }, delay);
  }

  /**
   * @param {ClientState} state
   * @param {Record<string, unknown>} [extra]
   * @param {boolean} [always] Dispatch even when the state did not change.
   */
  #setState(state, extra = {}, always = false) {
    const changed = this.#state !== state;
    this.#state = state;
    if (changed || always) this.#emit("state", { state, ...extra });
  }

  // ── sending ─────────────────────────────────────────────────────────────────

  /** @param {Record<string, unknown>} frame */
  #send(frame) {
    const socket = this.#socket;
    if (!socket || socket.readyState !== OPEN) return false;
    socket.send(JSON.stringify(frame));
    return true;
  }

  /**
   * Sends a request with a fresh `ref`; settles with the reply carrying that `ref`.
   * @param {Record<string, unknown>} frame
   * @returns {Promise<any>}
   */
  #request(frame) {
    if (this.#state !== "open" || !this.#socket) {
      return Promise.reject(new RoomcastError("disconnected", "Not connected"));
    }
    const ref = ++this.#nextRef;
    const sent = { ...frame, ref };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(ref);
        reject(new RoomcastError("timeout", `No reply to ${frame.type} within ${this.#requestTimeout} ms`));
      }, this.#requestTimeout);
      this.#pending.set(ref, { resolve, reject, timer, frame: sent });
      if (frame.type === "publish") this.#sent.set(ref, { room: String(frame.room), data: frame.data });
      this.#expectReply();
      this.#send(sent);
    });
  }

  /** @param {unknown} ref */
  #take(ref) {
    if (typeof ref !== "number") return undefined;
    const pending = this.#pending.get(ref);
    if (!pending) return undefined;
    this.#pending.delete(ref);
    clearTimeout(pending.timer);
    return pending;
  }

  /**
   * @param {string} code
   * @param {string} message
   */
  #failPending(code, message) {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) {
      clearTimeout(p.timer);
      p.reject(new RoomcastError(code, message));
    }
  }

  /**
   * @param {RoomEntry} entry
   * @param {Error} error
   */
  #rejectWaiters(entry, error) {
    const waiters = entry.waiters;
    entry.waiters = [];
    for (const w of waiters) w.reject(error);
  }

  // ── rooms ───────────────────────────────────────────────────────────────────

  /**
   * Joins a room (remembered: rejoined after every reconnect). Resolves with the `joined` frame;
   * before the connection is open the join waits for it.
   * @param {string} room
   * @returns {Promise<JoinedFrame>}
   */
  join(room) {
    if (this.#state === "closed") return Promise.reject(new RoomcastError("closed", "Client closed"));
    let entry = this.#rooms.get(room);
    if (entry?.joined && this.#state === "open") return Promise.resolve(entry.joined);
    const isNew = !entry;
    entry ??= { position: null, joined: null, waiters: [] };
    this.#rooms.set(room, entry);
    const target = entry;
    const promise = new Promise((resolve, reject) => target.waiters.push({ resolve, reject }));
    if (isNew && this.#state === "open") this.#sendJoin(room, entry);
    return promise;
  }

  /**
   * @param {string} room
   * @param {RoomEntry} entry
   */
  #sendJoin(room, entry) {
    /** @type {Record<string, unknown>} */
    const frame = { type: "join", room };
    if (entry.position) frame.since = { ...entry.position };
    this.#request(frame).catch((error) => {
      if (this.#rooms.get(room) !== entry) return;
      const code = error instanceof RoomcastError ? error.code : "internal";
      if (code === "disconnected") return; // The next connection rejoins.
      if (code !== "timeout") this.#rooms.delete(room); // The server refused: forget the room.
      const hadWaiters = entry.waiters.length > 0;
      this.#rejectWaiters(entry, error);
      if (!hadWaiters) {
        this.#emit("error", { type: "error", code, message: error.message, room });
      }
    });
  }

  /**
   * Leaves a room and forgets its position. Resolves with the `left` frame (or null when not connected).
   * @param {string} room
   * @returns {Promise<LeftFrame | null>}
   */
  leave(room) {
    const entry = this.#rooms.get(room);
    if (!entry) return Promise.resolve(null);
    this.#rooms.delete(room);
    this.#rejectWaiters(entry, new RoomcastError("left", `Left room ${room}`));
    if (this.#state !== "open") return Promise.resolve(null);
    return this.#request({ type: "leave", room }).catch((error) => {
      if (error instanceof RoomcastError && (error.code === "disconnected" || error.code === "not_joined")) return null;
      throw error;
    });
  }

  /**
   * Publishes to a joined room. Resolves with the `ack` ({id, offset, epoch, room}); the
   * publisher gets no `message` frame for its own message, the `ack` event stands in for it.
   * While reconnecting, or when the connection drops before the ack, the publish is kept and sent
   * once the room is joined again (with an idempotency key: stored once); it rejects on a server
   * error, on `close()` (`closed`), or for a guest whose drop left no replay to check
   * (`unconfirmed`).
   * @param {string} room
   * @param {unknown} data
   * @returns {Promise<AckFrame>}
   */
  publish(room, data) {
    if (this.#state === "idle" || this.#state === "closed") {
      return Promise.reject(new RoomcastError("disconnected", "Not connected"));
    }
    return new Promise((resolve, reject) => {
      this.#outbox.push({ room, data, key: newKey(), state: "waiting", user: null, resolve, reject });
      this.#flushOutbox();
    });
  }

  /** Sends the publishes that wait, in order, each once its room is joined on this connection (and
   * its replay is in). A publish whose connection dropped before its ack is sent again with the
   * same key, which the server stores once; a guest is another user after a reconnect, so for it
   * the replay is checked first. */
  #flushOutbox() {
    if (this.#state !== "open") return;
    for (const item of this.#outbox) {
      if (item.state !== "waiting") continue;
      const entry = this.#rooms.get(item.room);
      if (entry && (!entry.joined || entry.replayUntil)) continue;
      item.state = "sent";
      item.user = this.#user?.id ?? null;
      this.#request({ type: "publish", room: item.room, data: item.data, key: item.key }).then(
        (ack) => this.#settle(item, ack),
        (error) => {
          if (error instanceof RoomcastError && error.code === "disconnected" && this.#state !== "closed") {
            item.state = "unconfirmed";
          } else this.#settle(item, undefined, error);
        },
      );
    }
  }

  /**
   * @param {Outgoing} item
   * @param {AckFrame} [ack]
   * @param {Error} [error]
   */
  #settle(item, ack, error) {
    const at = this.#outbox.indexOf(item);
    if (at >= 0) this.#outbox.splice(at, 1);
    if (ack) item.resolve(ack);
    else item.reject(error ?? new RoomcastError("internal", "Publish failed"));
  }

  /**
   * A room is joined again: its unconfirmed publishes are sent again (same user: the key makes it
   * once), or, for a guest that is another user now, found in the replay (stored) or sent again
   * (not stored); without a replay to look in, a guest's is reported as unconfirmed.
   * @param {string} room
   * @param {MessageFrame[] | null} replayed
   */
  #recheck(room, replayed) {
    const claimed = new Set();
    for (const item of [...this.#outbox]) {
      if (item.room !== room || item.state !== "unconfirmed") continue;
      if (item.user === (this.#user?.id ?? null)) {
        item.state = "waiting";
        continue;
      }
      const json = JSON.stringify(item.data);
      const found = replayed?.find((m) =>
        !claimed.has(m.offset) && m.from?.id === item.user && JSON.stringify(m.data) === json
      );
      if (found) {
        claimed.add(found.offset);
        this.#settle(item, { type: "ack", id: found.id, room, offset: found.offset, epoch: found.epoch });
      } else if (replayed) item.state = "waiting";
      else {
        this.#settle(
          item,
          undefined,
          new RoomcastError(
            "unconfirmed",
            "The connection dropped while sending: the message may not have been stored",
          ),
        );
      }
    }
  }

  /**
   * Sends an ephemeral room event (typing, cursor). Fire and forget; dropped when not open.
   * @param {string} room
   * @param {string} event
   * @param {unknown} [data]
   * @returns {boolean} Whether it was sent.
   */
  signal(room, event, data = null) {
    if (this.#state !== "open") return false;
    return this.#send({ type: "signal", room, event, data });
  }

  /**
   * Pushes to every connection of a user. Resolves with the ack `{id}` (whether the user is online
   * is not told: only a backend's `POST /api/users/:user/messages` answers `delivered`).
   * @param {string} to User id.
   * @param {unknown} data
   * @returns {Promise<AckFrame>}
   */
  direct(to, data) {
    return this.#request({ type: "direct", to, data });
  }

  /**
   * A page of a room's history, oldest first.
   * @param {string} room
   * @param {{ before?: number, after?: number, limit?: number }} [options]
   * @returns {Promise<HistoryFrame>}
   */
  history(room, options = {}) {
    /** @type {Record<string, unknown>} */
    const frame = { type: "history", room };
    if (options.before !== undefined) frame.before = options.before;
    if (options.after !== undefined) frame.after = options.after;
    if (options.limit !== undefined) frame.limit = options.limit;
    return this.#request(frame);
  }

  /**
   * Who is in a room.
   * @param {string} room
   * @returns {Promise<PresenceFrame>}
   */
  presence(room) {
    return this.#request({ type: "presence", room });
  }

  /**
   * One room as an object: joins it (with the last position seen, so a rejoin recovers), and hands
   * back a `RoomSubscription` with the room's own events, position and requests. The same object
   * for the same room until it is left.
   * @param {string} room
   * @returns {RoomSubscription}
   */
  subscribe(room) {
    let subscription = this.#subscriptions.get(room);
    if (!subscription) {
      subscription = new RoomSubscription(this, room, () => this.#subscriptions.delete(room));
      this.#subscriptions.set(room, subscription);
    }
    return subscription;
  }

  // ── receiving ───────────────────────────────────────────────────────────────

  /** @param {string} text */
  #receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (!isRecord(frame) || typeof frame.type !== "string") return;
    this.#emit("frame", frame);
    switch (frame.type) {
      case "welcome":
        return this.#onWelcome(frame);
      case "ping":
        this.#send({ type: "pong" });
        return;
      case "joined":
        return this.#onJoined(frame);
      case "message":
        return this.#onMessage(frame);
      case "ack":
        return this.#onAck(frame);
      case "error": {
        const pending = this.#take(frame.ref);
        if (pending) {
          pending.reject(
            new RoomcastError(String(frame.code), String(frame.message), /** @type {ErrorFrame} */ (frame)),
          );
        } else this.#emit("error", frame);
        return;
      }
      case "presence":
        this.#take(frame.ref)?.resolve(frame);
        this.#emit("presence", frame);
        return;
      case "left":
      case "history":
      case "pong":
        this.#take(frame.ref)?.resolve(frame);
        return;
      case "member":
      case "signal":
      case "direct":
      case "broadcast":
        this.#emit(frame.type, frame);
        return;
    }
  }

  /** @param {any} frame */
  #onWelcome(frame) {
    this.#welcomed = true;
    this.#attempt = 0;
    this.#user = isRecord(frame.user) ? { id: String(frame.user.id), name: String(frame.user.name) } : null;
    this.#connectionId = typeof frame.connection === "string" ? frame.connection : null;
    if (typeof frame.heartbeat === "number" && frame.heartbeat > 0) this.#heartbeat = frame.heartbeat;
    if (typeof frame.guest === "string") this.#guest = frame.guest;
    this.#arm();
    this.#state = "open";
    for (const [room, entry] of this.#rooms) this.#sendJoin(room, entry);
    this.#emit("welcome", frame);
    this.#emit("state", { state: "open" });
  }

  /** @param {any} frame */
  #onJoined(frame) {
    const pending = this.#take(frame.ref);
    const entry = this.#rooms.get(frame.room);
    if (!entry) {
      pending?.resolve(frame);
      return;
    }
    const had = entry.position;
    let reset = false;
    if (frame.ref === undefined) {
      // Unsolicited: the room's history was reset on the server.
      entry.position = { epoch: frame.epoch, offset: frame.offset };
      reset = true;
    } else if (frame.recovered && had && had.epoch === frame.epoch) {
      // Recovered: the missed messages follow and move the position up; jumping to frame.offset would drop them.
    } else {
      // A fresh join, or one the server could not recover (the gap can't be filled).
      reset = had !== null && !frame.recovered;
      entry.position = { epoch: frame.epoch, offset: frame.offset };
    }
    entry.joined = frame;
    // A recovered join's replay runs up to frame.offset: unconfirmed publishes are checked once it is in.
    const replaying = frame.ref !== undefined && frame.recovered && had && had.epoch === frame.epoch &&
      had.offset < frame.offset;
    entry.replayUntil = replaying ? frame.offset : 0;
    entry.replayed = [];
    if (!replaying) {
      this.#recheck(frame.room, frame.recovered ? [] : null);
      queueMicrotask(() => this.#flushOutbox());
    }
    pending?.resolve(frame);
    const waiters = entry.waiters;
    entry.waiters = [];
    for (const w of waiters) w.resolve(frame);
    this.#emit("joined", frame);
    if (reset) this.#emit("reset", { room: frame.room, epoch: frame.epoch, offset: frame.offset });
  }

  /** @param {any} frame */
  #onMessage(frame) {
    const entry = this.#rooms.get(frame.room);
    if (!entry || typeof frame.offset !== "number" || typeof frame.epoch !== "string") return;
    const position = entry.position;
    if (position && position.epoch === frame.epoch && frame.offset <= position.offset) return;
    entry.position = { epoch: frame.epoch, offset: frame.offset };
    if (position && position.epoch !== frame.epoch) {
      this.#emit("reset", { room: frame.room, epoch: frame.epoch, offset: frame.offset });
    }
    this.#emit("message", frame);
    if (entry.replayUntil) {
      entry.replayed?.push(frame);
      if (frame.offset >= entry.replayUntil) {
        entry.replayUntil = 0;
        this.#recheck(frame.room, entry.replayed ?? []);
        entry.replayed = [];
        this.#flushOutbox();
      }
    }
  }

  /** @param {any} frame */
  #onAck(frame) {
    const pending = this.#take(frame.ref);
    const sent = typeof frame.ref === "number" ? this.#sent.get(frame.ref) : undefined;
    if (sent) this.#sent.delete(frame.ref);
    let detail = frame;
    if (typeof frame.room === "string" && typeof frame.offset === "number" && typeof frame.epoch === "string") {
      const entry = this.#rooms.get(frame.room);
      const position = entry?.position;
      if (entry) {
        if (!position || position.epoch !== frame.epoch || frame.offset > position.offset) {
          entry.position = { epoch: frame.epoch, offset: frame.offset };
        }
        if (position && position.epoch !== frame.epoch) {
          this.#emit("reset", { room: frame.room, epoch: frame.epoch, offset: frame.offset });
        }
      }
      // The data stored: the app's backend's where it replaced the sent one (the ack carries it then).
      if (sent) detail = { ...frame, data: "data" in frame ? frame.data : sent.data, from: this.#user };
    }
    pending?.resolve(frame);
    this.#emit("ack", detail);
  }

  /**
   * @param {string} type
   * @param {unknown} detail
   */
  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/** Events about one room, as a `RoomSubscription` re-dispatches them. */
const ROOM_EVENTS = ["message", "member", "signal", "joined", "reset", "ack"];

/**
 * One room of a `RoomcastClient` (`client.subscribe(room)`): `message`, `member`, `signal`,
 * `joined`, `reset` and `ack` events of that room only (the same `detail` as the client's), its
 * position, and publish, history, presence, signal and unsubscribe for it. The client's flat calls
 * (`client.join(room)`, `client.publish(room, data)`) stay: these are the same, bound to a room.
 */
export class RoomSubscription extends EventTarget {
  #client;
  #room;
  #forget;
  /** @type {((event: Event) => void) | null} */
  #relay;
  /** @type {Promise<JoinedFrame>} */
  #joined;

  /**
   * @param {RoomcastClient} client
   * @param {string} room
   * @param {() => void} forget
   */
  constructor(client, room, forget) {
    super();
    this.#client = client;
    this.#room = room;
    this.#forget = forget;
    this.#relay = (event) => {
      const detail = /** @type {CustomEvent} */ (event).detail;
      if (detail?.room === room) this.dispatchEvent(new CustomEvent(event.type, { detail }));
    };
    for (const type of ROOM_EVENTS) client.addEventListener(type, this.#relay);
    this.#joined = client.join(room);
    this.#joined.catch(() => {});
  }

  get room() {
    return this.#room;
  }

  /** Resolves with the room's `joined` frame (the first one; a rejoin after a reconnect recovers
   * by itself). */
  get joined() {
    return this.#joined;
  }

  /** The last position seen in the room, or null. */
  get position() {
    return this.#client.position(this.#room);
  }

  /** @param {unknown} data @returns {Promise<AckFrame>} */
  publish(data) {
    return this.#client.publish(this.#room, data);
  }

  /** @param {{ before?: number, after?: number, limit?: number }} [options] */
  history(options = {}) {
    return this.#client.history(this.#room, options);
  }

  presence() {
    return this.#client.presence(this.#room);
  }

  /** @param {string} event @param {unknown} [data] */
  signal(event, data = null) {
    return this.#client.signal(this.#room, event, data);
  }

  /** Leaves the room; the object hears nothing more. */
  unsubscribe() {
    if (this.#relay) {
      for (const type of ROOM_EVENTS) this.#client.removeEventListener(type, this.#relay);
      this.#relay = null;
    }
    this.#forget();
    return this.#client.leave(this.#room);
  }
}

export default RoomcastClient;
