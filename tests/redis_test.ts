/**
 * The Redis engine with real parts: `redis-server` on a free port, roomcast processes (main.ts, as
 * `deno task start` runs it) pointing at it. Several processes serve one set of rooms; Redis
 * stopped and started again under load; a process killed with SIGKILL under load; idempotent
 * HTTP publishes.
 */
import assert from "node:assert/strict";
import { signToken } from "../lib/auth.ts";
import { type Frame, isType, TestClient } from "./_client.ts";
import { type MainProcess, startMain, stopMain } from "./_process.ts";
import { redisTest } from "./_redis.ts";
import { breathe, until } from "./_wait.ts";

const SECRET = "a-secret-for-the-redis-tests";

function env(redisUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PORT: "0",
    HOSTNAME: "127.0.0.1",
    ROOMCAST_REDIS_URL: redisUrl,
    ROOMCAST_AUTH_SECRET: SECRET,
    ROOMCAST_API_KEY: "api-key",
    ROOMCAST_CONNECT_RATE: "0",
    ROOMCAST_PUBLISH_RATE: "100000/1s",
    ROOMCAST_USER_PUBLISH_RATE: "100000/1s",
    ROOMCAST_REDIS_LEASE: "1s",
    ...extra,
  };
}

async function client(process: MainProcess, sub: string): Promise<TestClient<Frame>> {
  const token = await signToken({ sub, name: sub.toUpperCase() }, SECRET);
  const c = await TestClient.json(`${process.url.replace("http", "ws")}/ws?token=${token}`);
  c.welcome = await c.next(isType("welcome"));
  return c;
}

const api = (process: MainProcess, path: string, init: RequestInit = {}) =>
  fetch(process.url + path, {
    ...init,
    headers: { authorization: "Bearer api-key", "content-type": "application/json", ...init.headers },
  });

async function history(process: MainProcess, room: string): Promise<{ offset: number; id: string; data: unknown }[]> {
  const all: { offset: number; id: string; data: unknown }[] = [];
  for (let page = 0; page < 50; page++) {
    const after: number = all.at(-1)?.offset ?? 0;
    const body: { messages: typeof all } =
      await (await api(process, `/api/rooms/${room}/messages?after=${after}&limit=100`))
        .json();
    if (body.messages.length === 0) break;
    all.push(...body.messages);
  }
  return all;
}

/** Two roomcast processes on one Redis for `fn`, stopped after it whatever it does. */
async function withTwo(redisUrl: string, fn: (one: MainProcess, two: MainProcess) => Promise<void>): Promise<void> {
  const one = await startMain(env(redisUrl));
  const two = await startMain(env(redisUrl));
  try {
    await fn(one, two);
  } finally {
    await stopMain(one);
    await stopMain(two);
  }
}

