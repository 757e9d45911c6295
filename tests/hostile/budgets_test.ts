/**
 * Issue "hardening", item 6: limits were per connection and easy to step around. Reconnecting
 * after every 50 publishes stored 17,880 messages/s from one client, HTTP publishes with a user
 * JWT had no limit, joining and leaving 20,000 rooms wrote 20,000 permanent KV entries, and names
 * took control, bidi and zero-width characters. Now publishes, directs and signals spend a budget
 * per user (JWT `sub`) or per address for guests, across connections and HTTP; joins and leaves
 * are budgeted; a join that only reads writes nothing; names are normalised.
 */
import assert from "node:assert/strict";
import { signToken } from "../../lib/auth.ts";
import { isType, TestClient } from "../_client.ts";
import { postJson, startTestServer } from "../_server.ts";

Deno.test("a guest that reconnects keeps spending its address's budget", async () => {
  await using server = await startTestServer({ limits: { publishBurst: 50, userPublishBurst: 100 } });
  for (let round = 0; round < 2; round++) {
    const c = await server.joined("spam");
    for (let i = 0; i < 50; i++) {
      assert.equal((await c.request({ type: "publish", room: "spam", data: i })).type, "ack");
    }
    await c.close();
  }
  // A third connection from the same address starts with nothing left: refused, then closed as a
  // flood (20 refusals in a row) instead of being let through.
  const third = await server.joined("spam");
  // (No more than that: frames a client sends after the close reach a closed socket, a reset.)
  for (let i = 0; i < 20; i++) third.send({ type: "publish", room: "spam", data: i });
  const closed = await third.closed;
  assert.equal(closed.code, 4429);
  assert.equal(third.unread.filter((f) => f.code === "rate_limited").length, 20);
  assert.equal((await server.hub.history("spam", { limit: 100 })).messages.length, 100);
});

Deno.test("a user's HTTP publishes and WebSocket publishes spend one budget; 429 says when to retry", async () => {
  const secret = "budget-secret";
  await using server = await startTestServer({
    authSecret: secret,
    limits: { userPublishBurst: 5, userWindowMs: 10_000 },
  });
  const token = await signToken({ sub: "u-1", exp: Math.floor(Date.now() / 1000) + 60 }, secret);
  const statuses: number[] = [];
  let retryAfter: string | null = null;
  for (let i = 0; i < 4; i++) {
    const response = await postJson(server, "/api/rooms/b/messages", { data: i }, { authorization: `Bearer ${token}` });
    statuses.push(response.status);
    await response.body?.cancel();
  }
  const ws = await TestClient.json(server.ws(`/ws?token=${token}`));
  await ws.next(isType("welcome"));
  await ws.request({ type: "join", room: "b" });
  assert.equal((await ws.request({ type: "publish", room: "b", data: "ws" })).type, "ack", "the fifth");
  assert.equal((await ws.request({ type: "publish", room: "b", data: "ws" })).code, "rate_limited");
  const over = await postJson(server, "/api/rooms/b/messages", { data: "over" }, { authorization: `Bearer ${token}` });
  statuses.push(over.status);
  retryAfter = over.headers.get("retry-after");
  assert.equal((await over.json()).error.code, "rate_limited");
  assert.deepEqual(statuses, [201, 201, 201, 201, 429]);
  assert.equal(retryAfter, "2", "one publish back every 2 s (5 per 10 s)");
  // Another user is not affected; a backend (loopback, no key) has no budget.
  const other = await signToken({ sub: "u-2", exp: Math.floor(Date.now() / 1000) + 60 }, secret);
  const theirs = await postJson(server, "/api/rooms/b/messages", { data: "x" }, { authorization: `Bearer ${other}` });
  assert.equal(theirs.status, 201);
  await theirs.body?.cancel();
  for (let i = 0; i < 10; i++) {
    const backend = await postJson(server, "/api/rooms/b/messages", { data: i });
    assert.equal(backend.status, 201);
    await backend.body?.cancel();
  }
  await ws.close();
});

Deno.test("signals and directs spend the user's budget across connections", async () => {
  await using server = await startTestServer({ limits: { userSignalBurst: 10, userPublishBurst: 4 } });
  const a = await server.joined("s");
  const b = await server.joined("s");
  const replies = [];
  for (let i = 0; i < 12; i++) {
    (i % 2 ? a : b).send({ type: "signal", room: "s", event: "typing", ref: `s${i}` });
  }
  for (let i = 0; i < 4; i++) replies.push(await a.request({ type: "direct", to: "nobody", data: i }));
  await a.request({ type: "ping" });
  await b.request({ type: "ping" });
  const limited = [...a.unread, ...b.unread].filter((f) => f.code === "rate_limited");
  assert.equal(limited.length, 2, "12 signals from two guests of one address: 10 go through");
  assert.deepEqual(replies.map((r) => r.type), ["ack", "ack", "ack", "ack"], "directs spend the publish budget");
  assert.equal((await b.request({ type: "direct", to: "nobody", data: 5 })).code, "rate_limited");
  await Promise.all([a.close(), b.close()]);
});

Deno.test("joins and leaves are budgeted per connection", async () => {
  await using server = await startTestServer({ limits: { joinBurst: 20, maxRooms: 1000 } });
  const c = await server.client();
  const replies = [];
  for (let i = 0; i < 15; i++) {
    replies.push(await c.request({ type: "join", room: `j${i}` }));
    replies.push(await c.request({ type: "leave", room: `j${i}` }));
  }
  const types = replies.map((r) => r.type === "error" ? r.code : r.type);
  assert.deepEqual(types.slice(0, 20), Array.from({ length: 20 }, (_, i) => i % 2 ? "left" : "joined"));
  assert.ok(types.slice(20).every((t) => t === "rate_limited" || t === "not_joined"), types.slice(20).join());
  await c.close();
});

