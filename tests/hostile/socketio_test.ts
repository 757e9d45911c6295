/**
 * `/socket.io/` attacked: malformed Engine.IO and Socket.IO packets, JSON nested too deep, bodies
 * too large or too slow, overlapping polls, unknown sessions, too many sessions from one address,
 * a foreign page, floods of requests, and clients that vanish mid-session. Each gets a clear answer
 * or a closed session, and the server keeps serving everyone else.
 */
import assert from "node:assert/strict";
import { eioHandshake, sio4 } from "../_sio.ts";
import { configWith } from "../../lib/config.ts";
import { startTestServer, type TestServer } from "../_server.ts";
import { quiet, until } from "../_wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function sessions(server: TestServer): Promise<number> {
  const text = await (await server.fetch("/metrics")).text();
  return Number(/^roomcast_socketio_sessions (\d+)/m.exec(text)?.[1] ?? NaN);
}

/** A Socket.IO client still works: the server is fine. */
async function stillServes(server: TestServer): Promise<void> {
  const client = await sio4(server.url, { transports: ["websocket"] });
  const ack = await client.request("message", "still here") as { offset: number };
  assert.ok(ack.offset >= 1);
  client.close();
}

/** Opens a raw Engine.IO WebSocket and waits for its open packet. */
async function rawSocket(server: TestServer): Promise<{ ws: WebSocket; closed: Promise<CloseEvent>; got: string[] }> {
  const ws = new WebSocket(server.ws("/socket.io/?EIO=4&transport=websocket"));
  const got: string[] = [];
  ws.onmessage = (e) => got.push(String(e.data));
  const closed = new Promise<CloseEvent>((resolve) => ws.onclose = resolve);
  await new Promise((resolve) => ws.onopen = resolve);
  await until(() => got.length > 0, 2000, "the open packet");
  return { ws, closed, got };
}

Deno.test({
  name: "Engine.IO requests that are wrong get Engine.IO's errors: transport, session, method, version",
  ...opts,
  async fn() {
    await using server = await startTestServer();
    const error = async (path: string, init?: RequestInit) => {
      const response = await server.fetch(path, init);
      return [response.status, await response.json()];
    };
    assert.deepEqual(await error("/socket.io/?EIO=4&transport=carrier-pigeon"), [400, {
      code: 0,
      message: "Transport unknown",
    }]);
    assert.deepEqual(await error("/socket.io/?EIO=4&transport=polling&sid=nope"), [400, {
      code: 1,
      message: "Session ID unknown",
    }]);
    assert.deepEqual(await error("/socket.io/?EIO=4&transport=polling", { method: "POST", body: "x" }), [400, {
      code: 2,
      message: "Bad handshake method",
    }]);
    assert.deepEqual(await error("/socket.io/?EIO=5&transport=polling"), [400, {
      code: 5,
      message: "Unsupported protocol version",
    }]);
    assert.deepEqual(await error("/socket.io/?EIO=4&transport=websocket"), [400, { code: 3, message: "Bad request" }]);
    assert.deepEqual(await error("/socket.io/?EIO=3&transport=polling&j=0"), [400, {
      code: 3,
      message: "Bad request",
    }]);
    await stillServes(server);
  },
});

Deno.test({
  name: "JSON nested too deep, too many values, or not Socket.IO at all ends that session only",
  ...opts,
  async fn() {
    await using server = await startTestServer();
    const bystander = await sio4(server.url, { transports: ["websocket"] });
    for (const packet of ["42" + "[".repeat(100_000), "42[" + "1,".repeat(20_000) + "1]", "4abc", "42{}", "9"]) {
      const { ws, closed } = await rawSocket(server);
      ws.send("40");
      ws.send(packet);
      const event = await closed;
      assert.ok(event.code >= 1000, `closed after ${packet.slice(0, 10)}…`);
    }
    // Binary garbage with no Socket.IO packet waiting for it.
    const { ws, closed } = await rawSocket(server);
    ws.send("40");
    ws.send(new Uint8Array([1, 2, 3]));
    await closed;
    assert.ok(bystander.socket.connected);
    const ack = await bystander.request("message", "unharmed") as { offset: number };
    assert.equal(ack.offset, 1);
    bystander.close();
  },
});

