/**
 * Issue "hardening", item 2 (and the connection rate of item 6): with `ulimit -n 1024`, 1,100
 * WebSockets from one client used to end the process (`Too many open files` from the accept loop),
 * and a request whose body was dripped a byte at a time was kept forever. Now connections are
 * capped globally (below the descriptor limit) and per address, new connections per address are
 * rate limited, the server listens again after running out of descriptors, and a body has
 * `ROOMCAST_BODY_TIMEOUT` to arrive.
 */
import assert from "node:assert/strict";
import { ManualClock } from "../../lib/clock.ts";
import { isType, TestClient } from "../_client.ts";
import { startMain, stopMain } from "../_process.ts";
import { startTestServer } from "../_server.ts";
import { until } from "../_wait.ts";

/** A client refused at admission: the upgrade completes, then an error frame and close 1013. */
async function refusedSocket(url: string): Promise<{ code: number; error: Record<string, string> }> {
  const c = await TestClient.json(url);
  const closed = await c.closed;
  return { code: closed.code, error: c.unread.find(isType("error")) as Record<string, string> };
}

Deno.test("per-address cap: the next WebSocket gets 1013, SSE 429 with Retry-After; a closed one frees its slot", async () => {
  await using server = await startTestServer({ maxConnectionsPerIp: 3 });
  const open = await Promise.all([1, 2, 3].map(() => server.client()));
  const refused = await refusedSocket(server.ws());
  assert.equal(refused.code, 1013);
  assert.deepEqual([refused.error.code, refused.error.message], [
    "rate_limited",
    "Too many connections from your address",
  ]);
  const sse = await server.fetch("/events?room=a");
  assert.equal(sse.status, 429);
  assert.equal(sse.headers.get("retry-after"), "5");
  await sse.body?.cancel();
  assert.equal((await server.fetch("/healthz")).status, 200, "plain HTTP is not counted");
  await open[0]?.close();
  const again = await server.client();
  assert.equal(again.welcome?.type, "welcome", "a closed connection gave its slot back");
  assert.equal(server.admission.open, 3);
  assert.equal(server.metrics.refused.get("address"), 2);
  await Promise.all([again, ...open.slice(1)].map((c) => c?.close()));
});

Deno.test("global cap: 1013 with unavailable once the server is full; refused-by-auth sockets give their slots back", async () => {
  await using server = await startTestServer({ maxConnections: 2, maxConnectionsPerIp: 0, authSecret: "s" });
  for (let i = 0; i < 5; i++) {
    const noToken = await refusedSocket(server.ws());
    assert.equal(noToken.code, 1008, "a refused token closes 1008 and frees its slot");
  }
  await until(() => server.admission.open === 0);
  const token = await (await server.fetch("/api/tokens", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ sub: "u" }),
  })).json();
  const url = server.ws(`/ws?token=${token.token}`);
  const a = await TestClient.json(url);
  const b = await TestClient.json(url);
  await Promise.all([a.next(isType("welcome")), b.next(isType("welcome"))]);
  const full = await refusedSocket(url);
  assert.equal(full.code, 1013);
  assert.deepEqual([full.error.code, full.error.message], ["unavailable", "The server is full: try again later"]);
  assert.equal(server.metrics.refused.get("full"), 1);
  await Promise.all([a.close(), b.close()]);
});

Deno.test("connection rate per address: a burst, then 1013 until the bucket refills", async () => {
  const clock = new ManualClock(Date.now());
  await using server = await startTestServer({ clock, connectBurst: 5, connectWindowMs: 10_000, heartbeat: false });
  const open = [];
  for (let i = 0; i < 5; i++) open.push(await server.client());
  const refused = await refusedSocket(server.ws());
  assert.equal(refused.code, 1013);
  assert.match(String(refused.error.message), /Connecting too often/);
  clock.advance(2_000); // one token back (5 per 10 s)
  open.push(await server.client());
  assert.equal((await refusedSocket(server.ws())).code, 1013);
  await Promise.all(open.map((c) => c.close()));
});

