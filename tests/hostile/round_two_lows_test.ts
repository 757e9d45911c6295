/**
 * Issue "hardening, round two", findings 9 and 10: a page of another site opened Socket.IO 2.x
 * sessions with an `<img>` (no `Origin`); a Socket.IO `1e400` was stored as null; an HTTP body of
 * invalid UTF-8 was stored with U+FFFD (three times its size, past the cap); Redis loading its data
 * and KV conflicts under resets answered 500; a JWT's `crit` header was ignored; a guest could call
 * itself "server" (the name of the backend's messages); a KV file with a damaged page started, took
 * publishes, and failed some history reads for good.
 */
import assert from "node:assert/strict";
import { signToken } from "../../lib/auth.ts";
import { isReservedName } from "../../lib/names.ts";
import { isType, TestClient } from "../_client.ts";
import { postJson, startTestServer } from "../_server.ts";
import { sio4 } from "../_sio.ts";
import { redisTest } from "../_redis.ts";
import { until } from "../_wait.ts";
import { forward } from "../_faulty_kv.ts";
import { kvStoreOver } from "../../lib/engine/kv/open.ts";
import { EngineUnavailable } from "../../lib/engine/store.ts";
import { retryLocked } from "../../lib/engine/kv/format.ts";
import { systemClock } from "../../lib/clock.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name: "a foreign page's request with no Origin (an <img>, a no-cors fetch) opens nothing on any transport",
  ...opts,
  async fn() {
    await using server = await startTestServer();
    const foreign = { "sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors", "sec-fetch-dest": "image" };
    for (const eio of [3, 4]) {
      const response = await server.fetch(`/socket.io/?EIO=${eio}&transport=polling&name=Mallory`, {
        headers: foreign,
      });
      assert.equal(response.status, 403, `EIO=${eio}`);
      await response.body?.cancel();
    }
    const sse = await server.fetch("/events?room=lobby", { headers: { ...foreign, "sec-fetch-site": "same-site" } });
    assert.equal(sse.status, 403);
    await sse.body?.cancel();
    // A WebSocket completes its upgrade (a page can't read a refused one's status) and is told why.
    const upgrade = new WebSocket(server.ws("/ws"), { headers: foreign } as never);
    const frames: string[] = [];
    upgrade.onmessage = (e) => frames.push(e.data as string);
    const code = await new Promise<number>((resolve) => upgrade.onclose = (e) => resolve(e.code));
    assert.equal(code, 1008);
    assert.deepEqual(frames.map((f) => JSON.parse(f).code), ["forbidden"]);
    await until(() => server.admission.open === 0, 2000, "no slot held");
    assert.deepEqual(await server.hub.presence("lobby"), []);
    // The page's own requests, and clients that are no browser, still open sessions.
    for (const site of ["same-origin", "none"]) {
      const own = await server.fetch("/socket.io/?EIO=4&transport=polling", { headers: { "sec-fetch-site": site } });
      assert.equal(own.status, 200, site);
      await own.body?.cancel();
    }
  },
});

Deno.test({
  name: "socket.io: 1e400 is refused with bad_request, as on /ws and HTTP, and nothing is stored",
  ...opts,
  async fn() {
    await using server = await startTestServer();
    const ws = new WebSocket(`${server.url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`);
    const got: string[] = [];
    ws.onmessage = (e) => got.push(String(e.data));
    await new Promise((resolve) => ws.onopen = resolve);
    ws.send("40");
    ws.send('425["message",{"n":1e400}]');
    await until(() => got.some((m) => m.startsWith("435")), 3000, () => `the ack (got ${got})`);
    const ack = got.find((m) => m.startsWith("435")) ?? "";
    assert.match(ack, /bad_request/);
    assert.deepEqual((await server.hub.history("lobby", { limit: 10 })).messages, []);
    ws.close();
    const client = await sio4(server.url, { transports: ["websocket"] });
    assert.equal((await client.request("message", { n: 1e300 }) as { offset: number }).offset, 1, "large, finite");
    client.close();
  },
});

