/**
 * The Pusher transport under attack: forged, replayed and tampered API signatures; bad
 * `channel_data`; client events past the rate; oversized events and bodies; a presence channel
 * of 10,000 members. None may crash the server, hold its event loop or touch other clients.
 */
import assert from "node:assert/strict";
import { hmacHex, md5Hex } from "../../routes/transports/pusher/signature.ts";
import { PUSHER_APP, RawPusher, sdk } from "../_pusher.ts";
import { startTestServer, type TestServer } from "../_server.ts";
import { stallProbe } from "../_stall.ts";
import { upgradeStatus } from "../_raw_ws.ts";
import { until } from "../_wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** A request signed as the SDKs sign, with what a test wants changed. */
function signedUrl(
  server: TestServer,
  method: string,
  path: string,
  body: string | undefined,
  change: { secret?: string; timestamp?: number; md5?: string; key?: string } = {},
): string {
  const params: Record<string, string> = {
    auth_key: change.key ?? PUSHER_APP.key,
    auth_timestamp: String(change.timestamp ?? Math.floor(Date.now() / 1000)),
    auth_version: "1.0",
  };
  if (body !== undefined) params.body_md5 = change.md5 ?? md5Hex(body);
  const query = Object.keys(params).sort().map((k) => `${k}=${params[k]}`).join("&");
  const signature = hmacHex(change.secret ?? PUSHER_APP.secret, `${method}\n${path}\n${query}`);
  return `${server.url}${path}?${query}&auth_signature=${signature}`;
}

async function post(server: TestServer, body: string, change = {}): Promise<{ status: number; text: string }> {
  const path = `/apps/${PUSHER_APP.id}/events`;
  const response = await fetch(signedUrl(server, "POST", path, body, change), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
  return { status: response.status, text: await response.text() };
}

/** A raw client subscribed to a private channel with a valid signature. */
async function privateClient(server: TestServer, channel: string): Promise<RawPusher> {
  const raw = new RawPusher(server);
  const socketId = await raw.socketId();
  raw.send({ event: "pusher:subscribe", data: { channel, ...sdk(server).authorizeChannel(socketId, channel) } });
  return raw;
}

Deno.test(
  { name: "Pusher API: forged, replayed and tampered requests are 401, and store nothing", ...opts },
  async (t) => {
    await using server = await startTestServer({ pusherApps: [PUSHER_APP] });
    const body = JSON.stringify({ name: "e", channel: "victims", data: "{}" });

    await t.step("the genuine request is 200", async () => {
      assert.equal((await post(server, body)).status, 200);
    });
    for (
      const [what, change, tamper] of [
        ["another secret", { secret: "not-the-secret-at-all" }, undefined],
        ["another key", { key: "someone" }, undefined],
        ["a timestamp 11 minutes old (a replay)", { timestamp: Math.floor(Date.now() / 1000) - 660 }, undefined],
        ["a timestamp 11 minutes ahead", { timestamp: Math.floor(Date.now() / 1000) + 660 }, undefined],
        ["a body that is not the one signed", {}, JSON.stringify({ name: "e", channel: "victims", data: "evil" })],
        ["a body_md5 that is not the body's", { md5: md5Hex("other") }, undefined],
      ] as const
    ) {
      await t.step(`${what} → 401`, async () => {
        const path = `/apps/${PUSHER_APP.id}/events`;
        const url = signedUrl(server, "POST", path, body, change);
        const response = await fetch(url, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: tamper ?? body,
        });
        assert.equal(response.status, 401, await response.text());
      });
    }
    await t.step("a GET signed for another path → 401; an unknown app → 404", async () => {
      const url = signedUrl(server, "GET", `/apps/${PUSHER_APP.id}/channels`, undefined).replace(
        "/channels?",
        "/channels/victims?",
      );
      assert.equal((await fetch(url)).status, 401);
      await (await fetch(url)).body?.cancel();
      const other = await fetch(signedUrl(server, "GET", "/apps/nope/channels", undefined));
      assert.equal(other.status, 404);
      await other.body?.cancel();
    });
    await t.step("only the genuine event was stored", async () => {
      const stored = await server.hub.history("victims", { limit: 10 });
      assert.deepEqual(stored.messages.map((m) => m.data), [{ event: "e", data: {} }]);
    });
  },
);