Deno.test("behind a trusted proxy, the per-address limits count X-Forwarded-For's client, not the proxy", async () => {
  const sse = async (server: Awaited<ReturnType<typeof startTestServer>>, client: string) => {
    const response = await server.fetch("/events?room=p", { headers: { "x-forwarded-for": `${client}, 10.0.0.1` } });
    return response;
  };
  {
    await using server = await startTestServer({ maxConnectionsPerIp: 1, trustedProxies: ["127.0.0.1", "10.0.0.1"] });
    const a = await sse(server, "198.51.100.1");
    const b = await sse(server, "198.51.100.2");
    const again = await sse(server, "198.51.100.1");
    assert.deepEqual([a.status, b.status, again.status], [200, 200, 429]);
    await Promise.all([a, b, again].map((r) => r.body?.cancel()));
  }
  {
    // Without ROOMCAST_TRUSTED_PROXIES the header is the client's word: ignored.
    await using server = await startTestServer({ maxConnectionsPerIp: 1 });
    const a = await sse(server, "198.51.100.1");
    const b = await sse(server, "198.51.100.2");
    assert.deepEqual([a.status, b.status], [200, 429]);
    await Promise.all([a, b].map((r) => r.body?.cancel()));
  }
});

Deno.test("a body dripped a byte at a time is answered 408 after ROOMCAST_BODY_TIMEOUT; others are served meanwhile", async () => {
  await using server = await startTestServer({ bodyTimeoutMs: 300 });
  const { port } = new URL(server.url);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(port) });
  const started = Date.now();
  await conn.write(new TextEncoder().encode(
    "POST /api/rooms/slow/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
      'Content-Length: 100\r\n\r\n{"data"',
  ));
  const drip = setInterval(() => conn.write(new TextEncoder().encode(" ")).catch(() => {}), 50);
  assert.equal((await server.fetch("/healthz")).status, 200);
  const buffer = new Uint8Array(4096);
  const n = await conn.read(buffer);
  clearInterval(drip);
  const head = new TextDecoder().decode(buffer.subarray(0, n ?? 0));
  assert.match(head, /^HTTP\/1.1 408/);
  assert.match(head, /"code":"timeout"/);
  const took = Date.now() - started;
  assert.ok(took >= 250 && took < 3000, `answered after ${took} ms`);
  conn.close();
});

Deno.test("415 for a write whose body is not declared JSON (a cross-site form or no-cors fetch can't declare it)", async () => {
  await using server = await startTestServer();
  for (const type of ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""]) {
    const response = await server.fetch("/api/rooms/f/messages", {
      method: "POST",
      headers: type ? { "content-type": type } : {},
      body: '{"data":"forged"}',
    });
    assert.equal(response.status, 415, type);
    assert.equal((await response.json()).error.code, "unsupported_media_type");
  }
  for (const type of ["application/json", "application/json; charset=utf-8", "Application/JSON"]) {
    const response = await server.fetch("/api/rooms/f/messages", {
      method: "POST",
      headers: { "content-type": type },
      body: '{"data":"fine"}',
    });
    assert.equal(response.status, 201, type);
    await response.body?.cancel();
  }
  assert.equal((await server.hub.history("f", { limit: 10 })).messages.length, 3);
});

