/** The HTTP API against the real server, and its access rules (API key, loopback). */
import assert from "node:assert/strict";
import { isType } from "./_client.ts";
import { postJson, startTestServer } from "./_server.ts";

async function json(response: Response) {
  return { status: response.status, body: await response.json() };
}

Deno.test("HTTP API: publish, history, presence, rooms, direct, broadcast", async (t) => {
  await using server = await startTestServer();
  const listener = await server.joined("news", "?name=Reader");

  await t.step("POST /api/rooms/:room/messages → 201 {id, room, offset, epoch}; members get it", async () => {
    const first = await json(await postJson(server, "/api/rooms/news/messages", { data: { text: "one" } }));
    assert.equal(first.status, 201);
    assert.equal(first.body.room, "news");
    assert.equal(first.body.offset, 1);
    assert.equal(typeof first.body.id, "string");
    assert.equal(typeof first.body.epoch, "string");
    const m = await listener.next(isType("message"));
    assert.equal(m.id, first.body.id);
    assert.deepEqual(m.from, { id: "server", name: "server" });
    assert.deepEqual(m.data, { text: "one" });

    const from = { id: "bot-1", name: "Build bot" };
    const second = await json(await postJson(server, "/api/rooms/news/messages", { data: "two", from }));
    assert.equal(second.body.offset, 2);
    assert.deepEqual((await listener.next(isType("message"))).from, from);
  });

  await t.step("GET /api/rooms/:room/messages pages with after, before and limit", async () => {
    for (let i = 3; i <= 6; i++) await (await postJson(server, "/api/rooms/news/messages", { data: i })).body?.cancel();
    for (let i = 3; i <= 6; i++) assert.equal((await listener.next(isType("message"))).offset, i);
    const all = await json(await server.fetch("/api/rooms/news/messages"));
    assert.equal(all.status, 200);
    assert.equal(all.body.room, "news");
    assert.deepEqual(all.body.messages.map((m: { offset: number }) => m.offset), [1, 2, 3, 4, 5, 6]);
    assert.equal(all.body.messages[0].type, "message");
    const after = await json(await server.fetch("/api/rooms/news/messages?after=2&limit=2"));
    assert.deepEqual(after.body.messages.map((m: { offset: number }) => m.offset), [3, 4]);
    const before = await json(await server.fetch("/api/rooms/news/messages?before=3"));
    assert.deepEqual(before.body.messages.map((m: { offset: number }) => m.offset), [1, 2]);
    const empty = await json(await server.fetch("/api/rooms/nobody-here/messages"));
    assert.deepEqual(empty.body.messages, []);
  });

  await t.step("GET presence and rooms", async () => {
    const presence = await json(await server.fetch("/api/rooms/news/presence"));
    assert.equal(presence.status, 200);
    assert.equal(presence.body.room, "news");
    assert.deepEqual(presence.body.members.map((m: { name: string; connections: number }) => [m.name, m.connections]), [
      ["Reader", 1],
    ]);
    const rooms = await json(await server.fetch("/api/rooms"));
    assert.deepEqual(rooms.body.rooms, [{ room: "news", members: 1, connections: 1 }]);
  });

  await t.step("POST /api/users/:user/messages → 202 {id, delivered} to every connection of the user", async () => {
    const userId = listener.welcome?.user.id;
    const result = await json(await postJson(server, `/api/users/${userId}/messages`, { data: { text: "hey" } }));
    assert.equal(result.status, 202);
    assert.equal(result.body.delivered, 1);
    const direct = await listener.next(isType("direct"));
    assert.equal(direct.id, result.body.id);
    assert.deepEqual(direct.data, { text: "hey" });
    const nobody = await json(await postJson(server, "/api/users/ghost/messages", { data: 1 }));
    assert.equal(nobody.body.delivered, 0);
  });

  await t.step("POST /api/broadcast → 202 {id}; every connection gets it", async () => {
    const other = await server.client();
    const result = await json(await postJson(server, "/api/broadcast", { data: { notice: "maintenance" } }));
    assert.equal(result.status, 202);
    for (const c of [listener, other]) {
      const b = await c.next(isType("broadcast"));
      assert.equal(b.id, result.body.id);
      assert.deepEqual(b.data, { notice: "maintenance" });
    }
    await other.close();
  });

  await t.step("bad requests get JSON errors with matching statuses", async () => {
    const cases: [string, Promise<Response>, number, string][] = [
      ["bad room", postJson(server, "/api/rooms/bad%20room/messages", { data: 1 }), 400, "bad_request"],
      ["not JSON", postJson(server, "/api/rooms/news/messages", "{oops"), 400, "bad_request"],
      ["array body", postJson(server, "/api/rooms/news/messages", [1]), 400, "bad_request"],
      ["no data", postJson(server, "/api/rooms/news/messages", { text: 1 }), 400, "bad_request"],
      ["bad from", postJson(server, "/api/rooms/news/messages", { data: 1, from: "me" }), 400, "bad_request"],
      ["too large", postJson(server, "/api/rooms/news/messages", { data: "x".repeat(70_000) }), 413, "too_large"],
      ["bad limit", server.fetch("/api/rooms/news/messages?limit=-3"), 400, "bad_request"],
      ["bad after", server.fetch("/api/rooms/news/messages?after=abc"), 400, "bad_request"],
      ["unknown route", server.fetch("/api/nope"), 404, "not_found"],
      ["token without secret", postJson(server, "/api/tokens", { sub: "u1" }), 400, "bad_request"],
    ];
    for (const [name, request, status, code] of cases) {
      const result = await json(await request);
      assert.equal(result.status, status, name);
      assert.equal(result.body.error.code, code, name);
      assert.equal(typeof result.body.error.message, "string", name);
    }
    const history = await json(await server.fetch("/api/rooms/news/messages"));
    assert.equal(history.body.messages.length, 6, "no bad request stored anything");
  });

  await t.step("DELETE /api/rooms/:room/messages resets history: new epoch, offsets restart", async () => {
    const before = await json(await server.fetch("/api/rooms/news/messages"));
    const unconfirmed = await json(await server.fetch("/api/rooms/news/messages", { method: "DELETE" }));
    assert.equal(unconfirmed.status, 400, "from loopback too, a reset needs ?confirm=<room>");
    assert.match(unconfirmed.body.error.message, /\?confirm=news/);
    const wrongRoom = await json(await server.fetch("/api/rooms/news/messages?confirm=new", { method: "DELETE" }));
    assert.equal(wrongRoom.status, 400);
    assert.equal(
      (await json(await server.fetch("/api/rooms/news/messages"))).body.messages.length,
      6,
      "nothing deleted",
    );
    const reset = await json(await server.fetch("/api/rooms/news/messages?confirm=news", { method: "DELETE" }));
    assert.equal(reset.status, 200);
    assert.notEqual(reset.body.epoch, before.body.epoch);
    assert.equal(reset.body.offset, 0);
    const joined = await listener.next(isType("joined"));
    assert.deepEqual([joined.epoch, joined.offset, joined.recovered], [reset.body.epoch, 0, false]);
    const next = await json(await postJson(server, "/api/rooms/news/messages", { data: "fresh" }));
    assert.equal(next.body.offset, 1);
    assert.equal(next.body.epoch, reset.body.epoch);
    const m = await listener.next(isType("message"));
    assert.deepEqual([m.epoch, m.offset], [reset.body.epoch, 1]);
  });
  await listener.close();
});