Deno.test("HTTP: a body of invalid UTF-8 is refused, not stored with U+FFFD at three times its size", async () => {
  await using server = await startTestServer();
  const bytes = new Uint8Array([...new TextEncoder().encode('{"data":"'), ...Array(30_000).fill(0xff), 0x22, 0x7d]);
  const response = await server.fetch("/api/rooms/u/messages", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: bytes,
  });
  assert.equal(response.status, 400);
  assert.match((await response.json()).error.message, /UTF-8/);
  assert.deepEqual((await server.hub.history("u", { limit: 10 })).messages, []);
  const fine = await postJson(server, "/api/rooms/u/messages", { data: "héllo ✓" });
  assert.equal(fine.status, 201);
  await fine.body?.cancel();
});

Deno.test("JWT: a token whose header names critical extensions (crit) is refused", async () => {
  const secret = "crit-secret";
  await using server = await startTestServer({ authSecret: secret });
  const valid = await signToken({ sub: "ana" }, secret);
  const [, body] = valid.split(".");
  const b64 = (value: unknown) =>
    btoa(JSON.stringify(value)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const head = b64({ alg: "HS256", typ: "JWT", crit: ["exp-in-the-future"], "exp-in-the-future": true });
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const sig = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`${head}.${body}`)));
  const token = `${head}.${body}.${
    btoa(String.fromCharCode(...sig)).replace(/\+/g, "-").replace(/\//g, "_")
      .replace(/=+$/, "")
  }`;
  const client = await TestClient.json(server.ws(`/ws?token=${token}`));
  const error = await client.next(isType("error"));
  assert.match(error.message, /crit/);
  assert.equal((await client.closed).code, 1008);
  const ok = await TestClient.json(server.ws(`/ws?token=${valid}`));
  assert.equal((await ok.next(isType("welcome"))).user.id, "ana");
  await ok.close();
});

Deno.test("names: server, system, roomcast and their look-alikes are the backend's; a guest asking gets another", async () => {
  for (
    const name of ["server", "Server", "SERVER ", "sеrver", "S e r v e r", "s3rv3r", "ѕystem", "Sýstem", "room_cast"]
  ) {
    assert.ok(isReservedName(name), name);
  }
  for (const name of ["servers", "Ana", "observer", "serve", "system admin"]) assert.ok(!isReservedName(name), name);
  await using server = await startTestServer();
  const guest = await server.client("?name=S%D0%B5rver");
  assert.notEqual(guest.welcome?.user.name, "Sеrver");
  assert.ok(!isReservedName(guest.welcome?.user.name), guest.welcome?.user.name);
  await guest.close();
  const sio = await sio4(server.url, { transports: ["websocket"], auth: { name: "system" } });
  const [joined] = await sio.next("joined") as [{ members: { name: string }[] }];
  assert.ok(joined.members.every((m) => !isReservedName(m.name)));
  sio.close();
});