redisTest("two processes on one Redis serve one set of rooms", async (redis) => {
  await withTwo(redis.url, async (one, two) => {
    const ann = await client(one, "ann");
    const bob = await client(two, "bob");
    const annToo = await client(two, "ann"); // Ann again, on the other process
    assert.notEqual(ann.welcome?.node, bob.welcome?.node);
    const joined = await ann.request({ type: "join", room: "r" });
    await bob.request({ type: "join", room: "r" });
    assert.equal((await ann.next(isType("member"))).user.id, "bob", "a member join crossed processes");
    await annToo.request({ type: "join", room: "r" });
    const presence = await (await api(two, "/api/rooms/r/presence")).json();
    assert.deepEqual(
      presence.members.map((m: { id: string; connections: number }) => [m.id, m.connections]).sort(),
      [["ann", 2], ["bob", 1]],
      "Ann is listed once, with both connections",
    );
    assert.equal(bob.unread.filter((f) => f.type === "member" && f.user.id === "ann").length, 0, "told once");

    // One offset sequence whichever process publishes; each side gets the other's, in order.
    const acks = [];
    for (let i = 1; i <= 6; i++) acks.push(await (i % 2 ? ann : bob).request({ type: "publish", room: "r", data: i }));
    assert.deepEqual(acks.map((a) => a.offset), [1, 2, 3, 4, 5, 6]);
    const atBob = [];
    for (let i = 0; i < 3; i++) atBob.push((await bob.next(isType("message"))).offset);
    assert.deepEqual(atBob, [1, 3, 5]);

    // HTTP push on either process, directs to a user on any process (counted), broadcasts.
    const pushed = await (await api(two, "/api/rooms/r/messages", {
      method: "POST",
      body: JSON.stringify({ data: "http" }),
    })).json();
    assert.equal(pushed.offset, 7);
    assert.equal((await ann.next((f) => f.type === "message" && f.data === "http")).offset, 7);
    const direct = await (await api(two, "/api/users/ann/messages", {
      method: "POST",
      body: JSON.stringify({ data: "psst" }),
    })).json();
    assert.equal(direct.delivered, 2);
    assert.equal((await ann.next(isType("direct"))).data, "psst");
    assert.equal((await annToo.next(isType("direct"))).data, "psst");
    await (await api(one, "/api/broadcast", { method: "POST", body: JSON.stringify({ data: "all" }) })).body?.cancel();
    assert.equal((await bob.next(isType("broadcast"))).data, "all");

    // SSE on one process sees what the other stores; history is one; recovery works across processes.
    const sse = new EventSource(`${one.url}/events?room=r&token=${await signToken({ sub: "eve" }, SECRET)}`);
    const seen: number[] = [];
    sse.addEventListener("message", (e) => seen.push(JSON.parse((e as MessageEvent).data).offset));
    // The stream is open before its join has read the room's position: wait for the join's answer.
    const sseJoined = new Promise((resolve) => sse.addEventListener("joined", resolve, { once: true }));
    await new Promise((resolve) => sse.addEventListener("open", resolve, { once: true }));
    await sseJoined;
    await bob.request({ type: "publish", room: "r", data: "to sse" });
    await until(() => seen.includes(8), 4000, "the SSE client to get offset 8");
    sse.close();
    assert.deepEqual((await history(one, "r")).map((m) => m.offset), [1, 2, 3, 4, 5, 6, 7, 8]);
    await ann.close();
    await bob.request({ type: "publish", room: "r", data: "missed" });
    const back = await client(two, "ann");
    const recovered = await back.request({ type: "join", room: "r", since: { epoch: joined.epoch, offset: 6 } });
    assert.equal(recovered.recovered, true);
    const replay = [];
    for (let i = 0; i < 3; i++) replay.push((await back.next(isType("message"))).offset);
    assert.deepEqual(replay, [7, 8, 9]);
    const rooms = await (await api(one, "/api/rooms")).json();
    assert.deepEqual(rooms.rooms.map((r: { room: string }) => r.room), ["r"]);
    for (const c of [bob, annToo, back]) await c.close();
  });
});

redisTest(
  "Redis stopped and started again under load: nothing acked is lost, publishes fail clearly meanwhile",
  async (redis) => {
    await withTwo(redis.url, async (one, two) => {
      const writer = await client(one, "writer");
      const reader = await client(two, "reader");
      await writer.request({ type: "join", room: "load" });
      await reader.request({ type: "join", room: "load" });
      let sent = 0;
      let running = true;
      const refs = new Set<string>();
      const pump = (async () => {
        while (running && sent < 3000) {
          writer.send({ type: "publish", room: "load", data: sent, ref: `p${sent}` });
          refs.add(`p${sent}`);
          sent++;
          await breathe(2); // 3,000 at most: paced to last through the outage
        }
      })();
      await until(() => writer.unread.filter(isType("ack")).length > 50, 5000, "acks before the outage");
      await redis.stop();
      await until(
        () => writer.unread.some((f) => f.type === "error" && f.code === "unavailable"),
        5000,
        "an unavailable error while Redis is away",
      );
      const health = await fetch(`${one.url}/healthz`);
      assert.equal(health.status, 503);
      assert.deepEqual((await health.json()).engine, { engine: "redis", state: "down" });
      const refused = await api(one, "/api/rooms/load/messages", {
        method: "POST",
        body: JSON.stringify({ data: "x" }),
      });
      assert.equal(refused.status, 503);
      assert.equal((await refused.json()).error.code, "unavailable");
      assert.equal(writer.socket.readyState, WebSocket.OPEN, "the connection stayed open");
      await redis.start();
      await until(async () => (await fetch(`${one.url}/healthz`)).status === 200, 10_000, "healthz back to 200");
      const before = writer.unread.filter(isType("ack")).length;
      await until(() => writer.unread.filter(isType("ack")).length > before + 50, 10_000, "acks after Redis is back");
      running = false;
      await pump;
      const answered = () => writer.unread.filter((f) => (f.type === "ack" || f.type === "error") && refs.has(f.ref));
      await until(() => answered().length >= sent, 5000, () => `every publish answered (${answered().length}/${sent})`);

      const acked = writer.unread.filter(isType("ack"));
      const failed = writer.unread.filter((f) => f.type === "error" && f.code === "unavailable");
      assert.ok(failed.length > 0);
      assert.equal(acked.length + failed.length <= sent, true);
      const stored = await history(two, "load");
      const ids = new Set(stored.map((m) => m.id));
      for (const ack of acked) assert.ok(ids.has(ack.id), `acked ${ack.offset} is stored`);
      for (const f of failed) assert.ok(!acked.some((a) => a.ref === f.ref), "a refused publish was not also acked");
      assert.deepEqual(stored.map((m) => m.offset), stored.map((_, i) => i + 1), "one sequence, no holes");
      // The reader on the other process got every stored message, in order, once.
      await until(
        () => reader.unread.filter(isType("message")).length >= stored.length,
        10_000,
        "the reader to catch up",
      );
      assert.deepEqual(reader.unread.filter(isType("message")).map((m) => m.offset), stored.map((m) => m.offset));
      await writer.close();
      await reader.close();
    });
  },
);

