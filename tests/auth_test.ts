/** JWT connections, room claims, token minting and origin checks against the real server. */
import assert from "node:assert/strict";
import { sign as honoSign, verify as honoVerify } from "hono/jwt";
import { ManualClock } from "../lib/clock.ts";
import { isType, TestClient } from "./_client.ts";
import { postJson, startTestServer, type TestServer } from "./_server.ts";
import { until } from "./_wait.ts";
import { stallProbe } from "./_stall.ts";
import { TOLD_MAX, toldSize } from "../routes/transports/identity.ts";

const SECRET = "test-secret-of-enough-length";

Deno.test("JWT auth on /ws (ROOMCAST_AUTH_SECRET)", async (t) => {
  const clock = new ManualClock(Date.now());
  await using server = await startTestServer({ authSecret: SECRET, apiKey: "key", clock, heartbeat: false });
  const now = () => Math.floor(clock.now() / 1000);

  const refused = async (query: string, message: RegExp) => {
    const c = await TestClient.json(server.ws(`/ws${query}`));
    const error = await c.next(isType("error"));
    assert.equal(error.code, "unauthorized");
    assert.match(error.message, message);
    const closed = await c.closed;
    assert.equal(closed.code, 1008);
  };

  await t.step("no token → unauthorized error, close 1008", () => refused("", /token is required/));
  await t.step("garbage token → 1008", () => refused("?token=abc.def", /not a JWT/));
  await t.step("wrong signature → 1008", async () => {
    const token = await honoSign({ sub: "u1" }, "another-secret", "HS256");
    await refused(`?token=${token}`, /signature/);
  });
  await t.step("alg none is refused", async () => {
    const head = btoa(JSON.stringify({ alg: "none" })).replace(/=+$/, "");
    const body = btoa(JSON.stringify({ sub: "u1" })).replace(/=+$/, "");
    await refused(`?token=${head}.${body}.`, /HS256/);
  });
  await t.step("expired token → 1008", async () => {
    const token = await honoSign({ sub: "u1", exp: now() - 10 }, SECRET, "HS256");
    await refused(`?token=${token}`, /expired/);
  });
  await t.step("token without sub → 1008", async () => {
    const token = await honoSign({ name: "x" }, SECRET, "HS256");
    await refused(`?token=${token}`, /sub is required/);
  });

  await t.step("a valid token (signed by hono/jwt) sets the user; rooms claim limits joins", async () => {
    const token = await honoSign({ sub: "user-7", name: "Seven", rooms: ["team-*", "general"] }, SECRET, "HS256");
    const c = await TestClient.json(server.ws(`/ws?token=${token}`));
    const welcome = await c.next(isType("welcome"));
    assert.deepEqual(welcome.user, { id: "user-7", name: "Seven" });
    assert.equal((await c.request({ type: "join", room: "general" })).type, "joined");
    assert.equal((await c.request({ type: "join", room: "team-blue" })).type, "joined");
    const denied = await c.request({ type: "join", room: "secret" });
    assert.equal(denied.code, "forbidden");
    assert.equal((await c.request({ type: "history", room: "secret" })).code, "forbidden");
    assert.equal((await c.request({ type: "presence", room: "secret" })).code, "forbidden");
    await c.close();
  });

  await t.step("a connection is closed with 1008 when its token expires", async () => {
    const token = await honoSign({ sub: "short", exp: now() + 60 }, SECRET, "HS256");
    const c = await TestClient.json(server.ws(`/ws?token=${token}`));
    await c.next(isType("welcome"));
    server.hub.tick();
    assert.equal((await c.request({ type: "ping" })).type, "pong", "still valid before exp");
    clock.advance(61_000);
    server.hub.tick();
    assert.equal((await c.next(isType("error"))).code, "unauthorized");
    assert.equal((await c.closed).code, 1008);
  });

  await t.step("POST /api/tokens mints a token that connects and that hono/jwt verifies", async () => {
    const response = await postJson(server, "/api/tokens", { sub: "minted", name: "Minty", rooms: ["a"], ttl: 600 }, {
      authorization: "Bearer key",
    });
    assert.equal(response.status, 200);
    const { token, expires } = await response.json();
    assert.equal(expires, now() + 600);
    const payload = await honoVerify(token, SECRET, { alg: "HS256", exp: false });
    assert.equal(payload.sub, "minted");
    const c = await TestClient.json(server.ws(`/ws?token=${token}`));
    assert.deepEqual((await c.next(isType("welcome"))).user, { id: "minted", name: "Minty" });
    await c.close();
    const bad = await postJson(server, "/api/tokens", { name: "no sub" }, { authorization: "Bearer key" });
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
  });

  await t.step("HTTP with a user token: publish as that user, only to allowed rooms; reads need auth", async () => {
    const token = await honoSign({ sub: "poster", name: "Poster", rooms: ["a"] }, SECRET, "HS256");
    const auth = { authorization: `Bearer ${token}` };
    const ok = await postJson(server, "/api/rooms/a/messages", { data: "hi", from: { id: "x", name: "spoof" } }, auth);
    assert.equal(ok.status, 201);
    await ok.body?.cancel();
    const history = await (await server.fetch("/api/rooms/a/messages", { headers: auth })).json();
    assert.deepEqual(history.messages[0].from, { id: "poster", name: "Poster" }, "from is the token's user");
    const other = await postJson(server, "/api/rooms/b/messages", { data: "hi" }, auth);
    assert.equal(other.status, 403);
    await other.body?.cancel();
    const anonymous = await server.fetch("/api/rooms/a/messages");
    assert.equal(anonymous.status, 401);
    await anonymous.body?.cancel();
    const userBroadcast = await postJson(server, "/api/broadcast", { data: 1 }, auth);
    assert.equal(userBroadcast.status, 401, "a user token is not the API key");
    await userBroadcast.body?.cancel();
  });
});

