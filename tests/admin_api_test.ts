/**
 * The dashboard's API (docs/ADMIN.md) against the real server: the key, the numbers matching what
 * the test did, the stream's seconds and tail, 10,000 rooms searched, sorted and paged, a user's
 * connections and its disconnect, the whole service across two Workers, and hostile requests.
 */
import assert from "node:assert/strict";
import { signToken } from "../lib/auth.ts";
import { type Frame, isType, TestClient } from "./_client.ts";
import { startTestServer, twoServers, twoWorkers } from "./_server.ts";
import { redisTest } from "./_redis.ts";
import { until } from "./_wait.ts";

const KEY = "admin-key";
const auth = { authorization: `Bearer ${KEY}` };

/** Reads `count` ticks of the dashboard stream (bounded by `ms`). */
async function ticks(url: string, count: number, ms = 6000): Promise<Frame[]> {
  const response = await fetch(`${url}/api/admin/stream`, { headers: auth });
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /text\/event-stream/);
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  const out: Frame[] = [];
  let buffer = "";
  const deadline = Date.now() + ms;
  try {
    while (out.length < count && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = /^data: (.*)$/m.exec(event)?.[1];
        if (/^event: tick$/m.test(event) && data) out.push(JSON.parse(data));
      }
    }
  } finally {
    await reader.cancel();
  }
  return out;
}

Deno.test("admin API: needs the key, and says so", async () => {
  await using server = await startTestServer({ apiKey: KEY });
  for (const path of ["/api/admin/overview", "/api/admin/stream", "/api/admin/rooms", "/api/admin/users/ann"]) {
    const none = await server.fetch(path);
    assert.equal(none.status, 401, path);
    assert.match((await none.json()).error.message, /ROOMCAST_API_KEY/);
    const wrong = await server.fetch(path, { headers: { authorization: "Bearer nope" } });
    assert.equal(wrong.status, 401, path);
    assert.match((await wrong.json()).error.message, /Invalid API key/);
  }
  const post = await server.fetch("/api/admin/users/ann/disconnect", { method: "POST" });
  assert.equal(post.status, 401);
  await post.body?.cancel();
});

Deno.test("admin API: the numbers are what the clients did; the stream's seconds and tail", async () => {
  await using server = await startTestServer({ apiKey: KEY });
  const a = await server.joined("lobby", "?name=Ann");
  const b = await server.joined("lobby", "?name=Bob");
  const c = await server.joined("other", "?name=Cid");
  const sse = await fetch(`${server.url}/events?room=lobby`);
  try {
    const overview = await (await server.fetch("/api/admin/overview", { headers: auth })).json();
    assert.equal(overview.connections, 4);
    assert.deepEqual(overview.transports, { ws: 3, sse: 1 });
    assert.equal(overview.rooms, 2);
    assert.equal(overview.nodes.length, 1);
    assert.equal(overview.engine, "memory");
    assert.ok(Array.isArray(overview.series) && overview.series.length >= 1);

    const reading = ticks(server.url, 3);
    // The stream is no client connection; publishes during it show in its seconds and tail.
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (let i = 0; i < 7; i++) a.send({ type: "publish", room: "lobby", data: i, ref: i });
    for (let i = 0; i < 7; i++) await a.next((f) => f.type === "ack" && f.ref === i);
    const seen = await reading;
    assert.equal(seen.length, 3);
    for (const tick of seen) assert.equal(tick.connections, 4, "the dashboard's stream is not counted");
    assert.equal(seen.reduce((n, t) => n + t.point.in, 0), 7, "seven messages in");
    assert.ok(seen.reduce((n, t) => n + t.point.out, 0) >= 14, "each delivered to Bob and the reader");
    const published = seen.flatMap((t) => t.tail).filter((e) => e.kind === "publish");
    assert.equal(published.length, 7);
    assert.equal(published[0].room, "lobby");
    assert.equal(published[0].transport, "ws");
    assert.ok(seen.some((t) => t.point.p50 !== null && t.point.p99 >= t.point.p50));

    const rooms = await (await server.fetch("/api/admin/rooms?sort=members&dir=desc", { headers: auth })).json();
    assert.equal(rooms.total, 2);
    assert.deepEqual(rooms.rooms.map((r: { room: string }) => r.room), ["lobby", "other"]);
    assert.equal(rooms.rooms[0].members, 2);
    assert.equal(rooms.rooms[0].depth, 7);
    assert.ok(rooms.rooms[0].rate > 0);
    assert.equal(rooms.rooms[1].depth, 0);
  } finally {
    await sse.body?.cancel();
    for (const client of [a, b, c]) await client.close();
  }
});

