/**
 * The app's backend in the loop (lib/proxy.ts): a backend on 127.0.0.1 written as one for
 * Centrifugo's HTTP proxy (tests/_backend.ts) refuses, enriches, replaces data, is slow, is down,
 * answers garbage; every transport is held to it by the transport contract
 * (tests/transport_contract.ts), this file holds the details: the request format, the signature,
 * the backend's codes in the client's frames, expiry, failure (closed and open), the circuit
 * breaker, the bounded pool, and one call per action across Workers, Redis processes and Deploy.
 */
import assert from "node:assert/strict";
import { signToken } from "../lib/auth.ts";
import { type Frame, isType, TestClient } from "./_client.ts";
import { type Backend, downUrl, startBackend } from "./_backend.ts";
import {
  postJson,
  startTestServer,
  type TestServer,
  type TestServerOptions,
  twoServers,
  twoWorkers,
} from "./_server.ts";
import { stallProbe } from "./_stall.ts";
import { stompClient } from "./_stomp.ts";
import { redisTest } from "./_redis.ts";
import { until } from "./_wait.ts";
import type { ProxyConfig } from "../lib/config.ts";

async function withProxy(
  backend: Backend,
  proxy: Partial<ProxyConfig>,
  body: (server: TestServer) => Promise<void>,
  options: TestServerOptions = {},
): Promise<void> {
  const server = await startTestServer({ ...options, proxy: backend.config(proxy) });
  try {
    await body(server);
  } finally {
    await server.drain();
  }
}

/** A raw WebSocket's frames until it closes (bounded), and its close. */
async function refusedSocket(url: string): Promise<{ frames: Frame[]; code: number; reason: string }> {
  const socket = new WebSocket(url);
  const frames: Frame[] = [];
  socket.onmessage = (event) => frames.push(JSON.parse(event.data));
  const closed = await new Promise<CloseEvent>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no close within 5 s")), 5000);
    socket.onclose = (event) => {
      clearTimeout(timer);
      resolve(event);
    };
  });
  return { frames, code: closed.code, reason: closed.reason };
}

Deno.test("proxy: a connect request is Centrifugo's, signed; the backend's error and disconnect reach the client", async () => {
  await using backend = startBackend({}, "proxy-secret");
  await withProxy(backend, {}, async (server) => {
    const client = await server.client("?name=Ann");
    const [call] = backend.calledFor("connect");
    assert.ok(call);
    assert.equal(call.body.client, client.welcome?.connection, "`client` is the connection's id");
    assert.equal(call.body.transport, "ws");
    assert.equal(call.body.protocol, "json");
    assert.equal(call.body.encoding, "json");
    assert.equal(call.body.user, undefined, "a guest's id is roomcast's own: not sent");
    assert.equal(call.signed, true, "X-Roomcast-Signature is the HMAC-SHA256 of the body");
    assert.equal(call.headers.get("content-type"), "application/json");
    assert.equal(call.headers.get("x-forwarded-for"), "127.0.0.1");
    await client.close();

    backend.answers.connect = () => ({ error: { code: 1403, message: "Banned here" } });
    const refused = await refusedSocket(server.ws("/ws"));
    assert.deepEqual(refused.frames, [{ type: "error", code: "forbidden", message: "Banned here", backendCode: 1403 }]);
    assert.equal(refused.code, 1008);

    backend.answers.connect = () => ({ disconnect: { code: 4403, reason: "Go away" } });
    const disconnected = await refusedSocket(server.ws("/ws"));
    assert.equal(disconnected.code, 4403, "closed with the backend's code");
    assert.equal(disconnected.reason, "Go away");
    await until(() => server.admission.open === 0, 3000, "the refused clients' slots back");

    // SSE: the request's cookie goes to the backend; a refusal is the HTTP error, with its code.
    backend.answers.connect = () => ({ error: { code: 1403, message: "No cookie, no stream" } });
    const sse = await server.fetch("/events?room=r", { headers: { cookie: "sid=abc" } });
    assert.equal(sse.status, 403);
    assert.deepEqual(await sse.json(), {
      error: { code: "forbidden", message: "No cookie, no stream", backendCode: 1403 },
    });
    assert.equal(backend.calledFor("connect").at(-1)?.headers.get("cookie"), "sid=abc");
    assert.equal(backend.calledFor("connect").at(-1)?.body.transport, "sse");
  });
});

