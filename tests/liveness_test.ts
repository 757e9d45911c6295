/** Heartbeats, dead peers, slow consumers, /healthz, /metrics and graceful shutdown. */
import assert from "node:assert/strict";
import { VERSION } from "../lib/version.ts";
import { ManualClock } from "../lib/clock.ts";
import { isType, TestClient } from "./_client.ts";
import { startMain } from "./_process.ts";
import { postJson, startTestServer } from "./_server.ts";
import { until } from "./_wait.ts";
import { RawWsClient } from "./_raw_ws.ts";

/** A WebSocket client over plain TCP that completes the handshake and then never reads or answers. */
async function deadPeer(url: string): Promise<Deno.TcpConn> {
  const { hostname, port, pathname } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  const request = `GET ${pathname} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
  await conn.write(new TextEncoder().encode(request));
  const buf = new Uint8Array(1024);
  const n = await conn.read(buf);
  assert.match(new TextDecoder().decode(buf.subarray(0, n ?? 0)), /^HTTP\/1.1 101/);
  return conn;
}

Deno.test("heartbeat: quiet /ws peers pinged, silent ones closed with 4000 and removed", async (t) => {
  const clock = new ManualClock();
  await using server = await startTestServer({ clock, heartbeat: false, heartbeatMs: 100 });
  const alive = await server.joined("hb", "?name=Alive");
  const silent = await server.joined("hb", "?name=Silent");

  await t.step(
    "a peer nothing was sent to for an interval is pinged; one that answers stays, a silent one is closed at two intervals",
    async () => {
      server.hub.tick();
      for (let i = 0; i < 2; i++) {
        clock.advance(100);
        server.hub.tick();
        await alive.next(isType("ping"));
        if (i === 0) await silent.next(isType("ping"));
        alive.send({ type: "pong" });
        assert.equal((await alive.request({ type: "ping" })).type, "pong");
      }
      const closed = await silent.closed;
      assert.equal(closed.code, 4000);
      assert.equal(closed.reason, "Heartbeat timeout");
      assert.equal(silent.unread.filter(isType("ping")).length, 0, "pinged once, not at every tick");
    },
  );

  await t.step("the dead peer's presence is removed and others are told", async () => {
    const leave = await alive.next((f) => f.type === "member" && f.event === "leave");
    assert.equal(leave.user.name, "Silent");
    assert.deepEqual((await server.hub.presence("hb")).map((m) => m.name), ["Alive"]);
    assert.equal(server.metrics.closes.get("heartbeat"), 1);
  });
  await alive.close();
});

Deno.test("heartbeat timer runs by itself with the real clock", async () => {
  await using server = await startTestServer({ heartbeatMs: 50 });
  const silent = await server.joined("hb2");
  await silent.next(isType("ping"), 2000);
  assert.equal((await silent.closed).code, 4000);
});

Deno.test("raw peers that stop answering WebSocket pings are dropped with their presence", async () => {
  await using server = await startTestServer({ heartbeatMs: 1000 });
  const watcher = await server.joined("lobby");
  const conn = await deadPeer(server.ws("/"));
  await watcher.next((f) => f.type === "member" && f.event === "join");
  assert.equal((await server.hub.presence("lobby")).length, 2);
  const leave = await watcher.next((f) => f.type === "member" && f.event === "leave", 5000);
  assert.match(leave.user.id, /^guest-/);
  assert.equal((await server.hub.presence("lobby")).length, 1);
  conn.close();
  await watcher.close();
});

Deno.test("a consumer that stops reading is closed with 4008 once its queue passes the cap", async () => {
  await using server = await startTestServer({ limits: { sendQueueBytes: 256 * 1024 } });
  const reader = await server.joined("firehose");
  const conn = await deadPeer(server.ws("/raw/firehose"));
  await until(async () => (await server.hub.presence("firehose")).length === 2, 3000, "the stalled peer to join");
  const chunk = "y".repeat(60_000);
  let sent = 0;
  for (; sent < 600 && (await server.hub.presence("firehose")).length === 2; sent++) {
    const response = await postJson(server, "/api/rooms/firehose/messages", { data: chunk });
    assert.equal(response.status, 201);
    await response.body?.cancel();
  }
  assert.ok(sent < 600, "the stalled peer was dropped before 36 MB were queued for it");
  assert.equal(server.metrics.closes.get("slow_consumer"), 1);
  for (let i = 1; i <= sent; i++) assert.equal((await reader.next(isType("message"))).offset, i);
  conn.close();
  await reader.close();
});

Deno.test("live frames for a reader that stalls wait in order beyond Deno's queue, and all arrive when it reads again", async () => {
  await using server = await startTestServer({
    limits: { sendQueueBytes: 32 * 1024 * 1024, publishBurst: 10_000, userPublishBurst: 10_000 },
  });
  const stalled = await RawWsClient.connect(server.ws("/ws?name=Stalled"));
  assert.ok(await stalled.readUntil(() => stalled.texts.length >= 1), "welcome");
  await stalled.send(JSON.stringify({ type: "join", room: "held" }));
  assert.ok(await stalled.readUntil(() => stalled.texts.some((t) => t.startsWith('{"type":"joined"'))), "joined");
  const reader = await server.joined("held", "?name=Reader");
  const publisher = await server.joined("held", "?name=Pub");
  // 600 × 12 KB: far more than the kernel's socket buffers take for the stalled reader.
  const pad = "z".repeat(12_000);
  for (let i = 1; i <= 600; i++) publisher.send({ type: "publish", room: "held", data: { i, pad }, ref: i });
  for (let i = 1; i <= 600; i++) assert.equal((await reader.next(isType("message"), 10_000)).offset, i);
  const metrics = await (await server.fetch("/metrics")).text();
  const queued = Number(/^roomcast_send_queue_max_bytes (\d+)/m.exec(metrics)?.[1]);
  assert.ok(queued > 1_000_000, `the stalled reader's backlog is held (${queued} bytes)`);
  const messages = () => stalled.texts.filter((t) => t.startsWith('{"type":"message"'));
  assert.ok(await stalled.readUntil(() => messages().length >= 600 || stalled.closeCode !== undefined, 20_000));
  assert.equal(stalled.closeCode, undefined);
  assert.deepEqual(messages().map((t) => JSON.parse(t).offset), Array.from({ length: 600 }, (_, i) => i + 1));
  assert.equal(server.metrics.closes.get("slow_consumer"), 0);
  stalled.close();
  await Promise.all([reader.close(), publisher.close()]);
});

