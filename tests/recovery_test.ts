/**
 * "Nothing lost": a client that rejoins with `since` gets exactly what it missed, in order,
 * before anything live — while a publisher floods the room, across a server restart — or is told
 * it can't (`recovered: false`) when the epoch changed or history was trimmed.
 */
import assert from "node:assert/strict";
import { type Frame, isType, TestClient } from "./_client.ts";
import { RawWsClient } from "./_raw_ws.ts";
import { postJson, startTestServer, type TestServer } from "./_server.ts";
import { breathe, quiet, until } from "./_wait.ts";

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Collects this client's message offsets for `room` until it has seen `last`. */
async function offsetsUntil(client: TestClient<Frame>, room: string, last: number, ms = 10_000): Promise<number[]> {
  const seen: number[] = [];
  while (seen.at(-1) !== last) {
    const m = await client.next((f) => f.type === "message" && f.room === room, ms);
    seen.push(m.offset);
    if (seen.length > last + 10) break;
  }
  return seen;
}

for (const kv of [false, true]) {
  Deno.test(`rejoin with since while a publisher floods (${kv ? "Deno KV" : "memory"} store): exact offsets`, () =>
    floodRejoin(kv));
}

async function floodRejoin(kv: boolean): Promise<void> {
  await using server = await startTestServer({ kv, limits: { publishBurst: 100_000, userPublishBurst: 100_000 } });
  const publisher = await server.joined("flood", "?name=Pub");
  const reader = await server.joined("flood", "?name=Reader");
  const TOTAL = 600;
  const acked: number[] = [];
  const publishing = (async () => {
    for (let i = 1; i <= TOTAL; i += 10) {
      for (let j = i; j < i + 10; j++) publisher.send({ type: "publish", room: "flood", data: j, ref: j });
      const ack = await publisher.next((f) => f.ref === i + 9, 10_000);
      acked.push(ack.offset);
      await breathe();
    }
  })();

  const before = await offsetsUntil(reader, "flood", 50);
  assert.deepEqual(before, range(1, 50));
  const { epoch } = (await reader.request({ type: "history", room: "flood", limit: 1 })) as Frame;
  await reader.close();
  await until(() => (acked.at(-1) ?? 0) >= 150, 10_000, "the publisher to pass offset 150");

  const again = await server.client("?name=Reader");
  const joined = await again.request({ type: "join", room: "flood", since: { epoch, offset: 50 } });
  assert.equal(joined.type, "joined");
  assert.equal(joined.recovered, true);
  assert.ok(joined.offset >= 150, `the room had moved on to ${joined.offset}`);
  const after = await offsetsUntil(again, "flood", TOTAL);
  await publishing;
  assert.deepEqual(after, range(51, TOTAL), "every missed and live offset exactly once, in order");
  assert.ok((acked.at(-1) ?? 0) === TOTAL);
  await Promise.all([publisher.close(), again.close()]);
}

Deno.test("recovered: false when the epoch changed or the history was trimmed", async (t) => {
  await using server = await startTestServer({ historyLimit: 10 });
  const publish = async (room: string, n: number) => {
    for (let i = 0; i < n; i++) {
      await (await postJson(server, `/api/rooms/${room}/messages`, { data: i })).body?.cancel();
    }
  };

  await t.step("since the latest offset: recovered, nothing to replay", async () => {
    await publish("t1", 3);
    const c = await server.client();
    const position = await c.request({ type: "join", room: "t1" });
    await c.request({ type: "leave", room: "t1" });
    const joined = await c.request({ type: "join", room: "t1", since: { epoch: position.epoch, offset: 3 } });
    assert.deepEqual([joined.recovered, joined.offset], [true, 3]);
    assert.equal((await c.request({ type: "ping" })).type, "pong");
    assert.equal(c.unread.filter(isType("message")).length, 0);
    await c.close();
  });

  await t.step("history trimmed past the position: recovered false, no replay", async () => {
    await publish("t2", 3);
    const c = await server.client();
    const { epoch } = await c.request({ type: "join", room: "t2" });
    await c.close();
    await publish("t2", 20);
    const d = await server.client();
    const joined = await d.request({ type: "join", room: "t2", since: { epoch, offset: 3 } });
    assert.deepEqual([joined.recovered, joined.offset, joined.epoch], [false, 23, epoch]);
    assert.equal((await d.request({ type: "ping" })).type, "pong");
    assert.equal(d.unread.filter(isType("message")).length, 0, "no partial replay");
    const history = await d.request({ type: "history", room: "t2", limit: 100 });
    assert.deepEqual(history.messages.map((m: Frame) => m.offset), range(14, 23), "the last 10 are kept");
    await d.close();
  });

  await t.step("history reset (new epoch): recovered false with the new epoch", async () => {
    await publish("t3", 3);
    const c = await server.client();
    const { epoch } = await c.request({ type: "join", room: "t3" });
    await c.close();
    const reset = await (await server.fetch("/api/rooms/t3/messages?confirm=t3", { method: "DELETE" })).json();
    await publish("t3", 2);
    const d = await server.client();
    const joined = await d.request({ type: "join", room: "t3", since: { epoch, offset: 3 } });
    assert.deepEqual([joined.recovered, joined.epoch, joined.offset], [false, reset.epoch, 2]);
    await d.close();
  });

  await t.step("an unknown epoch or a position ahead of the room: recovered false", async () => {
    const c = await server.client();
    const unknown = await c.request({ type: "join", room: "t1", since: { epoch: "nope", offset: 1 } });
    assert.equal(unknown.recovered, false);
    await c.request({ type: "leave", room: "t1" });
    const ahead = await c.request({ type: "join", room: "t1", since: { epoch: unknown.epoch, offset: 99 } });
    assert.equal(ahead.recovered, false);
    await c.close();
  });
});