Deno.test({
  name: "polling bodies over the payload cap get 413, slow bodies 408; overlapping polls end the session",
  ...opts,
  async fn() {
    await using server = await startTestServer({
      socketIo: { ...configWith().socketIo, maxPayload: 4096 },
      bodyTimeoutMs: 300,
    });
    const sid = await eioHandshake(server.url);
    const big = await server.fetch(`/socket.io/?EIO=4&transport=polling&sid=${sid}`, {
      method: "POST",
      body: "4" + "x".repeat(10_000),
    });
    assert.equal(big.status, 413);
    await big.body?.cancel();

    // A body that never finishes.
    let dripping: ReadableStreamDefaultController<Uint8Array> | undefined;
    const drip = new ReadableStream<Uint8Array>({
      start(controller) {
        dripping = controller;
        controller.enqueue(new TextEncoder().encode("4he"));
      },
    });
    const slow = await server.fetch(`/socket.io/?EIO=4&transport=polling&sid=${sid}`, {
      method: "POST",
      body: drip,
      // @ts-ignore: Deno's fetch streams a body with duplex "half"
      duplex: "half",
    });
    assert.equal(slow.status, 408);
    await slow.body?.cancel();
    dripping?.close();

    // Two GETs at once: the first gets the close packet, the second 400, the session is gone.
    const first = server.fetch(`/socket.io/?EIO=4&transport=polling&sid=${sid}`);
    await quiet(50, "the first GET reaches the server and is held there (nothing shows it from here)");
    const second = await server.fetch(`/socket.io/?EIO=4&transport=polling&sid=${sid}`);
    assert.equal(second.status, 400);
    await second.body?.cancel();
    assert.equal(await (await first).text(), "1");
    const after = await server.fetch(`/socket.io/?EIO=4&transport=polling&sid=${sid}`);
    assert.equal(after.status, 400);
    await after.body?.cancel();
    await stillServes(server);
  },
});

Deno.test({
  name: "sessions per address are capped like /ws connections, and a slot comes back when a session ends",
  ...opts,
  async fn() {
    await using server = await startTestServer({ maxConnectionsPerIp: 3 });
    const sids = [await eioHandshake(server.url), await eioHandshake(server.url), await eioHandshake(server.url)];
    const refused = await server.fetch("/socket.io/?EIO=4&transport=polling");
    assert.equal(refused.status, 429);
    assert.ok(Number(refused.headers.get("retry-after")) >= 1);
    assert.match((await refused.json()).message, /Too many connections/);
    // A client closes its session: a slot is free again.
    const closed = await server.fetch(`/socket.io/?EIO=4&transport=polling&sid=${sids[0]}`, {
      method: "POST",
      body: "1",
    });
    assert.equal(await closed.text(), "ok");
    await until(async () => await sessions(server) === 2, 2000, "the session to end");
    assert.ok(await eioHandshake(server.url));
  },
});

Deno.test({
  name: "sessions whose client vanished end by the heartbeat, and their slots and hub connections go",
  ...opts,
  async fn() {
    await using server = await startTestServer({
      socketIo: { ...configWith().socketIo, pingIntervalMs: 100, pingTimeoutMs: 100, maxPayload: 100_000 },
      maxConnectionsPerIp: 10,
    });
    for (let i = 0; i < 5; i++) await eioHandshake(server.url);
    for (let i = 0; i < 2; i++) await eioHandshake(server.url, 3);
    assert.ok(await sessions(server) >= 5);
    await until(async () => await sessions(server) === 0, 3000, "abandoned sessions to time out");
    assert.equal(server.hub.connectionCount, 0);
    await stillServes(server);
  },
});