Deno.test("HTTP API access: API key when set, loopback only when not", async (t) => {
  await t.step("with ROOMCAST_API_KEY, writes need the bearer key", async () => {
    await using server = await startTestServer({ apiKey: "s3cret-key" });
    const none = await json(await postJson(server, "/api/broadcast", { data: 1 }));
    assert.equal(none.status, 401);
    assert.equal(none.body.error.code, "unauthorized");
    assert.match(none.body.error.message, /needs Authorization: Bearer <API key>/);
    const wrong = await json(await postJson(server, "/api/broadcast", { data: 1 }, { authorization: "Bearer nope" }));
    assert.equal(wrong.status, 401);
    assert.match(wrong.body.error.message, /^Invalid API key/);
    const right = await postJson(server, "/api/broadcast", { data: 1 }, { authorization: "Bearer s3cret-key" });
    assert.equal(right.status, 202);
    await right.body?.cancel();
    for (const path of ["/api/rooms/a/messages", "/api/users/u/messages", "/api/tokens"]) {
      const r = await postJson(server, path, { data: 1 });
      assert.equal(r.status, 401, path);
      await r.body?.cancel();
    }
    const read = await server.fetch("/api/rooms/a/messages");
    assert.equal(read.status, 200, "reads stay open when no auth secret is set");
    await read.body?.cancel();
  });

  await t.step("every 401 names the credential that was wrong: API key, user token, metrics key", async () => {
    await using server = await startTestServer({
      apiKey: "s3cret-key",
      authSecret: "auth-secret",
      metricsKey: "m-key",
    });
    const publish = (authorization: string) =>
      postJson(server, "/api/rooms/a/messages", { data: 1 }, { authorization }).then(json);
    const typo = await publish("Bearer s3cret-kye");
    assert.deepEqual([typo.status, typo.body.error.code], [401, "unauthorized"]);
    assert.match(typo.body.error.message, /^Invalid API key/, "a mistyped key is not called a bad JWT");
    const forged = await publish("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl");
    assert.equal(forged.status, 401);
    assert.match(forged.body.error.message, /^Not the API key, and not a valid user token: Token signature is invalid/);
    const metrics = await server.fetch("/metrics", { headers: { authorization: "Bearer wrong" } });
    assert.equal(metrics.status, 401);
    assert.match((await metrics.json()).error.message, /^Invalid metrics key/);
  });

  await t.step("without a key, a non-loopback caller is refused (403) and loopback is served", async () => {
    await using server = await startTestServer();
    const remote = { remoteAddr: { transport: "tcp" as const, hostname: "203.0.113.7", port: 5555 } };
    const request = () =>
      new Request("http://localhost/api/rooms/a/messages", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ data: 1 }),
      });
    const refused = await server.app.fetch(request(), remote);
    assert.equal(refused.status, 403);
    assert.equal((await refused.json()).error.code, "forbidden");
    const loopback = { remoteAddr: { transport: "tcp" as const, hostname: "::ffff:127.0.0.1", port: 5555 } };
    const served = await server.app.fetch(request(), loopback);
    assert.equal(served.status, 201);
    await served.body?.cancel();
  });
});