Deno.test("proxy: the backend sets the user, its name and info, and an expiry", async () => {
  const secret = "proxy-auth-secret-0123456789abcdef";
  let asked = 0;
  await using backend = startBackend({
    // Asked again before the expiry, the backend does not renew it.
    connect: (body) =>
      ++asked > 1 ? { error: { code: 1401, message: "Session over" } } : {
        result: {
          user: body.user === "ann" ? "ann" : "56",
          info: { name: "Ann from the database", plan: "pro" },
          expire_at: Math.floor(Date.now() / 1000) + 2,
        },
      },
  });
  await withProxy(backend, {}, async (server) => {
    const token = await signToken({ sub: "ann", name: "Ann" }, secret);
    const client = await server.joined("lobby", `?token=${token}`);
    assert.deepEqual(client.welcome?.user, { id: "ann", name: "Ann from the database", info: { plan: "pro" } });
    assert.equal(backend.calledFor("connect")[0]?.body.user, "ann", "a token's user goes along");
    const members = await server.hub.presence("lobby");
    assert.deepEqual(members, [{ id: "ann", name: "Ann from the database", connections: 1, info: { plan: "pro" } }]);
    // expire_at passes: the connection is told and closed.
    const expired = await client.next(isType("error"), 4000);
    assert.equal(expired.code, "unauthorized");
    assert.equal((await client.closed).code, 1008);
  }, { authSecret: secret });
});

Deno.test("proxy: an expiry the backend set is renewed by asking it again before it passes", async () => {
  await using backend = startBackend({
    connect: () => ({ result: { expire_at: Math.floor(Date.now() / 1000) + 2 } }),
  });
  await withProxy(backend, {}, async (server) => {
    const client = await server.joined("lobby");
    await new Promise((resolve) => setTimeout(resolve, 3500));
    assert.equal((await client.request({ type: "ping" })).type, "pong", "still open past its first expiry");
    const asked = backend.calledFor("connect").filter((call) => call.body.client === client.welcome?.connection);
    assert.ok(asked.length >= 2, `asked again (${asked.length} calls)`);
    await client.close();
  });
});

Deno.test({
  name: "proxy: a STOMP client whose token comes in CONNECT is asked about then, as that user",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const secret = "proxy-stomp-secret-0123456789abcdef";
    await using backend = startBackend({
      connect: (body) => body.user === "mallory" ? { error: { code: 1403, message: "Mallory is banned" } } : {},
    });
    await withProxy(backend, {}, async (server) => {
      const ann = await stompClient(server, { connectHeaders: { passcode: await signToken({ sub: "ann" }, secret) } });
      const [call] = backend.calledFor("connect");
      assert.equal(call?.body.user, "ann", "asked once the token named the user");
      assert.equal(call?.body.transport, "stomp");
      assert.equal(backend.calledFor("connect").length, 1, "not at the upgrade too");
      await ann.deactivate();
      const token = await signToken({ sub: "mallory" }, secret);
      await assert.rejects(stompClient(server, { connectHeaders: { passcode: token } }), /Mallory is banned/);
    }, { authSecret: secret });
  },
});

Deno.test("proxy: publishes may be refused, replaced, or skip history; the HTTP API's are not asked", async () => {
  await using backend = startBackend({
    publish: (body) => {
      const data = body.data as { text?: string };
      if (data.text === "spam") return { error: { code: 1429, message: "Looks like spam" } };
      if (data.text === "typing") return { result: { skip_history: true } };
      if (data.text === "leave me") return { disconnect: { code: 4001, reason: "Bye" } };
      return { result: { data: { text: data.text?.toUpperCase(), checked: true } } };
    },
  });
  await withProxy(backend, {}, async (server) => {
    const ann = await server.joined("r");
    const bob = await server.joined("r");
    const ack = await ann.request({ type: "publish", room: "r", data: { text: "hi" } });
    assert.equal(ack.type, "ack");
    assert.equal(ack.offset, 1);
    assert.deepEqual(ack.data, { text: "HI", checked: true }, "the ack says what was stored");
    assert.deepEqual((await bob.next(isType("message"))).data, { text: "HI", checked: true }, "members get it too");
    const spam = await ann.request({ type: "publish", room: "r", data: { text: "spam" } });
    assert.deepEqual(
      { ...spam, ref: undefined },
      { type: "error", code: "forbidden", message: "Looks like spam", backendCode: 1429, ref: undefined },
    );
    const typing = await ann.request({ type: "publish", room: "r", data: { text: "typing" } });
    assert.equal(typing.type, "ack");
    assert.equal(typing.stored, false);
    assert.equal(typing.offset, undefined, "no offset: never replayed");
    const signal = await bob.next(isType("signal"));
    assert.equal(signal.event, "message");
    assert.deepEqual(signal.data, { text: "typing" });
    const api = await postJson(server, "/api/rooms/r/messages", { data: { text: "from the app" } });
    assert.equal(api.status, 201);
    await api.body?.cancel();
    assert.equal(backend.calledFor("publish").length, 3, "the backend's own publishes are not asked");
    const stored = await server.hub.history("r", { limit: 10 });
    assert.deepEqual(stored.messages.map((m) => m.data), [{ text: "HI", checked: true }, { text: "from the app" }]);
    ann.send({ type: "publish", room: "r", data: { text: "leave me" }, ref: 9 });
    assert.equal((await ann.next(isType("error"))).message, "Bye");
    const closed = await ann.closed;
    assert.equal(closed.code, 4001);
    await bob.close();
  });
});