Deno.test("under ulimit -n 256: connections past the cap get 1013, a flood of bare TCP connections past the descriptor limit doesn't end the process, and it serves again once the flood ends", async () => {
  const dir = await Deno.makeTempDir();
  const server = await startMain({
    PORT: "0",
    HOSTNAME: "127.0.0.1",
    ROOMCAST_KV_PATH: `${dir}/rc.kv`,
    ROOMCAST_CONNECT_RATE: "0",
    ROOMCAST_MAX_CONNECTIONS_PER_IP: "0",
  }, { ulimit: 256, stderr: "piped" });
  const ws = server.url.replace("http", "ws") + "/ws";
  const clients: TestClient[] = [];
  const flood: Deno.Conn[] = [];
  try {
    // 80 % of 256, less 64: 140 connections.
    const codes = new Map<number | string, number>();
    for (let i = 0; i < 180; i++) {
      const c = await TestClient.json(ws);
      const first = await c.next(() => true, 5000);
      if (first.type === "welcome") clients.push(c);
      else {
        const { code } = await c.closed;
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }
    }
    assert.equal(clients.length, 140, "the cap derived from the descriptor limit");
    assert.deepEqual([...codes], [[1013, 40]]);

    // Bare TCP connections that never send a request (the server can't time them out: Deno.serve
    // has no header timeout) until the process runs out of descriptors.
    for (let i = 0; i < 200; i++) {
      try {
        flood.push(await Deno.connect({ hostname: "127.0.0.1", port: Number(new URL(server.url).port) }));
      } catch {
        break;
      }
    }
    const emfile = /stopped accepting connections \(.*Too many open files/;
    await until(() => emfile.test(server.stderr()), 5000, "the server to run out of descriptors");
    for (const conn of flood.splice(0)) conn.close();
    let health = 0;
    await until(
      async () => {
        health = await fetch(`${server.url}/healthz`).then((r) =>
          r.body?.cancel().then(() => r.status)
        ).catch(() => 0) ??
          0;
        return health === 200;
      },
      10_000,
      () => `healthz 200 once the flood ends (${health})`,
    );
    assert.equal(health, 200, "it serves again once the flood ends");
    assert.match(server.stderr(), emfile);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /roomcast_accept_errors_total [1-9]/);
    const alive = clients[0] as TestClient;
    assert.equal((await alive.request({ type: "ping" })).type, "pong", "connections open before the flood still work");
  } finally {
    for (const conn of flood) conn.close();
    await Promise.all(clients.map((c) => c.close()));
    const status = await stopMain(server);
    assert.equal(status.code, 0, "the process was still running and stopped cleanly");
    assert.doesNotMatch(server.stderr(), /Uncaught/);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a soft descriptor limit below the hard one is raised (by Deno) and the cap follows the hard one", async () => {
  const hard = Number(
    new TextDecoder().decode((await new Deno.Command("sh", { args: ["-c", "ulimit -Hn"] }).output()).stdout),
  );
  const dir = await Deno.makeTempDir();
  const server = await startMain({ PORT: "0", HOSTNAME: "127.0.0.1", ROOMCAST_KV_PATH: `${dir}/rc.kv` }, {
    softUlimit: 256,
  });
  try {
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const max = Number(/^roomcast_connections_max (\d+)$/m.exec(metrics)?.[1]);
    assert.ok(Number.isFinite(hard) && hard > 256, `hard limit ${hard}`);
    assert.equal(max, Math.max(16, Math.floor(hard * 0.8) - 64), `main.ts runs with its soft limit raised to ${hard}`);
  } finally {
    await stopMain(server);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("through `deno task start` (its own permissions, not --allow-all) under ulimit -n 1024: the cap follows the descriptor limit", async () => {
  const server = await startMain({
    PORT: "0",
    HOSTNAME: "127.0.0.1",
    ROOMCAST_KV_PATH: ":memory:",
    ROOMCAST_CONNECT_RATE: "0",
    ROOMCAST_MAX_CONNECTIONS_PER_IP: "0",
  }, { task: true, ulimit: 1024, stderr: "piped" });
  const clients: TestClient[] = [];
  try {
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    // 80 % of 1024, less 64 (it was 10,000 when the task could not read the limit).
    assert.equal(Number(/^roomcast_connections_max (\d+)$/m.exec(metrics)?.[1]), 755);
    const ws = server.url.replace("http", "ws") + "/ws";
    let refused = 0;
    for (let batch = 0; batch < 16; batch++) {
      const opened = await Promise.all(Array.from({ length: 50 }, () => TestClient.json(ws)));
      for (const c of opened) {
        if ((await c.next(() => true, 5000)).type === "welcome") clients.push(c);
        else {
          assert.equal((await c.closed).code, 1013);
          refused++;
        }
      }
    }
    assert.equal(clients.length, 755);
    assert.equal(refused, 800 - 755);
    const health = await fetch(`${server.url}/healthz`);
    assert.equal(health.status, 200, "healthz answers with the server full");
    await health.body?.cancel();
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await stopMain(server);
    assert.doesNotMatch(server.stderr(), /Uncaught|NotCapable/);
  }
});
