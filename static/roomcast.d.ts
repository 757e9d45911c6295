/** A failed request: `code` is a protocol error code, or `disconnected`, `timeout`, `closed`. */
export class RoomcastError extends Error {
    /**
     * @param {string} code
     * @param {string} message
     * @param {ErrorFrame} [frame] The server's error frame, when there was one.
     */
    constructor(code: string, message: string, frame?: ErrorFrame);
    /** @type {string} */
    code: string;
    /** @type {ErrorFrame | undefined} */
    frame: ErrorFrame | undefined;
}
export class RoomcastClient extends EventTarget {
    /** @param {RoomcastOptions} [options] */
    constructor(options?: RoomcastOptions);
    /** @returns {ClientState} */
    get state(): ClientState;
    /** The user of the current (or last) connection, from `welcome`. */
    get user(): User;
    /** This guest's identity token (servers without auth), to pass as `guest` after a page load. */
    get guest(): string;
    /** The server's id of the current connection, or null while not open. */
    get connectionId(): string;
    /** Rooms this client is in (or joining), in join order. */
    get rooms(): string[];
    /**
     * The last position seen in a room, or null.
     * @param {string} room
     * @returns {Position | null}
     */
    position(room: string): Position | null;
    /** Opens the connection (no-op while connecting or open). Reconnects by itself until `close()`. */
    connect(): void;
    /** Closes the connection for good: no more reconnects; pending requests and joins reject. */
    close(): void;
    /**
     * Joins a room (remembered: rejoined after every reconnect). Resolves with the `joined` frame;
     * before the connection is open the join waits for it.
     * @param {string} room
     * @returns {Promise<JoinedFrame>}
     */
    join(room: string): Promise<JoinedFrame>;
    /**
     * Leaves a room and forgets its position. Resolves with the `left` frame (or null when not connected).
     * @param {string} room
     * @returns {Promise<LeftFrame | null>}
     */
    leave(room: string): Promise<LeftFrame | null>;
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
    publish(room: string, data: unknown): Promise<AckFrame>;
    /**
     * Sends an ephemeral room event (typing, cursor). Fire and forget; dropped when not open.
     * @param {string} room
     * @param {string} event
     * @param {unknown} [data]
     * @returns {boolean} Whether it was sent.
     */
    signal(room: string, event: string, data?: unknown): boolean;
    /**
     * Pushes to every connection of a user. Resolves with the ack `{id}` (whether the user is online
     * is not told: only a backend's `POST /api/users/:user/messages` answers `delivered`).
     * @param {string} to User id.
     * @param {unknown} data
     * @returns {Promise<AckFrame>}
     */
    direct(to: string, data: unknown): Promise<AckFrame>;
    /**
     * A page of a room's history, oldest first.
     * @param {string} room
     * @param {{ before?: number, after?: number, limit?: number }} [options]
     * @returns {Promise<HistoryFrame>}
     */
    history(room: string, options?: {
        before?: number;
        after?: number;
        limit?: number;
    }): Promise<HistoryFrame>;
    /**
     * Who is in a room.
     * @param {string} room
     * @returns {Promise<PresenceFrame>}
     */
    presence(room: string): Promise<PresenceFrame>;
    /**
     * One room as an object: joins it (with the last position seen, so a rejoin recovers), and hands
     * back a `RoomSubscription` with the room's own events, position and requests. The same object
     * for the same room until it is left.
     * @param {string} room
     * @returns {RoomSubscription}
     */
    subscribe(room: string): RoomSubscription;
    #private;
}
/**
 * One room of a `RoomcastClient` (`client.subscribe(room)`): `message`, `member`, `signal`,
 * `joined`, `reset` and `ack` events of that room only (the same `detail` as the client's), its
 * position, and publish, history, presence, signal and unsubscribe for it. The client's flat calls
 * (`client.join(room)`, `client.publish(room, data)`) stay: these are the same, bound to a room.
 */
