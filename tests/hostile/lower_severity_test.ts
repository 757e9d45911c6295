/**
 * Issue "hardening", item 8: `/metrics` was open to anyone; a token outlived its `exp` by up to a
 * heartbeat; one damaged block of stored history made a range of it answer 500 for good (and a
 * damaged commit-log record stopped start-up). (`direct`'s `delivered` count: tests/ws_test.ts.)
 */
import assert from "node:assert/strict";
import { ManualClock } from "../../lib/clock.ts";
import { openKvStore } from "../../lib/engine/kv/open.ts";
import { recover } from "../../lib/engine/store.ts";
import type { NewMessage } from "../../lib/protocol.ts";
import { signToken } from "../../lib/auth.ts";
import { isType, TestClient } from "../_client.ts";
import { startTestServer, type TestServer } from "../_server.ts";
import { quiet } from "../_wait.ts";

Deno.test("/metrics: loopback callers, or the bearer of ROOMCAST_METRICS_KEY; nobody else", async () => {
  const remote = { remoteAddr: { transport: "tcp" as const, hostname: "203.0.113.7", port: 5555 } };
  const loopback = { remoteAddr: { transport: "tcp" as const, hostname: "127.0.0.1", port: 5555 } };
  type Info = typeof remote;
  const get = async (server: TestServer, info: Info, headers: Record<string, string> = {}) =>
    await server.app.fetch(new Request("http://localhost/metrics", { headers }), info);
  {
    await using server = await startTestServer();
    assert.equal((await get(server, loopback)).status, 200);
    const outside = await get(server, remote);
    assert.equal(outside.status, 403);
    assert.match((await outside.json()).error.message, /ROOMCAST_METRICS_KEY/);
    const proxied = await get(server, loopback, { "x-forwarded-for": "203.0.113.7" });
    assert.equal(proxied.status, 403, "a proxy on this machine does not make the world loopback");
    await proxied.body?.cancel();
  }
  {
    await using server = await startTestServer({ metricsKey: "scrape-me" });
    const keyed = await get(server, remote, { authorization: "Bearer scrape-me" });
    assert.equal(keyed.status, 200);
    assert.match(await keyed.text(), /roomcast_connections /);
    const wrong = await get(server, remote, { authorization: "Bearer nope" });
    assert.equal(wrong.status, 401);
    await wrong.body?.cancel();
  }
});

Deno.test("a connection gets nothing once its token expires, even between heartbeats", async () => {
  const secret = "exp-secret";
  await using server = await startTestServer({ authSecret: secret, heartbeatMs: 60_000 });
  const exp = Math.floor(Date.now() / 1000) + 2;
  const expiring = await TestClient.json(server.ws(`/ws?token=${await signToken({ sub: "short", exp }, secret)}`));
  await expiring.next(isType("welcome"));
  await expiring.request({ type: "join", room: "x" });
  const lasting = await signToken({ sub: "long", exp: exp + 3600 }, secret);
  const publisher = await TestClient.json(server.ws(`/ws?token=${lasting}`));
  await publisher.next(isType("welcome"));
  await publisher.request({ type: "join", room: "x" });
  assert.equal((await publisher.request({ type: "publish", room: "x", data: "before" })).type, "ack");
  assert.equal((await expiring.next(isType("message"))).data, "before");
  await quiet(exp * 1000 - Date.now() + 50, "past the token's exp");
  await publisher.request({ type: "publish", room: "x", data: "after" });
  const closed = await expiring.closed;
  assert.deepEqual([closed.code, closed.reason], [1008, "Token expired"]);
  assert.deepEqual(expiring.unread.filter(isType("message")), [], "the message after exp never reached it");
  assert.equal(expiring.unread.find(isType("error"))?.code, "unauthorized");
  await publisher.close();
});

const clock = new ManualClock();
const message = (room: string, i: number): NewMessage => ({
  type: "message",
  room,
  id: `m${i}`,
  from: { id: "u", name: "U" },
  data: i,
  ts: clock.now(),
});

Deno.test("a damaged block of history is logged once and skipped; the rest stays readable", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/rc.kv`;
  const options = { historyLimit: 100, historyTtlMs: undefined, clock, sequencer: "kv" as const };
  let store = await openKvStore(path, options);
  const stored = [];
  for (let i = 1; i <= 5; i++) stored.push((await store.append(message("d", i))).message);
  await store.close();
  // Overwrite offset 3's block (sequencer kv: one block per message) with bytes that are not JSON.
  const kv = await Deno.openKv(path);
  const epoch = stored[0]?.epoch as string;
  await kv.set(["rc1", "msg", "d", epoch, 3, 0], new Uint8Array([0xff, 0xfe, 0x7b]));
  kv.close();

  store = await openKvStore(path, options);
  const logged: string[] = [];
  const error = console.error;
  console.error = (...args: unknown[]) => void logged.push(args.join(" "));
  try {
    for (let i = 0; i < 2; i++) {
      const page = await store.read("d", { limit: 10 });
      assert.deepEqual(page.messages.map((m) => m.offset), [1, 2, 4, 5]);
    }
    const back = await store.read("d", { before: 4, limit: 10 });
    assert.deepEqual(back.messages.map((m) => m.offset), [1, 2]);
    const across = await recover(store, "d", { epoch, offset: 2 }, 100);
    assert.equal(across.recovered, false, "a recovery across the damage says it can't be exact");
    const past = await recover(store, "d", { epoch, offset: 3 }, 100);
    assert.deepEqual([past.recovered, past.messages.map((m) => m.offset)], [true, [4, 5]]);
  } finally {
    console.error = error;
    await store.close();
  }
  assert.equal(logged.filter((line) => /can't be read/.test(line)).length, 1, "logged once");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a damaged commit-log record is moved aside at start-up, which goes on", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/rc.kv`;
  const kv = await Deno.openKv(path);
  await kv.set(["rc1", "log", 7, 0], new TextEncoder().encode('{"type":"message","room":'));
  kv.close();
  const errors: string[] = [];
  const error = console.error;
  console.error = (...args: unknown[]) => void errors.push(args.join(" "));
  let store;
  try {
    store = await openKvStore(path, { historyLimit: 100, historyTtlMs: undefined, clock, sequencer: "local" });
  } finally {
    console.error = error;
  }
  try {
    assert.match(errors.join("\n"), /commit log record 7 can't be read/);
    assert.equal((await store.append(message("l", 1))).message.offset, 1, "the store works");
  } finally {
    await store.close();
  }
  const after = await Deno.openKv(path);
  try {
    assert.equal((await after.get(["rc1", "log", 7, 0])).value, null, "out of the log");
    assert.notEqual((await after.get(["rc1", "damaged-log", 7, 0])).value, null, "kept aside for a look");
  } finally {
    after.close();
  }
  await Deno.remove(dir, { recursive: true });
});
