/**
 * The dashboard's API under `/api/admin/` (docs/ADMIN.md), for the page at `/admin`: the whole
 * service's picture, whichever isolate serves it. Every isolate keeps its own figures
 * (lib/observe.ts); an isolate serving a dashboard tells the others over the backplane that it
 * watches (`hub.admin`), they send it their last 15 minutes once and a report every second while the
 * watch lasts, and it merges them (`ServiceView`). Nothing crosses isolates while nobody watches.
 * The dashboard's own streams take no admission slot and are no hub connections.
 */
import type { Hono } from "hono";
import type { ConnectionInfo } from "../lib/hub.ts";
import { type NodeReport, type Point, ServiceView, WATCH_MS } from "../lib/observe.ts";
import { ProtocolError } from "../lib/protocol.ts";
import { VERSION } from "../lib/version.ts";
import { caller, userParam } from "./api.ts";
import { SSE_HEADERS } from "./transports/sse/sse.ts";
import type { AppContext, AppDeps, AppEnv } from "./deps.ts";
import { jsonError } from "./errors.ts";

/** Dashboard streams one isolate serves at once. */
const MAX_STREAMS = 8;
/** How often a watching isolate renews its watch (the others' watch lasts WATCH_MS). */
const RENEW_MS = 3000;
/** How long after the second ends its merged point is sent (the others' reports come meanwhile). */
const TICK_DELAY_MS = 300;
/** How long a query of every isolate (a user's connections) waits for answers. */
const QUERY_MS = 500;
/** How long a room's newest offset, read from the store for the rooms table, is kept. */
const DEPTH_TTL_MS = 15_000;
const MAX_DEPTHS = 20_000;

type AdminPayload =
  | { op: "watch"; from: string }
  | { op: "report"; report: NodeReport }
  | { op: "who"; user: string; id: string; from: string };

type AdminRelay =
  | { op: "history"; points: Point[] }
  | { op: "who"; id: string; connections: ConnectionInfo[] };