export class RoomSubscription extends EventTarget {
    /**
     * @param {RoomcastClient} client
     * @param {string} room
     * @param {() => void} forget
     */
    constructor(client: RoomcastClient, room: string, forget: () => void);
    get room(): string;
    /** Resolves with the room's `joined` frame (the first one; a rejoin after a reconnect recovers
     * by itself). */
    get joined(): Promise<JoinedFrame>;
    /** The last position seen in the room, or null. */
    get position(): Position;
    /** @param {unknown} data @returns {Promise<AckFrame>} */
    publish(data: unknown): Promise<AckFrame>;
    /** @param {{ before?: number, after?: number, limit?: number }} [options] */
    history(options?: {
        before?: number;
        after?: number;
        limit?: number;
    }): Promise<HistoryFrame>;
    presence(): Promise<PresenceFrame>;
    /** @param {string} event @param {unknown} [data] */
    signal(event: string, data?: unknown): boolean;
    /** Leaves the room; the object hears nothing more. */
    unsubscribe(): Promise<LeftFrame>;
    #private;
}
export default RoomcastClient;
export type RoomEntry = {
    /**
     * Last position seen (joined, message, ack); never lowered within an epoch.
     */
    position: Position | null;
    /**
     * The `joined` of the current connection, null until then.
     */
    joined: JoinedFrame | null;
    /**
     * `join()` calls waiting.
     */
    waiters: {
        resolve: (f: JoinedFrame) => void;
        reject: (e: Error) => void;
    }[];
    /**
     * While a recovered join's replay is arriving: the offset it ends at.
     */
    replayUntil?: number;
    /**
     * The messages of that replay, to check unconfirmed publishes against.
     */
    replayed?: MessageFrame[];
};
/**
 * A publish not acked yet: waiting to be sent (not connected, or the room not joined yet), sent, or
 * unconfirmed (sent on a connection that dropped before its ack: it may or may not be stored).
 */
export type Outgoing = {
    room: string;
    data: unknown;
    /**
     * Its idempotency key: a resend with it is stored once.
     */
    key: string;
    state: "waiting" | "sent" | "unconfirmed";
    /**
     * The user it was sent as (a guest is another user after a reconnect).
     */
    user: string | null;
    resolve: (ack: AckFrame) => void;
    reject: (error: Error) => void;
};
export type Pending = {
    resolve: (frame: any) => void;
    reject: (error: Error) => void;
    timer: ReturnType<typeof setTimeout>;
    /**
     * The request as sent.
     */
    frame: Record<string, any>;
};
/**
 * The frames the server sends (docs/PROTOCOL.md), as this module's own typedefs so the file works
 * alone; tests/client_types_test.ts checks each against lib/protocol.ts, the one source.
 * `ErrorFrame.code` is any string here, so a newer server's code is not a type error.
 */
export type User = {
    id: string;
    name: string;
    info?: unknown;
};
/**
 * The frames the server sends (docs/PROTOCOL.md), as this module's own typedefs so the file works
 * alone; tests/client_types_test.ts checks each against lib/protocol.ts, the one source.
 * `ErrorFrame.code` is any string here, so a newer server's code is not a type error.
 */
export type Member = {
    id: string;
    name: string;
    connections: number;
    info?: unknown;
};
/**
 * The frames the server sends (docs/PROTOCOL.md), as this module's own typedefs so the file works
 * alone; tests/client_types_test.ts checks each against lib/protocol.ts, the one source.
 * `ErrorFrame.code` is any string here, so a newer server's code is not a type error.
 */
export type Position = {
    epoch: string;
    offset: number;
};
/**
 * The frames the server sends (docs/PROTOCOL.md), as this module's own typedefs so the file works
 * alone; tests/client_types_test.ts checks each against lib/protocol.ts, the one source.
 * `ErrorFrame.code` is any string here, so a newer server's code is not a type error.
 */
export type ClientState = "idle" | "connecting" | "open" | "reconnecting" | "closed";
/**
 * The frames the server sends (docs/PROTOCOL.md), as this module's own typedefs so the file works
 * alone; tests/client_types_test.ts checks each against lib/protocol.ts, the one source.
 * `ErrorFrame.code` is any string here, so a newer server's code is not a type error.
 */