async function kvServer(path: string): Promise<TestServer> {
  return await startTestServer({ kv: true, kvPath: path });
}

Deno.test("a server restart between disconnect and rejoin loses nothing (same KV file)", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/rc.kv`;
  const first = await kvServer(path);
  const reader = await first.joined("restart");
  for (let i = 1; i <= 5; i++) await (await postJson(first, "/api/rooms/restart/messages", { data: i })).body?.cancel();
  const seen = await offsetsUntil(reader, "restart", 5);
  assert.deepEqual(seen, range(1, 5));
  const { epoch } = await reader.request({ type: "history", room: "restart", limit: 1 });
  await first.drain();
  assert.equal((await reader.closed).code, 1001);

  await using second = await kvServer(path);
  for (let i = 6; i <= 9; i++) {
    await (await postJson(second, "/api/rooms/restart/messages", { data: i })).body?.cancel();
  }
  const again = await second.client();
  const joined = await again.request({ type: "join", room: "restart", since: { epoch, offset: 5 } });
  assert.deepEqual([joined.recovered, joined.epoch, joined.offset], [true, epoch, 9]);
  const replay = await offsetsUntil(again, "restart", 9);
  assert.deepEqual(replay, range(6, 9));
  await (await postJson(second, "/api/rooms/restart/messages", { data: 10 })).body?.cancel();
  assert.equal((await again.next(isType("message"))).offset, 10, "then live");
  await again.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a lost store (new KV file) changes the epoch: recovered false", async () => {
  const dir = await Deno.makeTempDir();
  const first = await kvServer(`${dir}/a.kv`);
  const c = await first.joined("lost");
  await c.request({ type: "publish", room: "lost", data: 1 });
  const { epoch } = await c.request({ type: "history", room: "lost", limit: 1 });
  await first.drain();
  await c.closed;
  await using second = await kvServer(`${dir}/b.kv`);
  const d = await second.client();
  const joined = await d.request({ type: "join", room: "lost", since: { epoch, offset: 1 } });
  assert.equal(joined.recovered, false);
  assert.notEqual(joined.epoch, epoch);
  assert.equal(joined.offset, 0);
  await d.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a recovery larger than the send-queue cap is paced for a slow reader, not cut off", async () => {
  await using server = await startTestServer({ limits: { sendQueueBytes: 256 * 1024 } });
  const pad = "x".repeat(10_000);
  const first = await publishMany(server, "big-replay", 1, pad);
  for (let i = 2; i <= 1000; i++) await publishMany(server, "big-replay", i, pad);
  const reader = await RawWsClient.connect(server.ws("/ws"));
  assert.ok(await reader.readUntil(() => reader.texts.length >= 1), "welcome");
  await reader.send(JSON.stringify({ type: "join", room: "big-replay", since: { epoch: first.epoch, offset: 0 } }));
  // 10 MB of replay against a reader that stalls: more than the kernel buffers hold.
  await quiet(300, "the reader stalls while the replay fills its send queue");
  for (let i = 1001; i <= 1005; i++) await publishMany(server, "big-replay", i, "live");
  const messages = () => reader.texts.filter((t) => t.startsWith('{"type":"message"'));
  assert.ok(await reader.readUntil(() => messages().length >= 1005 || reader.closeCode !== undefined, 20_000));
  assert.equal(reader.closeCode, undefined, "not closed as a slow consumer");
  assert.deepEqual(messages().map((t) => JSON.parse(t).offset), range(1, 1005));
  assert.equal(server.metrics.closes.get("slow_consumer"), 0);
  reader.close();
});

async function publishMany(server: TestServer, room: string, n: number, pad: string) {
  const response = await postJson(server, `/api/rooms/${room}/messages`, { data: { n, pad } });
  return await response.json();
}