Deno.test("a burst of 400 acks to a client that reads is not a slow consumer", async () => {
  await using server = await startTestServer({ kv: true, limits: { publishBurst: 1000, userPublishBurst: 1000 } });
  const c = await server.joined("burst");
  for (let i = 1; i <= 400; i++) c.send({ type: "publish", room: "burst", data: i, ref: i });
  const last = await c.next((f) => f.ref === 400, 5000);
  assert.equal(last.offset, 400);
  assert.equal(server.metrics.closes.get("slow_consumer"), 0);
  await c.close();
});

Deno.test("/healthz, /metrics and graceful drain", async (t) => {
  const server = await startTestServer({ kv: true });
  const a = await server.joined("m", "?name=A");
  const b = await server.joined("m", "?name=B");

  await t.step("/healthz is 200 ok while serving", async () => {
    const response = await server.fetch("/healthz");
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { status: "ok", version: VERSION });
  });

  await t.step("/metrics reports connections, rooms, messages, deliveries and errors by code", async () => {
    await a.request({ type: "publish", room: "m", data: 1 });
    await b.next(isType("message"));
    a.send("not json");
    await a.next(isType("error"));
    // The local sequencer delivers first and stores right after.
    await until(() => server.metrics.storeAppends.value === 1, 3000, "the message to be stored");
    const response = await server.fetch("/metrics");
    assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0.0.4/);
    const text = await response.text();
    assert.match(text, /^roomcast_connections 2$/m);
    assert.match(text, /^roomcast_rooms 1$/m);
    assert.match(text, /^roomcast_messages_in_total 1$/m);
    assert.match(text, /^roomcast_errors_total\{code="bad_request"\} 1$/m);
    assert.match(text, /^# TYPE roomcast_deliveries_total counter$/m);
    assert.match(text, /^roomcast_send_queue_bytes \d+$/m);
    assert.match(text, /^roomcast_send_queue_max_bytes \d+$/m);
    assert.match(text, /^# TYPE roomcast_dropped_total counter$/m);
    assert.match(text, /^roomcast_store_appends_total 1$/m);
    assert.match(text, /^roomcast_store_append_seconds_count 1$/m);
    const deliveries = Number(/^roomcast_deliveries_total (\d+)$/m.exec(text)?.[1]);
    assert.ok(deliveries >= 6, `welcome×2, joined×2, member, message, ack, error: got ${deliveries}`);
  });

  await t.step("drain: healthz 503, every socket closed with 1001, then the server stops", async () => {
    const draining = server.drain();
    const health = await server.app.fetch(new Request("http://x/healthz"));
    assert.equal(health.status, 503);
    assert.deepEqual(await health.json(), { status: "draining", version: VERSION });
    const [ca, cb] = await Promise.all([a.closed, b.closed]);
    assert.equal(ca.code, 1001);
    assert.equal(cb.code, 1001);
    await draining;
    await assert.rejects(server.fetch("/healthz"));
  });
});