export type WelcomeFrame = {
    type: "welcome";
    connection: string;
    user: User;
    heartbeat: number;
    node: string;
    guest?: string;
};
/**
 * The frames the server sends (docs/PROTOCOL.md), as this module's own typedefs so the file works
 * alone; tests/client_types_test.ts checks each against lib/protocol.ts, the one source.
 * `ErrorFrame.code` is any string here, so a newer server's code is not a type error.
 */
export type JoinedFrame = {
    type: "joined";
    room: string;
    epoch: string;
    offset: number;
    recovered: boolean;
    members: Member[];
    ref?: string | number;
};
/**
 * The frames the server sends (docs/PROTOCOL.md), as this module's own typedefs so the file works
 * alone; tests/client_types_test.ts checks each against lib/protocol.ts, the one source.
 * `ErrorFrame.code` is any string here, so a newer server's code is not a type error.
 */
export type LeftFrame = {
    type: "left";
    room: string;
    ref?: string | number;
};
/**
 * The frames the server sends (docs/PROTOCOL.md), as this module's own typedefs so the file works
 * alone; tests/client_types_test.ts checks each against lib/protocol.ts, the one source.
 * `ErrorFrame.code` is any string here, so a newer server's code is not a type error.
 */
export type MessageFrame = {
    type: "message";
    room: string;
    id: string;
    epoch: string;
    offset: number;
    from: User;
    data: unknown;
    ts: number;
};
/**
 * The frames the server sends (docs/PROTOCOL.md), as this module's own typedefs so the file works
 * alone; tests/client_types_test.ts checks each against lib/protocol.ts, the one source.
 * `ErrorFrame.code` is any string here, so a newer server's code is not a type error.
 */
export type AckFrame = {
    type: "ack";
    id: string;
    ref?: string | number;
    room?: string;
    offset?: number;
    epoch?: string;
    delivered?: number;
    data?: unknown;
    stored?: false;
};
/**
 * The frames the server sends (docs/PROTOCOL.md), as this module's own typedefs so the file works
 * alone; tests/client_types_test.ts checks each against lib/protocol.ts, the one source.
 * `ErrorFrame.code` is any string here, so a newer server's code is not a type error.
 */
export type DirectFrame = {
    type: "direct";
    id: string;
    from: User;
    data: unknown;
    ts: number;
};
/**
 * The frames the server sends (docs/PROTOCOL.md), as this module's own typedefs so the file works
 * alone; tests/client_types_test.ts checks each against lib/protocol.ts, the one source.
 * `ErrorFrame.code` is any string here, so a newer server's code is not a type error.
 */
export type SignalFrame = {
    type: "signal";
    room: string;
    from: User;
    event: string;
    data: unknown;
};
/**
 * The frames the server sends (docs/PROTOCOL.md), as this module's own typedefs so the file works
 * alone; tests/client_types_test.ts checks each against lib/protocol.ts, the one source.
 * `ErrorFrame.code` is any string here, so a newer server's code is not a type error.
 */
export type HistoryFrame = {
    type: "history";
    room: string;
    epoch: string;
    messages: MessageFrame[];
    ref?: string | number;
};
/**
 * The frames the server sends (docs/PROTOCOL.md), as this module's own typedefs so the file works
 * alone; tests/client_types_test.ts checks each against lib/protocol.ts, the one source.
 * `ErrorFrame.code` is any string here, so a newer server's code is not a type error.
 */
export type PresenceFrame = {
    type: "presence";
    room: string;
    members: Member[];
    ref?: string | number;
};
/**
 * The frames the server sends (docs/PROTOCOL.md), as this module's own typedefs so the file works
 * alone; tests/client_types_test.ts checks each against lib/protocol.ts, the one source.
 * `ErrorFrame.code` is any string here, so a newer server's code is not a type error.
 */
export type MemberFrame = {
    type: "member";
    room: string;
    event: "join" | "leave";
    user: User;
};
/**
 * The frames the server sends (docs/PROTOCOL.md), as this module's own typedefs so the file works
 * alone; tests/client_types_test.ts checks each against lib/protocol.ts, the one source.
 * `ErrorFrame.code` is any string here, so a newer server's code is not a type error.
 */