Deno.test({
  name: "a page on another site can't open a session; a listed site gets CORS with credentials",
  ...opts,
  async fn() {
    await using server = await startTestServer({ origins: ["https://app.example"] });
    const foreign = await server.fetch("/socket.io/?EIO=4&transport=polling", {
      headers: { origin: "https://evil.example" },
    });
    assert.equal(foreign.status, 403);
    assert.equal(foreign.headers.get("access-control-allow-origin"), null);
    await foreign.body?.cancel();
    const listed = await server.fetch("/socket.io/?EIO=4&transport=polling", {
      headers: { origin: "https://app.example" },
    });
    assert.equal(listed.status, 200);
    assert.equal(listed.headers.get("access-control-allow-origin"), "https://app.example");
    assert.equal(listed.headers.get("access-control-allow-credentials"), "true");
    await listed.body?.cancel();
    const preflight = await server.fetch("/socket.io/?EIO=4&transport=polling", {
      method: "OPTIONS",
      headers: { origin: "https://app.example", "access-control-request-headers": "content-type" },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get("access-control-allow-headers"), "content-type");
    // A WebSocket from the foreign page is refused before it opens.
    const ws = await server.fetch("/socket.io/?EIO=4&transport=websocket", {
      headers: { origin: "https://evil.example", upgrade: "websocket", connection: "upgrade" },
    });
    assert.equal(ws.status, 403);
    await ws.body?.cancel();
  },
});

Deno.test({
  name: "floods: publishes over the rate get rate_limited acks; thousands of acked requests stay bounded",
  ...opts,
  async fn() {
    await using server = await startTestServer({ limits: { publishBurst: 5 } });
    const client = await sio4(server.url, { transports: ["websocket"] });
    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, i) => client.request("message", i)),
    ) as { offset?: number; error?: { code: string } }[];
    assert.equal(replies.filter((r) => r.offset !== undefined).length, 5);
    assert.ok(replies.filter((r) => r.error?.code === "rate_limited").length >= 10);
    client.close();
    // A storm of joins with acks: answered until the flood guard cuts the client off, as on /ws.
    const flooder = await sio4(server.url, { transports: ["websocket"] });
    for (let i = 0; i < 600; i++) flooder.socket.emit("join", `room-${i}`, () => {});
    const [error] = await flooder.next("roomcast:error", ([e]) => (e as { code: string }).code === "closed") as [
      { message: string },
    ];
    assert.match(error.message, /Flooding/);
    await flooder.next("disconnect");
    await stillServes(server);
  },
});

for (const layer of ["own", "official"] as const) {
  Deno.test({
    name: `[${layer}] sessions that never CONNECT are closed after ROOMCAST_SIO_CONNECT_TIMEOUT, their slots freed`,
    ...opts,
    async fn() {
      const connectTimeoutMs = 400;
      await using server = await startTestServer({
        socketIo: { ...configWith().socketIo, layer, recoveryMs: 0, connectTimeoutMs },
      });
      const started = Date.now();
      // Twenty sessions opened, in two bursts, that never send a CONNECT; one client that does.
      const silent = [];
      for (let i = 0; i < 10; i++) silent.push(await rawSocket(server));
      const client = await sio4(server.url, { transports: ["websocket"] });
      await new Promise((resolve) => setTimeout(resolve, 150));
      for (let i = 0; i < 10; i++) silent.push(await rawSocket(server));
      assert.equal(await sessions(server), 21);
      let closed = 0;
      for (const s of silent) void s.closed.then(() => closed++);
      await until(() => closed === silent.length, connectTimeoutMs + 3000, "every silent session closed");
      const took = Date.now() - started;
      assert.ok(took >= connectTimeoutMs, `closed after ${took} ms, not before the timeout`);
      assert.ok(took < connectTimeoutMs + 150 + 1500, `closed within the timeout and a sweep (${took} ms)`);
      await until(async () => await sessions(server) === 1, 2000, "only the connected session left");
      assert.equal(server.admission.open, 1, "the silent sessions' slots given back");
      // The connected client, past the timeout, is still served.
      assert.equal(client.socket.connected, true);
      const ack = await client.request("message", "still here") as { offset: number };
      assert.ok(ack.offset >= 1);
      client.close();
    },
  });
}