Deno.test({ name: "Pusher API: oversized events and bodies are refused", ...opts }, async (t) => {
  await using server = await startTestServer({ pusherApps: [PUSHER_APP] });
  await t.step("data over 10 KB → 413", async () => {
    const big = JSON.stringify({ name: "e", channel: "c", data: "x".repeat(10_241) });
    assert.equal((await post(server, big)).status, 413);
  });
  await t.step("a body over the cap → 413 before it is read whole", async () => {
    const huge = JSON.stringify({ name: "e", channel: "c", data: "x".repeat(2_000_000) });
    assert.equal((await post(server, huge)).status, 413);
  });
  await t.step("data too deep or with a number JSON can't hold is stored as the string it came as", async () => {
    const deep = `${"[".repeat(100)}${"]".repeat(100)}`;
    for (const data of [deep, "[1e400]"]) {
      assert.equal((await post(server, JSON.stringify({ name: "odd", channel: "odd", data }))).status, 200);
    }
    const stored = await server.hub.history("odd", { limit: 5 });
    assert.deepEqual(stored.messages.map((m) => m.data), [{ event: "odd", data: deep }, {
      event: "odd",
      data: "[1e400]",
    }]);
  });

  await t.step("101 channels, a deep body, an event named pusher:… → 400", async () => {
    const channels = Array.from({ length: 101 }, (_, i) => `c${i}`);
    assert.equal((await post(server, JSON.stringify({ name: "e", channels, data: "{}" }))).status, 400);
    const deep = `{"name":"e","channel":"c","data":"{}","x":${"[".repeat(200)}${"]".repeat(200)}}`;
    assert.equal((await post(server, deep)).status, 400);
    assert.equal((await post(server, JSON.stringify({ name: "pusher:x", channel: "c", data: "{}" }))).status, 400);
  });
});

Deno.test(
  { name: "Pusher socket: bad channel_data and signatures get subscription errors; the socket lives", ...opts },
  async () => {
    await using server = await startTestServer({ pusherApps: [PUSHER_APP] });
    const raw = new RawPusher(server);
    const socketId = await raw.socketId();
    const api = sdk(server);
    const sign = (channel: string, channelData: string) => ({
      channel,
      channel_data: channelData,
      auth: `${PUSHER_APP.key}:${hmacHex(PUSHER_APP.secret, `${socketId}:${channel}:${channelData}`)}`,
    });
    const cases: [string, object][] = [
      ["not JSON", sign("presence-a", "{nope")],
      ["no user_id", sign("presence-b", JSON.stringify({ user_info: {} }))],
      ["user_id too long", sign("presence-c", JSON.stringify({ user_id: "u".repeat(200) }))],
      ["user_info over 1 KB", sign("presence-d", JSON.stringify({ user_id: "u", user_info: { x: "y".repeat(2000) } }))],
      ["no channel_data", { channel: "presence-e", auth: "key1:00" }],
      ["a signature for another socket", { channel: "private-f", ...api.authorizeChannel("1.2", "private-f") }],
      ["a channel name with a space", { channel: "bad name" }],
    ];
    for (const [what, data] of cases) {
      raw.send({ event: "pusher:subscribe", data });
      const error = await raw.next("pusher:subscription_error");
      assert.ok((error.data as { status: number }).status >= 400, what);
    }
    // Still connected, and a good subscription works.
    raw.send({
      event: "pusher:subscribe",
      data: { channel: "private-ok", ...api.authorizeChannel(socketId, "private-ok") },
    });
    await raw.next("pusher_internal:subscription_succeeded", (f) => f.channel === "private-ok");
    assert.deepEqual(await server.hub.presence("presence-a"), []);
    raw.close();
  },
);

Deno.test(
  { name: "Pusher socket: client events past the rate get 4301, then the flooder is closed", ...opts },
  async () => {
    await using server = await startTestServer({ pusherApps: [PUSHER_APP] });
    const listener = await privateClient(server, "private-flood");
    await listener.next("pusher_internal:subscription_succeeded");
    const flooder = await privateClient(server, "private-flood");
    await flooder.next("pusher_internal:subscription_succeeded");
    using probe = stallProbe();
    for (let i = 0; i < 200; i++) flooder.send({ event: "client-spam", channel: "private-flood", data: { i } });
    const closed = await flooder.closed;
    assert.ok(probe.stop() < 200, `the loop was held ${Math.round(probe.worst)} ms`);
    // Closed by the server as a flood (with 4301, which pusher-js does not retry; a client still
    // sending when the close comes may see the connection reset instead).
    assert.equal(server.metrics.closes.get("flood"), 1);
    if (closed.code !== 0 && closed.code !== 1006) assert.equal(closed.code, 4301);
    const limited = flooder.frames.filter((f) =>
      f.event === "pusher:error" && (f.data as { code: number }).code === 4301
    );
    assert.ok(limited.length >= 10, `${limited.length} rate-limit errors`);
    // The listener got the first ten (the burst), no more.
    await until(() => listener.frames.filter((f) => f.event === "client-spam").length >= 10, 3000, "the burst");
    assert.equal(listener.frames.filter((f) => f.event === "client-spam").length, 10);
    listener.close();
  },
);