for (const kv of [false, true]) {
  Deno.test(`Idempotency-Key (${kv ? "Deno KV" : "memory"}): a retried publish is stored once, concurrent retries too`, async () => {
    await using server = await startTestServer({ kv });
    const publish = (key: string, data: unknown) =>
      postJson(server, "/api/rooms/idem/messages", { data }, { "idempotency-key": key }).then((r) => r.json());
    const [a, b, c] = await Promise.all([publish("k1", "one"), publish("k1", "one"), publish("k1", "one")]);
    assert.deepEqual(b, a);
    assert.deepEqual(c, a);
    assert.deepEqual(await publish("k1", "one"), a, "and later");
    const other = await publish("k2", "two");
    assert.equal(other.offset, a.offset + 1);
    const history = await (await server.fetch("/api/rooms/idem/messages")).json();
    assert.deepEqual(history.messages.map((m: { data: string }) => m.data), ["one", "two"]);
    const bad = await postJson(server, "/api/rooms/idem/messages", { data: 1 }, { "idempotency-key": "x".repeat(129) });
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
  });
}

Deno.test("POST a message holding a number too large for a double: 400, nothing stored", async () => {
  await using server = await startTestServer({ kv: true });
  const response = await postJson(server, "/api/rooms/big/messages", '{"data":{"amount":1e400}}');
  assert.equal(response.status, 400);
  assert.equal((await response.json()).error.code, "bad_request");
  const history = await (await server.fetch("/api/rooms/big/messages")).json();
  assert.deepEqual(history.messages, []);
  const fine = await postJson(server, "/api/rooms/big/messages", '{"data":{"amount":1e308}}');
  assert.equal(fine.status, 201);
  await fine.body?.cancel();
});