export type BroadcastFrame = {
    type: "broadcast";
    id: string;
    data: unknown;
    ts: number;
};
/**
 * The frames the server sends (docs/PROTOCOL.md), as this module's own typedefs so the file works
 * alone; tests/client_types_test.ts checks each against lib/protocol.ts, the one source.
 * `ErrorFrame.code` is any string here, so a newer server's code is not a type error.
 */
export type PingFrame = {
    type: "ping";
};
/**
 * The frames the server sends (docs/PROTOCOL.md), as this module's own typedefs so the file works
 * alone; tests/client_types_test.ts checks each against lib/protocol.ts, the one source.
 * `ErrorFrame.code` is any string here, so a newer server's code is not a type error.
 */
export type PongFrame = {
    type: "pong";
    ref?: string | number;
};
/**
 * What the `ack` and `error` events carry besides the frame: a publish's ack has the data sent and
 * who sent it (so a page can draw its own message); an error the client made itself names its room.
 */
export type ErrorFrame = {
    type: "error";
    code: string;
    message: string;
    backendCode?: number;
    ref?: string | number;
};
/**
 * The frames the server sends (docs/PROTOCOL.md), as this module's own typedefs so the file works
 * alone; tests/client_types_test.ts checks each against lib/protocol.ts, the one source.
 * `ErrorFrame.code` is any string here, so a newer server's code is not a type error.
 */
export type AckDetail = AckFrame & {
    data?: unknown;
    from?: User | null;
};
/**
 * The frames the server sends (docs/PROTOCOL.md), as this module's own typedefs so the file works
 * alone; tests/client_types_test.ts checks each against lib/protocol.ts, the one source.
 * `ErrorFrame.code` is any string here, so a newer server's code is not a type error.
 */
export type ErrorDetail = ErrorFrame & {
    room?: string;
};
/**
 * The frames the server sends (docs/PROTOCOL.md), as this module's own typedefs so the file works
 * alone; tests/client_types_test.ts checks each against lib/protocol.ts, the one source.
 * `ErrorFrame.code` is any string here, so a newer server's code is not a type error.
 */
export type RoomcastOptions = {
    /**
     * WebSocket URL; default: `/ws` on the page's origin (ws: or wss:).
     */
    url?: string;
    /**
     * Display name, sent as `?name=`.
     */
    name?: string;
    /**
     * JWT sent as `?token=`; a function is
     * called before every (re)connect, so it can refresh the token.
     */
    token?: string | (() => string | Promise<string>);
    /**
     * A guest identity token from an earlier `welcome` (`client.guest`), on servers
     * without auth: the server makes this client the same guest again (same id and name) instead of a new one.
     * The client keeps the newest one itself across reconnects; keep it (localStorage) across page loads.
     */
    guest?: string;
    /**
     * First reconnect delay in ms. Default 500.
     */
    minDelay?: number;
    /**
     * Largest reconnect delay in ms. Default 10000.
     */
    maxDelay?: number;
    /**
     * Ms before a request without a reply rejects. Default 10000.
     */
    requestTimeout?: number;
    /**
     * Ms a connection may take to deliver its `welcome`. Default 15000.
     */
    connectTimeout?: number;
    /**
     * Ms of silence from the server after which the client pings it. Default 5000.
     */
    probeAfter?: number;
    /**
     * Ms the server has to answer anything (a ping, a request) before the connection
     * counts as dead and the client reconnects. Default 4000: a dead network is noticed within 9 s, and within 4 s of
     * a publish. In browsers the `offline` event drops the connection at once, and `online` reconnects at once.
     */
    probeTimeout?: number;
    /**
     * Default `globalThis.WebSocket`.
     */
    WebSocketImpl?: typeof WebSocket;
    /**
     * Batched mode (`/ws?batch=1`): the server coalesces frames into one WebSocket message, one per line. Default false.
     */
    batch?: boolean;
};