redisTest(
  "a process killed with SIGKILL under load loses nothing it acked; its members leave within the lease",
  async (redis) => {
    const doomed = await startMain(env(redis.url));
    const other = await startMain(env(redis.url));
    try {
      const watcher = await client(other, "watcher");
      await watcher.request({ type: "join", room: "k" });
      const writer = await client(doomed, "writer");
      await writer.request({ type: "join", room: "k" });
      await watcher.next((f) => f.type === "member" && f.event === "join");
      // Paced like a busy client that reads its acks (one that never reads is closed as a slow consumer).
      const pump = (async () => {
        for (let i = 0; i < 2000 && writer.socket.readyState === WebSocket.OPEN; i++) {
          writer.send({ type: "publish", room: "k", data: i });
          if (i % 10 === 9) await breathe();
        }
      })();
      await until(() => writer.unread.filter(isType("ack")).length >= 100, 5000, "some acks");
      await stopMain(doomed, "SIGKILL");
      await pump;
      const acked = writer.unread.filter(isType("ack"));
      assert.ok(acked.length < 2000, "killed mid-stream");
      const stored = await history(other, "k");
      const ids = new Set(stored.map((m) => m.id));
      for (const ack of acked) assert.ok(ids.has(ack.id), `acked ${ack.offset} is stored`);
      assert.deepEqual(stored.map((m) => m.offset), stored.map((_, i) => i + 1), "no holes");
      const left = await watcher.next((f) => f.type === "member" && f.event === "leave", 5000);
      assert.equal(left.user.id, "writer", "the killed process's member left, and it was told");
      const presence = await (await api(other, "/api/rooms/k/presence")).json();
      assert.deepEqual(presence.members.map((m: { id: string }) => m.id), ["watcher"]);
      await watcher.close();
    } finally {
      await stopMain(doomed, "SIGKILL");
      await stopMain(other);
    }
  },
);

redisTest("Idempotency-Key: a retried HTTP publish, on the same or another process, is stored once", async (redis) => {
  await withTwo(redis.url, async (one, two) => {
    const publish = (process: MainProcess, key: string, data: unknown) =>
      api(process, "/api/rooms/i/messages", {
        method: "POST",
        headers: { "idempotency-key": key },
        body: JSON.stringify({ data }),
      }).then((r) => r.json());
    const first = await publish(one, "order-42", "once");
    const again = await publish(one, "order-42", "once");
    const elsewhere = await publish(two, "order-42", "once");
    assert.deepEqual(again, first);
    assert.deepEqual(elsewhere, first);
    const other = await publish(two, "order-43", "twice");
    assert.equal(other.offset, first.offset + 1);
    assert.deepEqual((await history(one, "i")).map((m) => m.data), ["once", "twice"]);
    const bad = await api(one, "/api/rooms/i/messages", {
      method: "POST",
      headers: { "idempotency-key": "has spaces" },
      body: JSON.stringify({ data: 1 }),
    });
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
  });
});

redisTest(
  "a Redis that comes back empty: presence is written again, rejoins are told recovered: false, publishing goes on",
  async (redis) => {
    const one = await startMain(env(redis.url));
    try {
      const ann = await client(one, "ann");
      const joined = await ann.request({ type: "join", room: "w" });
      await ann.request({ type: "publish", room: "w", data: "before" });
      await redis.wipe();
      // The process noticed the loss and wrote its presence again.
      await until(
        async () => {
          const body = await (await api(one, "/api/rooms/w/presence")).json().catch(() => ({ members: [] }));
          return body.members?.some((m: { id: string }) => m.id === "ann") ?? false;
        },
        10_000,
        "ann's presence written again",
      );
      const bob = await client(one, "bob");
      const rejoined = await bob.request({ type: "join", room: "w", since: { epoch: joined.epoch, offset: 1 } });
      assert.equal(rejoined.recovered, false, "the history was lost, and the client is told");
      assert.notEqual(rejoined.epoch, joined.epoch, "a new epoch");
      const ack = await bob.request({ type: "publish", room: "w", data: "after" });
      assert.equal(ack.offset, 1);
      assert.equal((await ann.next((f) => f.type === "message" && f.data === "after", 5000)).offset, 1);
      await ann.close();
      await bob.close();
    } finally {
      await stopMain(one);
    }
  },
);