for (const sequencer of ["local", "kv"] as const) {
  const what = sequencer === "local"
    ? "writes nothing and keeps nothing"
    // A KV numbered by its commits is shared: presence lives there (leased keys, gone on leave).
    : "writes no history and leaves nothing behind (shared KV: presence keys come and go)";
  Deno.test(`joining and leaving 2,000 rooms ${what} (sequencer ${sequencer})`, async () => {
    const dir = await Deno.makeTempDir();
    const kvPath = `${dir}/rc.kv`;
    {
      await using server = await startTestServer({
        kv: true,
        kvPath,
        sequencer,
        limits: { joinBurst: 100_000, maxRooms: 100_000 },
      });
      const clients = await Promise.all([1, 2, 3, 4].map(() => server.client()));
      await Promise.all(clients.map(async (c, k) => {
        for (let i = 0; i < 500; i++) {
          const room = `r${k}-${i}`;
          const joined = await c.request({ type: "join", room });
          assert.equal(joined.type, "joined");
          await c.request({ type: "leave", room });
        }
      }));
      assert.equal(server.hub.roomsInMemory, 0, "no room is kept once its last member left");
      // A room published to, then left, lingers with its messages (for clients that come back).
      const kept = clients[0] as TestClient;
      await kept.request({ type: "join", room: "kept" });
      await kept.request({ type: "publish", room: "kept", data: 1 });
      await kept.request({ type: "leave", room: "kept" });
      assert.equal(server.hub.roomsInMemory, 1);
      await Promise.all(clients.map((c) => c.close()));
    }
    const kv = await Deno.openKv(kvPath);
    const keys: string[] = [];
    for await (const entry of kv.list({ prefix: [] })) keys.push(JSON.stringify(entry.key));
    kv.close();
    const rooms = new Set(keys.filter((k) => k.startsWith('["rc1","meta"') || k.startsWith('["rc1","msg"')));
    assert.deepEqual(
      [...rooms].map((k) => JSON.parse(k)[2]),
      ["kept", "kept"].slice(0, rooms.size),
      "only the room published to has a meta and a block",
    );
    assert.ok(keys.includes('["rc1","salt"]'));
    assert.ok(keys.length <= 3, `keys: ${keys.join(" ")}`);
    await Deno.remove(dir, { recursive: true });
  });
}

Deno.test("a room's epoch doesn't change while it has no history, with nothing written for it", async () => {
  const dir = await Deno.makeTempDir();
  const kvPath = `${dir}/rc.kv`;
  let first: string;
  {
    await using server = await startTestServer({ kv: true, kvPath });
    const c = await server.client();
    first = (await c.request({ type: "join", room: "quiet" })).epoch;
    await c.close();
  }
  await using server = await startTestServer({ kv: true, kvPath });
  const c = await server.client();
  const again = await c.request({ type: "join", room: "quiet", since: { epoch: first, offset: 0 } });
  assert.deepEqual([again.epoch, again.recovered], [first, true], "a restart keeps it: nothing missed, nothing lost");
  const ack = await c.request({ type: "publish", room: "quiet", data: "first" });
  assert.equal(ack.epoch, first, "the first message is stored in it");
  await c.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("names are normalised: NFC, no control, bidi or zero-width characters, trimmed, 64 at most", async () => {
  const secret = "names-secret";
  await using server = await startTestServer();
  const nameOf = async (query: string) => {
    const c = await server.client(query);
    await c.close();
    return c.welcome?.user.name as string;
  };
  assert.equal(
    await nameOf(`?name=${encodeURIComponent(" A\u200Bd\u202Ea\u0007  \t Lovelace\uFEFF ")}`),
    "Ada Lovelace",
  );
  assert.equal(await nameOf(`?name=${encodeURIComponent("Cafe\u0301")}`), "Café", "NFC");
  assert.equal([...await nameOf(`?name=${encodeURIComponent("😀".repeat(100))}`)].length, 64, "64 characters");
  assert.match(
    await nameOf(`?name=${encodeURIComponent("\u200B\u200E\u2066")}`),
    /^[A-Z][a-z]+ [A-Z][a-z]+$/,
    "nothing visible: a generated name",
  );
  const published = await postJson(server, "/api/rooms/n/messages", {
    data: 1,
    from: { id: "bot", name: "\u202Egnp.exe" },
  });
  assert.equal(published.status, 201);
  await published.body?.cancel();
  assert.equal((await server.hub.history("n", { limit: 1 })).messages[0]?.from.name, "gnp.exe");
  const bad = await postJson(server, "/api/rooms/n/messages", { data: 1, from: { id: "bot\u0000", name: "B" } });
  assert.equal(bad.status, 400, "ids with invisible characters are refused");
  await bad.body?.cancel();
  {
    await using authed = await startTestServer({ authSecret: secret });
    const token = await signToken({ sub: "u", name: "\u0008Root\u200D" }, secret);
    const c = await TestClient.json(authed.ws(`/ws?token=${token}`));
    assert.equal((await c.next(isType("welcome"))).user.name, "Root", "a token's name claim too");
    await c.close();
  }
});