Deno.test("admin API: 10,000 rooms searched, sorted and paged on the server", async () => {
  await using server = await startTestServer({ apiKey: KEY });
  const presence = server.engine.presence;
  for (let i = 0; i < 10_000; i++) {
    const room = `room-${String(i).padStart(5, "0")}`;
    for (let m = 0; m <= i % 3; m++) await presence.join(room, { id: `u${m}`, name: `U${m}` }, `c${i}-${m}`);
  }
  const get = async (query: string) => {
    const response = await server.fetch(`/api/admin/rooms?${query}`, { headers: auth });
    assert.equal(response.status, 200, query);
    return await response.json();
  };
  const first = await get("limit=50");
  assert.equal(first.total, 10_000);
  assert.equal(first.rooms.length, 50);
  assert.equal(first.rooms[0].room, "room-00000");
  const last = await get("sort=name&dir=desc&limit=1");
  assert.equal(last.rooms[0].room, "room-09999");
  const searched = await get("q=ROOM-0999&limit=200");
  assert.equal(searched.total, 10);
  const busiest = await get("sort=members&dir=desc&limit=200&offset=0");
  assert.ok(busiest.rooms.every((r: { members: number }) => r.members === 3));
  const paged = await get("limit=50&offset=9990");
  assert.equal(paged.rooms.length, 10);
});

Deno.test("admin API: a user's connections, a direct, and a disconnect", async () => {
  const secret = "s".repeat(32);
  await using server = await startTestServer({ apiKey: KEY, authSecret: secret });
  const token = await signToken({ sub: "ann", name: "Ann" }, secret);
  const one = await server.joined("lobby", `?token=${token}`);
  const two = await server.client(`?token=${token}`);
  try {
    const who = await (await server.fetch("/api/admin/users/ann", { headers: auth })).json();
    assert.equal(who.user, "ann");
    assert.equal(who.connections.length, 2);
    assert.deepEqual(who.connections.map((c: { rooms: string[] }) => c.rooms.length).sort(), [0, 1]);
    assert.ok(
      who.connections.every((c: { transport: string; name: string }) => c.transport === "ws" && c.name === "Ann"),
    );
    const nobody = await (await server.fetch("/api/admin/users/nobody", { headers: auth })).json();
    assert.deepEqual(nobody.connections, []);
    const direct = await server.fetch("/api/users/ann/messages", {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ data: { text: "from the dashboard" } }),
    });
    assert.equal(direct.status, 202);
    assert.equal((await direct.json()).delivered, 2);
    for (const client of [one, two]) {
      assert.deepEqual((await client.next(isType("direct"))).data, { text: "from the dashboard" });
    }
    const off = await server.fetch("/api/admin/users/ann/disconnect", { method: "POST", headers: auth });
    assert.equal(off.status, 200);
    await off.body?.cancel();
    assert.equal((await one.closed).code, 4009);
    assert.equal((await two.closed).code, 4009);
  } finally {
    await one.close();
    await two.close();
  }
});