export function mountAdmin(app: Hono<AppEnv>, deps: AppDeps): { close(): void } {
  const { hub, clock } = deps;
  const observer = hub.observer;
  const view = new ServiceView(clock);
  const streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const encoder = new TextEncoder();
  /** Until when this isolate serves a dashboard (a stream, or an overview lately). */
  let servingUntil = -Infinity;
  let renewedAt = -Infinity;
  const queries = new Map<string, { connections: ConnectionInfo[]; from: Set<string> }>();
  let queryIds = 0;
  const depths = new Map<string, { depth: number; at: number }>();

  const serving = () => streams.size > 0 || clock.now() < servingUntil;
  const renew = () => {
    if (clock.now() - renewedAt < RENEW_MS) return;
    renewedAt = clock.now();
    hub.admin({ op: "watch", from: hub.node } satisfies AdminPayload);
  };

  hub.onAdmin((payload) => {
    const p = payload as AdminPayload;
    if (p?.op === "watch") {
      // The first watch since none: this isolate's last 15 minutes go to the watcher once.
      if (observer.watch() || p.from === hub.node) {
        hub.relay(p.from, "admin", { op: "history", points: observer.series() } satisfies AdminRelay);
      }
    } else if (p?.op === "report") {
      if (serving()) view.report(p.report);
    } else if (p?.op === "who" && typeof p.user === "string") {
      hub.relay(p.from, "admin", { op: "who", id: p.id, connections: hub.connectionsOf(p.user) } satisfies AdminRelay);
    }
  });
  hub.onRelay("admin", (payload, node) => {
    const p = payload as AdminRelay;
    if (p?.op === "history" && Array.isArray(p.points)) view.history(node, p.points);
    else if (p?.op === "who") {
      const query = queries.get(p.id);
      if (query && !query.from.has(node)) {
        query.from.add(node);
        query.connections.push(...p.connections);
      }
    }
  });

  // Each second, on the second: this isolate's point closes; while watched, its report goes to the
  // watchers; a watcher renews its watch and, a moment later, sends its streams the merged second.
  let timer: ReturnType<typeof setTimeout> | undefined;
  let tickTimer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  const second = () => {
    if (closed) return;
    const now = clock.now();
    const t = Math.floor(now / 1000) * 1000 - 1000;
    try {
      const report = observer.tick(t, () => hub.figures());
      if (report) hub.admin({ op: "report", report } satisfies AdminPayload);
      if (serving()) {
        renew();
        if (streams.size > 0) tickTimer = setTimeout(() => send(t), TICK_DELAY_MS);
      }
    } catch (error) {
      console.error("roomcast: the dashboard's second failed:", error);
    }
    timer = setTimeout(second, 1000 - (clock.now() % 1000));
  };
  timer = setTimeout(second, 1000 - (clock.now() % 1000));

  const totals = async () => {
    const nodes = view.nodes();
    const transports: Record<string, number> = {};
    let connections = 0;
    for (const node of nodes) {
      connections += node.connections;
      for (const [name, n] of Object.entries(node.transports)) transports[name] = (transports[name] ?? 0) + n;
    }
    const rooms = await hub.rooms().then((r) => r.length, () => null);
    return { now: clock.now(), connections, transports, rooms, nodes };
  };

  const send = async (t: number) => {
    if (streams.size === 0) return;
    const tick = { ...await totals(), point: view.point(t), ...view.takeTail() };
    const bytes = encoder.encode(`event: tick\ndata: ${JSON.stringify(tick)}\n\n`);
    for (const stream of streams) {
      try {
        // A dashboard that does not read is dropped rather than buffered for.
        if ((stream.desiredSize ?? 0) < -256 * 1024) throw new Error("not reading");
        stream.enqueue(bytes);
      } catch {
        streams.delete(stream);
        try {
          stream.close();
        } catch {
          // Closed already.
        }
      }
    }
  };

  /** Starts serving a dashboard; resolves once the others' reports had a second to come, where
   * this isolate was not watching yet. */
  const watchFor = async (ms: number) => {
    const fresh = !serving();
    servingUntil = Math.max(servingUntil, clock.now() + ms);
    renew();
    if (fresh) await new Promise((resolve) => setTimeout(resolve, 1000 - (clock.now() % 1000) + TICK_DELAY_MS));
  };

  app.get("/api/admin/overview", async (c) => {
    await caller(c, deps, { users: false });
    await watchFor(WATCH_MS);
    return c.json({
      version: VERSION,
      engine: deps.engineName ?? "kv",
      ...await totals(),
      series: view.series(),
      proxy: deps.proxy?.state() ?? {},
    });
  });

  app.get("/api/admin/stream", async (c) => {
    await caller(c, deps, { users: false });
    if (streams.size >= MAX_STREAMS) {
      return jsonError(c, "unavailable", `At most ${MAX_STREAMS} dashboard streams at once`);
    }
    let mine: ReadableStreamDefaultController<Uint8Array> | undefined;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        mine = controller;
        streams.add(controller);
        controller.enqueue(encoder.encode("retry: 2000\n\n"));
      },
      cancel() {
        if (mine) streams.delete(mine);
      },
    }, { highWaterMark: 0, size: (chunk) => chunk.byteLength });
    void watchFor(0);
    return new Response(body, { headers: SSE_HEADERS });
  });

  app.get("/api/admin/rooms", async (c) => {
    await caller(c, deps, { users: false });
    await watchFor(WATCH_MS);
    const q = (c.req.query("q") ?? "").slice(0, 128).toLowerCase();
    const sort = c.req.query("sort") ?? "name";
    if (!["name", "members", "rate", "depth"].includes(sort)) {
      throw new ProtocolError("bad_request", "sort must be name, members, rate or depth");
    }
    const desc = c.req.query("dir") === "desc";
    const limit = intParam(c, "limit", 50, 1, 200);
    const offset = intParam(c, "offset", 0, 0, 1_000_000);
    const rows = (await hub.rooms())
      .filter(({ room }) => q === "" || room.toLowerCase().includes(q))
      .map(({ room, members }) => {
        const heard = view.room(room);
        const known = depths.get(room);
        const depth = heard.depth ?? (known && clock.now() - known.at < DEPTH_TTL_MS ? known.depth : null);
        return { room, members, rate: heard.rate ?? 0, depth };
      });
    const key = sort as "name" | "members" | "rate" | "depth";
    rows.sort((a, b) => {
      if (key === "name") return (a.room < b.room ? -1 : a.room > b.room ? 1 : 0) * (desc ? -1 : 1);
      const x = key === "depth" ? a.depth : a[key];
      const y = key === "depth" ? b.depth : b[key];
      // Unknown depths last, whichever the direction.
      if (x === null || y === null) return x === y ? 0 : x === null ? 1 : -1;
      return (x - y) * (desc ? -1 : 1) || (a.room < b.room ? -1 : 1);
    });
    const page = rows.slice(offset, offset + limit);
    // The page's depths not heard from a report are read from the store (newest message), kept a while.
    await Promise.all(
      page.filter((row) => row.depth === null).map(async (row) => {
        try {
          const read = await hub.history(row.room, { limit: 1 });
          row.depth = read.messages.at(-1)?.offset ?? 0;
          if (depths.size >= MAX_DEPTHS) depths.clear();
          depths.set(row.room, { depth: row.depth, at: clock.now() });
        } catch {
          // The store is away: the depth stays unknown.
        }
      }),
    );
    return c.json({ total: rows.length, rooms: page });
  });

  app.get("/api/admin/users/:user", async (c) => {
    await caller(c, deps, { users: false });
    const user = userParam(c);
    const id = `${hub.node}:${++queryIds}`;
    const query = { connections: [] as ConnectionInfo[], from: new Set<string>() };
    queries.set(id, query);
    try {
      hub.admin({ op: "who", user, id, from: hub.node } satisfies AdminPayload);
      const nodes = Math.max(1, view.nodes().length);
      const deadline = clock.now() + QUERY_MS;
      while (query.from.size < nodes && clock.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    } finally {
      queries.delete(id);
    }
    query.connections.sort((a, b) => a.since - b.since);
    return c.json({ user, connections: query.connections });
  });

  app.post("/api/admin/users/:user/disconnect", async (c) => {
    await caller(c, deps, { users: false });
    const user = userParam(c);
    hub.terminate(user);
    return c.json({ user });
  });

  return {
    close() {
      closed = true;
      clearTimeout(timer);
      clearTimeout(tickTimer);
      for (const stream of streams) {
        try {
          stream.close();
        } catch {
          // Closed already.
        }
      }
      streams.clear();
    },
  };
}

function intParam(c: AppContext, name: string, fallback: number, min: number, max: number): number {
  const text = c.req.query(name);
  if (text === undefined || text === "") return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ProtocolError("bad_request", `${name} must be a whole number from ${min} to ${max}`);
  }
  return n;
}