Deno.test("proxy: down, slow, 5xx or garbage: refused as unavailable, never a hang", async (t) => {
  const answers: [string, () => unknown | Promise<unknown>][] = [
    ["slow", () => new Promise((resolve) => setTimeout(() => resolve({ result: {} }), 1500))],
    ["5xx", () => new Response("oops", { status: 502 })],
    ["not JSON", () => new Response("<html>", { status: 200 })],
    ["a result that is no object", () => ({ result: 5 })],
    ["an error without a code", () => ({ error: { message: "?" } })],
    ["a disconnect with a bad code", () => ({ disconnect: { code: 1006, reason: "x" } })],
    ["too large", () => new Response(`{"result":{"info":"${"x".repeat(100_000)}"}}`)],
    ["info too large", () => ({ result: { info: "x".repeat(5000) } })],
    ["an answer dripped a byte at a time", () => {
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          if (++sent > 30) return controller.close();
          controller.enqueue(new TextEncoder().encode(" "));
        },
      });
      return new Response(body, { headers: { "content-type": "application/json" } });
    }],
  ];
  for (const [what, answer] of answers) {
    await t.step(what, async () => {
      await using backend = startBackend({ connect: answer, subscribe: answer });
      await withProxy(backend, { timeoutMs: 300 }, async (server) => {
        const started = Date.now();
        const refused = await refusedSocket(server.ws("/ws"));
        assert.ok(Date.now() - started < 1200, `answered within the timeout (${Date.now() - started} ms)`);
        assert.equal(refused.frames[0]?.code, "unavailable");
        assert.equal(refused.code, 1013, "try again later");
      });
    });
  }
  await t.step("down", async () => {
    await using backend = startBackend();
    const url = downUrl();
    const server = await startTestServer({
      proxy: { ...backend.config(), connectUrl: `${url}/connect`, subscribeUrl: `${url}/subscribe` },
    });
    try {
      const refused = await refusedSocket(server.ws("/ws"));
      assert.equal(refused.frames[0]?.code, "unavailable");
    } finally {
      await server.drain();
    }
  });
});

Deno.test("proxy: ROOMCAST_PROXY_FAIL_OPEN lets actions through when the backend fails, not when it refuses", async () => {
  await using backend = startBackend({ connect: () => new Response("down", { status: 503 }) });
  await withProxy(backend, { failOpen: true }, async (server) => {
    const health = await (await server.fetch("/healthz")).json();
    assert.deepEqual(health.proxy, {
      failOpen: true,
      circuits: { connect: "closed", subscribe: "closed", publish: "closed" },
    });
    const client = await server.joined("r");
    backend.answers.subscribe = () => ({ error: { code: 1403, message: "Still no" } });
    const refused = await client.request({ type: "join", room: "closed-room" });
    assert.equal(refused.backendCode, 1403);
    await client.close();
  });
});