Deno.test({ name: "Pusher socket: oversized client events and frames are refused", ...opts }, async () => {
  await using server = await startTestServer({ pusherApps: [PUSHER_APP] });
  const raw = await privateClient(server, "private-big");
  await raw.next("pusher_internal:subscription_succeeded");
  raw.send({ event: "client-big", channel: "private-big", data: "x".repeat(10_300) });
  assert.match(JSON.stringify((await raw.next("pusher:error")).data), /larger than 10240/);
  raw.send({ event: "client-big", channel: "private-big", data: "x".repeat(70_000) });
  assert.match(JSON.stringify((await raw.next("pusher:error")).data), /larger than 65536/);
  raw.send({ event: "pusher:ping", data: {} });
  await raw.next("pusher:pong");
  raw.close();
});

Deno.test(
  { name: "Pusher presence channel with 10,000 members: the join is bounded and the loop never held", ...opts },
  async () => {
    await using server = await startTestServer({ pusherApps: [PUSHER_APP] });
    const presence = server.engine.presence;
    for (let i = 0; i < 10_000; i++) {
      await presence.join("presence-huge", { id: `u${i}`, name: `U${i}`, info: { i } }, `c${i}`);
    }
    using probe = stallProbe();
    const raw = new RawPusher(server);
    const socketId = await raw.socketId();
    raw.send({
      event: "pusher:subscribe",
      data: {
        channel: "presence-huge",
        ...sdk(server).authorizeChannel(socketId, "presence-huge", { user_id: "me", user_info: { name: "Me" } }),
      },
    });
    const ok = await raw.next("pusher_internal:subscription_succeeded");
    const listed = (ok.data as { presence: { count: number; ids: string[] } }).presence;
    assert.ok(listed.count <= server.config.limits.memberEventsMax, `${listed.count} members listed`);
    const users = await (await sdk(server).get({ path: "/channels/presence-huge/users" })).json();
    assert.equal(users.users.length, 10_001);
    assert.ok(probe.stop() < 200, `the loop was held ${Math.round(probe.worst)} ms`);
    raw.close();
  },
);

Deno.test(
  { name: "Pusher, STOMP and WAMP sockets: another site's page is told why in its protocol, and closed", ...opts },
  async () => {
    await using server = await startTestServer({ pusherApps: [PUSHER_APP] });
    for (const path of [`/app/${PUSHER_APP.key}?protocol=7`, "/stomp", "/wamp"]) {
      const socket = new WebSocket(server.ws(path), { headers: { origin: "https://evil.example" } } as never);
      const frames: string[] = [];
      socket.onmessage = (e) => frames.push(String(e.data));
      const code = await new Promise<number>((resolve) => socket.onclose = (e) => resolve(e.code));
      assert.ok(code !== 1000 && code !== 1006, `${path}: closed by the server with a reason (${code})`);
      assert.equal(frames.length, 1, `${path}: one refusal, nothing else: ${frames.join(" | ")}`);
      assert.match(frames[0] ?? "", /ROOMCAST_ORIGINS/, path);
      assert.match(await upgradeStatus(server.url, path, server.url), /^HTTP\/1\.1 101/, path);
    }
    await until(() => server.admission.open === 0, 2000, "no slot held");
  },
);

Deno.test({
  name: "Pusher socket: past the per-address cap, pusher:error 4100 and the close (pusher-js backs off)",
  ...opts,
}, async () => {
  await using server = await startTestServer({ pusherApps: [PUSHER_APP], maxConnectionsPerIp: 1 });
  const first = new RawPusher(server);
  await first.socketId();
  const second = new RawPusher(server);
  const error = await second.next("pusher:error");
  assert.equal((error.data as { code: number }).code, 4100);
  assert.equal((await second.closed).code, 4100);
  assert.equal(server.admission.open, 1);
  first.close();
});