Deno.test("admin API: bad parameters are refused; a ninth stream is turned away", async () => {
  await using server = await startTestServer({ apiKey: KEY });
  for (const query of ["sort=evil", "limit=0", "limit=201", "offset=-1", "limit=1e9", "offset=x"]) {
    const response = await server.fetch(`/api/admin/rooms?${query}`, { headers: auth });
    assert.equal(response.status, 400, query);
    await response.body?.cancel();
  }
  const long = await server.fetch(`/api/admin/users/${"x".repeat(200)}`, { headers: auth });
  assert.equal(long.status, 400);
  await long.body?.cancel();
  const streams = [];
  try {
    for (let i = 0; i < 8; i++) {
      const response = await server.fetch("/api/admin/stream", { headers: auth });
      assert.equal(response.status, 200);
      streams.push(response);
    }
    const ninth = await server.fetch("/api/admin/stream", { headers: auth });
    assert.equal(ninth.status, 503);
    await ninth.body?.cancel();
  } finally {
    for (const response of streams) await response.body?.cancel();
  }
  // Once they went, a stream is served again.
  await until(
    async () => {
      const again = await server.fetch("/api/admin/stream", { headers: auth });
      await again.body?.cancel();
      return again.status === 200;
    },
    3000,
    "a stream once the others went",
  );
});

Deno.test({
  name: "admin API: the whole service across two Workers, whichever serves the dashboard",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using cluster = await twoWorkers({ apiKey: KEY });
    const clients: TestClient[] = [];
    const nodes = new Set<string>();
    try {
      for (let i = 0; i < 40 && nodes.size < 2; i++) {
        const client = await TestClient.json(`${cluster.url.replace("http", "ws")}/ws?name=Ann`);
        client.welcome = await client.next(isType("welcome"));
        nodes.add(client.welcome.node);
        clients.push(client);
      }
      assert.equal(nodes.size, 2, "clients on both Workers");
      let overview: Frame = {};
      await until(
        async () => {
          overview = await (await fetch(`${cluster.url}/api/admin/overview`, { headers: auth })).json();
          return overview.nodes?.length === 2 && overview.connections === clients.length;
        },
        8000,
        () => `both Workers' figures: ${JSON.stringify(overview).slice(0, 400)}`,
      );
      assert.deepEqual(overview.transports, { ws: clients.length });
      assert.deepEqual(new Set(overview.nodes.map((n: { node: string }) => n.node)), nodes);
    } finally {
      for (const client of clients) await client.close();
    }
  },
});

/** The overview from `server` until it lists `nodes` nodes holding `connections` connections. */
async function wholeService(url: string, nodes: number, connections: number): Promise<Frame> {
  let overview: Frame = {};
  await until(
    async () => {
      overview = await (await fetch(`${url}/api/admin/overview`, { headers: auth })).json();
      return overview.nodes?.length === nodes && overview.connections === connections;
    },
    8000,
    () => `${nodes} nodes and ${connections} connections: ${JSON.stringify(overview).slice(0, 400)}`,
  );
  return overview;
}

redisTest("admin API: the whole service across two processes on Redis", async (redis) => {
  await using pair = await twoServers({ redisUrl: redis.url }, { apiKey: KEY });
  const [one, two] = pair.servers;
  const clients = [await one.joined("r"), await two.joined("r"), await two.client()];
  try {
    const overview = await wholeService(one.url, 2, 3);
    assert.equal(overview.engine, "redis");
    assert.deepEqual(overview.nodes.map((n: Frame) => n.connections).sort(), [1, 2]);
    const rooms = await (await fetch(`${two.url}/api/admin/rooms`, { headers: auth })).json();
    assert.deepEqual(rooms.rooms.map((r: Frame) => [r.room, r.members]), [["r", 2]]);
  } finally {
    for (const client of clients) await client.close();
  }
});

Deno.test("admin API: the whole service across two Deploy instances on one KV", async () => {
  await using pair = await twoServers("kv", { apiKey: KEY });
  const [one, two] = pair.servers;
  const clients = [await one.joined("r"), await two.joined("r")];
  try {
    await wholeService(two.url, 2, 2);
  } finally {
    for (const client of clients) await client.close();
  }
});