Deno.test("proxy: a circuit breaker stops calling a failing backend, shows it, and closes again", async () => {
  await using backend = startBackend({ subscribe: () => new Response("no", { status: 500 }) });
  await withProxy(backend, {}, async (server) => {
    const client = await server.client();
    for (let i = 0; i < 8; i++) {
      const answer = await client.request({ type: "join", room: `r${i}` });
      assert.equal(answer.code, "unavailable");
    }
    assert.equal(backend.calledFor("subscribe").length, 5, "not called once its circuit opened");
    const metrics = await (await server.fetch("/metrics")).text();
    assert.match(metrics, /roomcast_proxy_circuit_open\{kind="subscribe"\} 1/);
    assert.match(metrics, /roomcast_proxy_calls_total\{kind="subscribe",outcome="short_circuited"\} 3/);
    assert.equal((await (await server.fetch("/healthz")).json()).proxy.circuits.subscribe, "open");
    backend.answers.subscribe = () => ({ result: {} });
    await new Promise((resolve) => setTimeout(resolve, 5100));
    const joined = await client.request({ type: "join", room: "again" });
    assert.equal(joined.type, "joined", "half-open: one call tries, and it closes the circuit");
    assert.match(await (await server.fetch("/metrics")).text(), /roomcast_proxy_circuit_open\{kind="subscribe"\} 0/);
    await client.close();
  });
});

Deno.test("proxy: a connect storm goes through a bounded pool, and the loop is never held", async () => {
  await using backend = startBackend({
    connect: () => new Promise((resolve) => setTimeout(() => resolve({ result: {} }), 100)),
  });
  await withProxy(backend, { timeoutMs: 5000 }, async (server) => {
    using probe = stallProbe();
    const streams = await Promise.all(Array.from({ length: 200 }, () => server.fetch("/events?room=storm")));
    assert.ok(probe.stop() < 200, `the loop was held ${Math.round(probe.worst)} ms`);
    assert.ok(streams.every((r) => r.status === 200), "every stream let in");
    assert.ok(backend.maxInFlight <= 64, `at most 64 calls at once (${backend.maxInFlight})`);
    assert.equal(backend.calledFor("connect").length, 200);
    for (const stream of streams) await stream.body?.cancel();
  }, { connectBurst: 0, maxConnectionsPerIp: 0 });
});

/** Each client's connect, join and publish were asked once, and only once, whichever node it is on. */
function onceEach(backend: Backend, clients: TestClient[]): void {
  for (const client of clients) {
    const id = client.welcome?.connection;
    for (const kind of ["connect", "subscribe", "publish"] as const) {
      const calls = backend.calledFor(kind).filter((call) => call.body.client === id);
      assert.equal(calls.length, 1, `${kind} of ${id} asked once`);
    }
  }
}

async function joinAndPublish(client: TestClient, room: string): Promise<void> {
  assert.equal((await client.request({ type: "join", room })).type, "joined");
  assert.equal((await client.request({ type: "publish", room, data: "x" })).type, "ack");
}

Deno.test({
  name: "proxy: across two Workers, each action is asked once, by the isolate holding the connection",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using backend = startBackend();
    await using cluster = await twoWorkers({ proxy: backend.config() });
    const clients: TestClient[] = [];
    const nodes = new Set<string>();
    try {
      for (let i = 0; i < 40 && nodes.size < 2; i++) {
        const client = await TestClient.json(`${cluster.url.replace("http", "ws")}/ws`);
        client.welcome = await client.next(isType("welcome"));
        if (nodes.has(client.welcome.node)) {
          await client.close();
          continue;
        }
        nodes.add(client.welcome.node);
        clients.push(client);
      }
      assert.equal(nodes.size, 2);
      for (const client of clients) await joinAndPublish(client, "shared");
      onceEach(backend, clients);
    } finally {
      for (const client of clients) await client.close();
    }
  },
});

redisTest("proxy: across two processes on Redis, each action is asked once", async (redis) => {
  await using backend = startBackend();
  await using pair = await twoServers({ redisUrl: redis.url }, { proxy: backend.config() });
  const clients = [await pair.servers[0].client(), await pair.servers[1].client()];
  try {
    for (const client of clients) await joinAndPublish(client, "shared");
    onceEach(backend, clients);
  } finally {
    for (const client of clients) await client.close();
  }
});

Deno.test("proxy: Deploy mode (instances on one KV), each action is asked once", async () => {
  await using backend = startBackend();
  await using pair = await twoServers("kv", { proxy: backend.config() });
  const clients = [await pair.servers[0].client(), await pair.servers[1].client()];
  try {
    for (const client of clients) await joinAndPublish(client, "shared");
    onceEach(backend, clients);
  } finally {
    for (const client of clients) await client.close();
  }
});