Deno.test("Origin checks: a refused page is told which setting would allow it (error frame, 1008)", async (t) => {
  /** Opens /ws (or `path`) as a page of `origin` would; what the server said and how it closed. */
  const open = (server: TestServer, origin: string, path = "/ws") =>
    new Promise<{ frames: string[]; code: number; reason: string }>((resolve) => {
      const frames: string[] = [];
      const socket = new WebSocket(server.ws(path), { headers: { origin } } as never);
      socket.onmessage = (e) => frames.push(e.data as string);
      socket.onclose = (e) => resolve({ frames, code: e.code, reason: e.reason });
    });

  await t.step(
    "default: another site's page gets forbidden naming ROOMCAST_ORIGINS; the same origin connects",
    async () => {
      await using server = await startTestServer();
      const foreign = await open(server, "https://evil.example");
      assert.equal(foreign.code, 1008);
      assert.equal(foreign.frames.length, 1, "the error and nothing else: no welcome, no identity");
      const error = JSON.parse(foreign.frames[0] as string);
      assert.equal(error.code, "forbidden");
      assert.match(error.message, /Pages of https:\/\/evil\.example may not connect: add it to ROOMCAST_ORIGINS/);
      assert.match(foreign.reason, /ROOMCAST_ORIGINS/);
      const raw = await open(server, "https://evil.example", "/");
      assert.equal(raw.code, 1008);
      await until(() => server.admission.open === 0, 2000, "refused sockets hold no slot");
      const same = new WebSocket(server.ws("/ws"), { headers: { origin: server.url } } as never);
      const c = await new Promise<string>((resolve) => {
        same.onmessage = (e) => resolve(JSON.parse(e.data).type);
        same.onerror = () => resolve("error");
      });
      assert.equal(c, "welcome");
      same.close();
      await new Promise((resolve) => same.onclose = resolve);
    },
  );

  await t.step("a page at an address not in ROOMCAST_HOSTS is told to add it there", async () => {
    await using server = await startTestServer({ hosts: ["chat.example.com"] });
    const lan = await open(server, server.url);
    assert.equal(lan.code, 1008);
    assert.match(
      JSON.parse(lan.frames[0] as string).message,
      /does not answer to 127\.0\.0\.1: add it to ROOMCAST_HOSTS/,
    );
  });

  await t.step("ROOMCAST_ORIGINS allows the listed origins only", async () => {
    await using server = await startTestServer({ origins: ["https://app.example"] });
    const listed = new WebSocket(server.ws("/ws"), { headers: { origin: "https://app.example" } } as never);
    const type = await new Promise<string>((resolve) => {
      listed.onmessage = (e) => resolve(JSON.parse(e.data).type);
      listed.onerror = () => resolve("error");
    });
    assert.equal(type, "welcome");
    listed.close();
    await new Promise((resolve) => listed.onclose = resolve);
    const other = await open(server, "https://other.example");
    assert.equal(other.code, 1008);
  });

  await t.step("a flood of refused upgrades is metered by the connect rate like any other", async () => {
    await using server = await startTestServer({ connectBurst: 5, connectWindowMs: 60_000 });
    const results = await Promise.all(Array.from({ length: 8 }, () => open(server, "https://evil.example")));
    const codes = results.map((r) => r.code);
    assert.ok(codes.every((code) => code === 1008), JSON.stringify(codes));
    // The rate was spent: a good client from the address is now refused too (1013).
    const good = await open(server, server.url);
    assert.equal(good.code, 1013);
  });
});