Deno.test("KV: resets racing each other and publishes, from two instances, answer 2xx or 503, never 500", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const shared = { kv: true, kvPath: `${dir}/rc.kv`, sequencer: "kv" as const };
    await using one = await startTestServer(shared);
    await using two = await startTestServer(shared);
    const statuses = await Promise.all(
      Array.from({ length: 240 }, (_, i) => {
        const server = i % 2 === 0 ? one : two;
        return i % 3 === 0
          ? server.fetch("/api/rooms/r/messages?confirm=r", { method: "DELETE" })
          : postJson(server, "/api/rooms/r/messages", { data: i });
      }).map(async (pending) => {
        const response = await pending;
        await response.body?.cancel();
        return response.status;
      }),
    );
    const counts = Object.groupBy(statuses, (s) => String(s));
    assert.deepEqual(Object.keys(counts).filter((s) => !["200", "201", "503"].includes(s)), [], JSON.stringify(counts));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("KV: a reset whose check keeps failing, and a KV that stays locked, are unavailable (503), not internal", async () => {
  const real = await Deno.openKv(":memory:");
  let conflict = false;
  const conflicting = forward(real, {
    atomic: () => {
      const op = real.atomic();
      return forward(op, { commit: () => conflict ? Promise.resolve({ ok: false }) : op.commit() });
    },
  });
  const store = await kvStoreOver(conflicting, {
    historyLimit: 100,
    historyTtlMs: undefined,
    clock: systemClock,
    sequencer: "kv",
  });
  conflict = true;
  try {
    await assert.rejects(() => store.reset("r"), EngineUnavailable);
  } finally {
    await store.close();
  }
  await assert.rejects(
    () => retryLocked(() => Promise.reject(new Error("database is locked"))),
    (error: Error) => error instanceof EngineUnavailable && /locked/.test(error.message),
  );
});

redisTest(
  "Redis loading its data after a restart: a publish gets 503, not 500, and 201 once it has loaded",
  async (redis) => {
    // Enough keys for a load of about a second when each is slowed (Redis' own test knob).
    const fill = await new Deno.Command("redis-cli", {
      args: ["-p", String(redis.port), "--pipe"],
      stdin: "piped",
      stdout: "null",
    }).spawn();
    const writer = fill.stdin.getWriter();
    await writer.write(new TextEncoder().encode(Array.from({ length: 5000 }, (_, i) => `SET k${i} v\r\n`).join("")));
    await writer.close();
    await fill.status;
    const cli = async (...args: string[]) => {
      const { stdout } = await new Deno.Command("redis-cli", { args: ["-p", String(redis.port), ...args] }).output();
      return new TextDecoder().decode(stdout);
    };
    await cli("BGREWRITEAOF");
    await until(
      async () => {
        const info = await cli("INFO", "persistence");
        return /aof_rewrite_in_progress:0\b/.test(info) && /aof_rewrite_scheduled:0\b/.test(info);
      },
      5000,
      "the AOF rewrite to finish",
    );
    await using server = await startTestServer({ kv: true, redisUrl: redis.url });
    await redis.stop();
    await redis.start(["--key-load-delay", "200", "--loading-process-events-interval-bytes", "1024"]);
    const during = await postJson(server, "/api/rooms/load/messages", { data: 1 });
    const body = await during.json();
    assert.equal(during.status, 503, JSON.stringify(body));
    let after = 0;
    // Every 100 ms: the publishes count against the address's publish rate.
    await until(
      async () => {
        const response = await postJson(server, "/api/rooms/load/messages", { data: 2 });
        await response.body?.cancel();
        after = response.status;
        return after === 201;
      },
      10_000,
      () => `201 once Redis has loaded (${after})`,
      100,
    );
    assert.equal(after, 201);
  },
);

Deno.test({
  name: "a KV file with a damaged page does not start: it says which file and what to do",
  ...opts,
  async fn() {
    const dir = await Deno.makeTempDir();
    const path = `${dir}/rc.kv`;
    try {
      const kv = await Deno.openKv(path);
      for (let r = 0; r < 20; r++) {
        let op = kv.atomic();
        for (let i = 0; i < 200; i++) op = op.set(["filler", r, i], "x".repeat(200));
        await op.commit();
      }
      kv.close();
      const file = await Deno.open(path, { read: true, write: true });
      await file.seek(-8192, Deno.SeekMode.End);
      await file.write(crypto.getRandomValues(new Uint8Array(4096)));
      file.close();
      const main = new URL("../../main.ts", import.meta.url).pathname;
      const { code, stderr } = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--unstable-kv", "--unstable-net", "-A", main],
        env: { PORT: "0", HOSTNAME: "127.0.0.1", ROOMCAST_KV_PATH: path },
        stdout: "null",
        stderr: "piped",
      }).output();
      assert.equal(code, 1);
      const said = new TextDecoder().decode(stderr);
      assert.match(said, /the KV file .*rc\.kv is damaged/);
      assert.match(said, /restore it from a backup or move it/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
