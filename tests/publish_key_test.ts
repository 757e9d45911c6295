/**
 * `publish` with a `key` (a client's idempotency key): a publish its user repeats with the same key
 * in the same room, from this connection or a later one, stores nothing and is acked with the first
 * one's offset; others get the message once. On every store: memory, Deno KV, Redis.
 */
import assert from "node:assert/strict";
import { postJson, startTestServer, type TestServer } from "./_server.ts";
import { openLinks, redisTest } from "./_redis.ts";
import { isType } from "./_client.ts";
import { signToken } from "../lib/auth.ts";
import { ManualClock } from "../lib/clock.ts";

const SECRET = "publish-key-secret";

async function keyedRepeats(server: TestServer): Promise<void> {
  const token = await signToken({ sub: "ann", name: "Ann" }, SECRET);
  const reader = await server.joined("k", `?token=${await signToken({ sub: "bob" }, SECRET)}`);
  const first = await server.joined("k", `?token=${token}`);
  const ack = await first.request({ type: "publish", room: "k", data: "once", key: "key-1" });
  assert.deepEqual([ack.type, ack.offset], ["ack", 1]);
  const again = await first.request({ type: "publish", room: "k", data: "once", key: "key-1" });
  assert.deepEqual([again.type, again.offset, again.id], ["ack", 1, ack.id], "same connection, same key");
  await first.close();
  // The same user after a reconnect: its retry of what it could not tell was stored.
  const later = await server.joined("k", `?token=${token}`);
  const retry = await later.request({ type: "publish", room: "k", data: "once", key: "key-1" });
  assert.deepEqual([retry.offset, retry.id], [1, ack.id]);
  const other = await later.request({ type: "publish", room: "k", data: "twice", key: "key-2" });
  assert.equal(other.offset, 2);
  // Another user's key is another key.
  const bob = await reader.request({ type: "publish", room: "k", data: "bob's", key: "key-1" });
  assert.equal(bob.offset, 3);
  const history = await (await server.fetch("/api/rooms/k/messages")).json();
  assert.deepEqual(history.messages.map((m: { data: string }) => m.data), ["once", "twice", "bob's"]);
  // The reader got "once" a single time.
  const seen: unknown[] = [];
  for (;;) {
    const frame = await reader.next(isType("message"), 300).catch(() => undefined);
    if (!frame) break;
    seen.push(frame.data);
  }
  assert.deepEqual(seen, ["once", "twice"]);
  await reader.close();
  await later.close();
}

Deno.test("publish key: repeats store nothing and ack the first (memory)", async () => {
  await using server = await startTestServer({ authSecret: SECRET });
  await keyedRepeats(server);
});

Deno.test("publish key: repeats store nothing and ack the first (Deno KV)", async () => {
  await using server = await startTestServer({ authSecret: SECRET, kv: true });
  await keyedRepeats(server);
});

redisTest("publish key: repeats store nothing and ack the first (Redis)", async (redis) => {
  await using server = await startTestServer({ authSecret: SECRET, redisUrl: redis.url, kv: true });
  await keyedRepeats(server);
});

Deno.test("publish key: a bad key is bad_request and stores nothing", async () => {
  await using server = await startTestServer();
  const c = await server.joined("bad");
  for (const key of ["", "a b", "x".repeat(129), 42, { k: 1 }, "é"]) {
    const reply = await c.request({ type: "publish", room: "bad", data: 1, key });
    assert.deepEqual([reply.type, reply.code], ["error", "bad_request"], JSON.stringify(key));
  }
  assert.equal((await server.hub.history("bad", { limit: 10 })).messages.length, 0);
  await c.close();
});

Deno.test("publish key: remembered 10 minutes (a reconnect's time), then it is a new publish", async () => {
  const clock = new ManualClock(Date.now());
  await using server = await startTestServer({ clock });
  const c = await server.joined("ttl");
  const first = await c.request({ type: "publish", room: "ttl", data: "a", key: "k" });
  clock.advance(9 * 60_000);
  assert.equal((await c.request({ type: "publish", room: "ttl", data: "a", key: "k" })).offset, first.offset);
  clock.advance(2 * 60_000);
  assert.equal((await c.request({ type: "publish", room: "ttl", data: "a", key: "k" })).offset, first.offset + 1);
  await c.close();
});

redisTest("publish key on Redis: the key lives 10 minutes there (HTTP's a day)", async (redis) => {
  await using server = await startTestServer({ redisUrl: redis.url, kv: true });
  const c = await server.joined("rttl");
  const user = (c.welcome as { user: { id: string } }).user.id;
  await c.request({ type: "publish", room: "rttl", data: 1, key: "ws-key" });
  const published = await postJson(
    server,
    "/api/rooms/rttl/messages",
    { data: 2, from: { id: "be", name: "Backend" } },
    {
      "idempotency-key": "http-key",
    },
  );
  await published.body?.cancel();
  const [link] = await openLinks(redis, 1);
  try {
    const ttl = (key: string) => link!.command<number>(["TTL", key]);
    const ws = await ttl(`rc:{rttl}:idem:${user.length}:${user}:ws-key`);
    const http = await ttl("rc:{rttl}:idem:2:be:http-key");
    assert.ok(ws > 590 && ws <= 600, `ws key TTL ${ws}`);
    assert.ok(http > 86_000, `http key TTL ${http}`);
  } finally {
    link?.close();
  }
  await c.close();
});