Deno.test("a refused origin or host is logged once a minute per origin or host, naming the setting", async () => {
  const clock = new ManualClock(Date.now());
  await using server = await startTestServer({ clock, hosts: ["chat.example.com", "127.0.0.1"] });
  const lines: string[] = [];
  const warn = console.warn;
  console.warn = (...args: unknown[]) => void lines.push(args.join(" "));
  try {
    const refuse = (origin: string) =>
      new Promise<number>((resolve) => {
        const socket = new WebSocket(server.ws("/ws"), { headers: { origin } } as never);
        socket.onclose = (e) => resolve(e.code);
      });
    const site = `https://evil-${crypto.randomUUID().slice(0, 8)}.example`;
    for (let i = 0; i < 3; i++) assert.equal(await refuse(site), 1008);
    const mine = () => lines.filter((line) => line.includes(site));
    assert.equal(mine().length, 1, lines.join("\n"));
    assert.match(mine()[0] ?? "", /refused a page of "https:\/\/evil-.*": add it to ROOMCAST_ORIGINS/);
    clock.advance(61_000);
    assert.equal(await refuse(site), 1008);
    assert.equal(mine().length, 2, "again after a minute");
  } finally {
    console.warn = warn;
  }
});

Deno.test("a flood of made-up origins: each refused, the log's memory bounded, the loop never held", async () => {
  await using server = await startTestServer({ connectBurst: 0, maxConnectionsPerIp: 0 });
  const lines: string[] = [];
  const warn = console.warn;
  console.warn = (...args: unknown[]) => void lines.push(args.join(" "));
  try {
    using probe = stallProbe();
    const codes: number[] = [];
    let largest = 0;
    for (let batch = 0; batch < 12; batch++) {
      codes.push(
        ...await Promise.all(Array.from({ length: 50 }, (_, i) =>
          new Promise<number>((resolve) => {
            const origin = `https://flood-${batch}-${i}-${crypto.randomUUID().slice(0, 6)}.example`;
            const socket = new WebSocket(server.ws("/ws"), { headers: { origin } } as never);
            socket.onclose = (e) => resolve(e.code);
          }))),
      );
      largest = Math.max(largest, toldSize());
    }
    assert.ok(probe.stop() < 200, `the loop was held ${Math.round(probe.worst)} ms`);
    assert.equal(codes.length, 600);
    assert.ok(codes.every((code) => code === 1008), "every one refused with 1008");
    assert.ok(largest <= TOLD_MAX, `at most ${TOLD_MAX} remembered (${largest})`);
    assert.ok(lines.filter((l) => l.includes("flood-")).length <= 600, "at most a line per origin");
    const client = await server.client();
    assert.equal(client.welcome?.type, "welcome", "a page of this server still connects");
    await client.close();
  } finally {
    console.warn = warn;
  }
});