Deno.test("main.ts: SIGTERM drains and exits within 5 s; history survives the restart", async () => {
  const dir = await Deno.makeTempDir();
  const env = { PORT: "0", HOSTNAME: "127.0.0.1", ROOMCAST_KV_PATH: `${dir}/data/rc.kv` };
  const start = () => startMain(env);

  const first = await start();
  const c = await TestClient.json(first.url.replace("http", "ws") + "/ws");
  await c.next(isType("welcome"));
  assert.equal((await c.request({ type: "join", room: "keep" })).offset, 0);
  for (let i = 1; i <= 3; i++) assert.equal((await c.request({ type: "publish", room: "keep", data: i })).offset, i);
  const started = Date.now();
  first.child.kill("SIGTERM");
  assert.equal((await c.closed).code, 1001);
  const status = await first.child.status;
  assert.ok(Date.now() - started < 5000, "exited within 5 s");
  assert.equal(status.code, 0);
  await first.reader.cancel();

  const second = await start();
  const history = await (await fetch(`${second.url}/api/rooms/keep/messages`)).json();
  assert.deepEqual(history.messages.map((m: { data: number }) => m.data), [1, 2, 3]);
  const next = await (await fetch(`${second.url}/api/rooms/keep/messages`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ data: 4 }),
  })).json();
  assert.equal(next.offset, 4, "offsets continue after the restart");
  assert.equal(next.epoch, history.epoch, "the epoch survives the restart");
  second.child.kill("SIGTERM");
  assert.equal((await second.child.status).code, 0);
  await second.reader.cancel();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("main.ts: one process per KV file; after SIGKILL no offset names two messages", async () => {
  const dir = await Deno.makeTempDir();
  const env = { PORT: "0", HOSTNAME: "127.0.0.1", ROOMCAST_KV_PATH: `${dir}/rc.kv` };
  const first = await startMain(env);

  // A second server on the same file is refused at start-up, with the way out in the message.
  const second = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--unstable-kv", "-A", new URL("../main.ts", import.meta.url).pathname],
    env,
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.notEqual(second.code, 0);
  assert.match(new TextDecoder().decode(second.stderr), /in use by another roomcast process.*ROOMCAST_SEQUENCER=kv/s);

  const wsUrl = (url: string) => url.replace("http", "ws") + "/ws";
  const publisher = await TestClient.json(wsUrl(first.url));
  const reader = await TestClient.json(wsUrl(first.url));
  await Promise.all([publisher.next(isType("welcome")), reader.next(isType("welcome"))]);
  const joined = await reader.request({ type: "join", room: "crash" });
  await publisher.request({ type: "join", room: "crash" });
  const seen = new Map<number, unknown>();
  for (let i = 1; i <= 30; i++) publisher.send({ type: "publish", room: "crash", data: `m${i}`, ref: i });
  for (let i = 1; i <= 30; i++) {
    const message = await reader.next(isType("message"));
    seen.set(message.offset as number, message.data);
  }
  const last = Math.max(...seen.keys());
  first.child.kill("SIGKILL"); // no drain, no release: whatever was not committed yet is lost
  await first.child.status;
  await first.reader.cancel();
  await Promise.all([publisher.closed, reader.closed]);

  const restarted = await startMain(env);
  const again = await TestClient.json(wsUrl(restarted.url));
  await again.next(isType("welcome"));
  const rejoined = await again.request({ type: "join", room: "crash", since: { epoch: joined.epoch, offset: last } });
  assert.equal(rejoined.epoch, joined.epoch, "the epoch and its stored history survive the crash");
  const next = await again.request({ type: "publish", room: "crash", data: "after" });
  assert.ok(
    (next.offset as number) > last,
    `the first offset after the crash (${next.offset}) is above all seen (${last})`,
  );
  const history = await (await fetch(`${restarted.url}/api/rooms/crash/messages?limit=100`)).json();
  const offsets = history.messages.map((m: { offset: number }) => m.offset);
  assert.deepEqual(offsets, [...offsets].sort((a: number, b: number) => a - b));
  for (const m of history.messages as { offset: number; data: unknown }[]) {
    if (seen.has(m.offset)) {
      assert.equal(m.data, seen.get(m.offset), `offset ${m.offset} still names what was delivered`);
    }
  }
  // Offsets up to the reservation may have been delivered and lost: the client can't be sure it
  // missed nothing, so it is told so and reloads history.
  assert.equal(rejoined.recovered, false);
  await again.close();
  restarted.child.kill("SIGTERM");
  assert.equal((await restarted.child.status).code, 0);
  await restarted.reader.cancel();
  await Deno.remove(dir, { recursive: true });
});
