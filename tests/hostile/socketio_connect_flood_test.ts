/**
 * Issue "hardening, round two", findings 1 and 2. One Engine.IO session carried any number of
 * Socket.IO connections: a polling POST of 330,000 CONNECT packets made a hub connection (and a
 * lobby member) for each, past admission, and froze the server for 50 s. And a BINARY_EVENT naming
 * one attachment thousands of times was base64-encoded once per name (3,000 × 300 KB: 58 s, then a
 * `RangeError`). Now a session carries one connection per namespace, connecting again spends the
 * connect rate, a body's packets let the loop run, and attachments are counted before anything is
 * encoded. The sizes are scaled down; a latency probe fails a test if the loop stalls.
 */
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { configWith } from "../../lib/config.ts";
import { signToken } from "../../lib/auth.ts";
import { startTestServer, type TestServer, type TestServerOptions } from "../_server.ts";
import { until } from "../_wait.ts";
import { eioHandshake, eioPost, sio2, sio4 } from "../_sio.ts";
import { stallProbe } from "../_stall.ts";
import { startCluster } from "../../routes/serve/cluster.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
/** The longest the event loop may be held by one attack (generous: CI machines are shared). */
const MAX_STALL_MS = 150;

/** EIO=3's polling framing: `<length>:<packet>` for each. */
const v3Payload = (packets: string[]) => packets.map((p) => `${p.length}:${p}`).join("");

async function lobbyMembers(server: TestServer): Promise<number> {
  return (await server.hub.presence("lobby")).length;
}

/** A Socket.IO client still gets its messages stored: the server is fine. */
async function stillServes(url: string): Promise<void> {
  const client = await sio4(url, { transports: ["websocket"] });
  const ack = await client.request("message", "still here") as { offset: number };
  assert.ok(ack.offset >= 1);
  client.close();
}

for (const layer of ["official", "own"] as const) {
  const server = (options: TestServerOptions = {}) =>
    startTestServer({ ...options, socketIo: { ...configWith().socketIo, layer } });

  Deno.test({
    name: `socket.io (${layer}): 100,000 CONNECT packets in one polling body make one connection at most`,
    ...opts,
    async fn() {
      await using s = await server();
      const sid = await eioHandshake(s.url);
      const body = Array(100_000).fill("40").join("\x1e");
      using probe = stallProbe();
      const response = await eioPost(s.url, sid, body);
      await response.body?.cancel();
      await until(() => s.admission.open === 0, 3000, "the session to end");
      const stall = probe.stop();
      assert.ok(s.hub.connectionCount <= 1, `${s.hub.connectionCount} hub connections`);
      assert.ok(await lobbyMembers(s) <= 1);
      assert.ok(stall < MAX_STALL_MS, `the event loop was held ${Math.round(stall)} ms`);
      assert.equal(s.hub.connectionCount, 0, "the session ended: its connection went with it");
      await stillServes(s.url);
    },
  });

  Deno.test({
    name: `socket.io (${layer}): CONNECT frames over a WebSocket, EIO=3, and with auth on and no token`,
    ...opts,
    async fn(t) {
      await t.step("5,000 CONNECT frames over one WebSocket: the session ends at the second", async () => {
        await using s = await server();
        const ws = new WebSocket(`${s.url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`);
        const closed = new Promise<CloseEvent>((resolve) => ws.onclose = resolve);
        await new Promise((resolve) => ws.onopen = resolve);
        using probe = stallProbe();
        for (let i = 0; i < 5_000; i++) ws.send("40");
        await closed;
        await until(() => s.admission.open === 0, 3000, "the session to end");
        assert.ok(probe.stop() < MAX_STALL_MS);
        assert.equal(s.hub.connectionCount, 0);
        assert.equal(await lobbyMembers(s), 0);
      });
      await t.step("EIO=3: CONNECT packets for the default namespace, connected already, end the session", async () => {
        await using s = await server();
        const sid = await eioHandshake(s.url, 3);
        const response = await eioPost(s.url, sid, v3Payload(Array(20_000).fill("40")), 3);
        await response.body?.cancel();
        await until(() => s.admission.open === 0, 3000, "the session to end");
        assert.equal(s.hub.connectionCount, 0);
      });
      await t.step("auth on, no token: one refusal, then the session ends; no JWT checked for the rest", async () => {
        await using s = await server({ authSecret: "a-secret-of-at-least-32-characters-long!" });
        const sid = await eioHandshake(s.url);
        using probe = stallProbe();
        const response = await eioPost(s.url, sid, Array(50_000).fill("40").join("\x1e"));
        await response.body?.cancel();
        await until(() => s.admission.open === 0, 3000, "the session to end");
        assert.ok(probe.stop() < MAX_STALL_MS);
        assert.equal(s.hub.connectionCount, 0);
      });
    },
  });
}

Deno.test({
  name: "socket.io: connecting again on one session spends the connect rate, as a new connection would",
  ...opts,
  async fn() {
    await using s = await startTestServer({ connectBurst: 4, connectWindowMs: 60_000 });
    const sid = await eioHandshake(s.url);
    const poll = async () => await (await fetch(`${s.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`)).text();
    // CONNECT, then DISCONNECT and CONNECT again, one body each: the handshake spent one token.
    let connected = 0;
    for (let i = 0; i < 6 && s.admission.open === 1; i++) {
      if (i > 0) await (await eioPost(s.url, sid, "41")).body?.cancel();
      const response = await eioPost(s.url, sid, "40");
      await response.body?.cancel();
      if (response.status !== 200) break;
      if (((await poll()).split("\x1e")).some((packet) => packet.startsWith("40{"))) connected++;
    }
    await until(() => s.admission.open === 0, 3000, "the session to end");
    assert.equal(connected, 4, "four connections in the burst of four, then the session ended");
    assert.equal(s.metrics.refused.get("rate"), 1);
    assert.equal(s.hub.connectionCount, 0);
  },
});

Deno.test({
  name: "socket.io: a flood of packets in one body lets the loop run, and stops once the session ends",
  ...opts,
  async fn() {
    await using s = await startTestServer();
    const bystander = await sio4(s.url, { transports: ["websocket"] });
    const sid = await eioHandshake(s.url);
    const connect = await eioPost(s.url, sid, "40");
    await connect.body?.cancel();
    await until(() => s.hub.connectionCount === 2, 3000, "the flooder's connection");
    // Acks for requests never made: socket.io drops each, at some cost.
    const body = Array(200_000).fill("30[]").join("\x1e");
    using probe = stallProbe();
    const response = await eioPost(s.url, sid, body);
    await response.body?.cancel();
    assert.ok(probe.stop() < MAX_STALL_MS, `the event loop was held ${Math.round(probe.worst)} ms`);
    const ack = await bystander.request("message", "through the flood") as { offset: number };
    assert.equal(ack.offset, 1);
    bystander.close();
  },
});

/** A BINARY_EVENT `message` whose data names attachment 0 `names` times, and that attachment. */
function binaryBomb(names: number, bytes: number): [string, Uint8Array] {
  const placeholders = Array(names).fill('{"_placeholder":true,"num":0}').join(",");
  return [`451-["message",[${placeholders}]]`, new Uint8Array(bytes).fill(7)];
}

for (const layer of ["official", "own"] as const) {
  Deno.test({
    name: `socket.io (${layer}): one attachment named 3,000 times is refused before anything is encoded`,
    ...opts,
    async fn() {
      await using s = await startTestServer({ socketIo: { ...configWith().socketIo, layer } });
      const ws = new WebSocket(`${s.url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`);
      ws.binaryType = "arraybuffer";
      const got: string[] = [];
      ws.onmessage = (e) => typeof e.data === "string" && got.push(e.data);
      await new Promise((resolve) => ws.onopen = resolve);
      ws.send("40");
      await until(() => got.some((m) => m.startsWith("40")), 3000, "CONNECT");
      const [head, attachment] = binaryBomb(3_000, 30_000);
      using probe = stallProbe();
      ws.send(head.replace("451-", "451-7"));
      ws.send(attachment);
      await until(() => got.some((m) => m.startsWith("437")), 5000, "the ack");
      assert.ok(probe.stop() < MAX_STALL_MS, `the event loop was held ${Math.round(probe.worst)} ms`);
      const ack = got.find((m) => m.startsWith("437")) as string;
      assert.match(ack, /"bad_request"/);
      assert.match(ack, /named once/);
      // Many distinct attachments over the frame limit: too_large, nothing stored.
      ws.send('452-8["message",[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]]');
      ws.send(new Uint8Array(40_000));
      ws.send(new Uint8Array(40_000));
      await until(() => got.some((m) => m.startsWith("438")), 5000, "the second ack");
      assert.match(got.find((m) => m.startsWith("438")) as string, /too_large/);
      assert.deepEqual((await s.hub.history("lobby", { limit: 10 })).messages, []);
      ws.close();
      await stillServes(s.url);
    },
  });
}

Deno.test({
  name: "socket.io: attachments are counted as they come: too many announced, too large, or none due",
  ...opts,
  async fn(t) {
    await using s = await startTestServer({ socketIo: { ...configWith().socketIo, maxPayload: 100_000 } });
    const attempt = async (frames: (string | Uint8Array)[]) => {
      const ws = new WebSocket(`${s.url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`);
      const closed = new Promise<CloseEvent>((resolve) => ws.onclose = resolve);
      await new Promise((resolve) => ws.onopen = resolve);
      ws.send("40");
      for (const frame of frames) ws.send(frame);
      await closed;
    };
    await t.step("11 attachments announced", async () => {
      await attempt(['4511-["message",' + '{"_placeholder":true,"num":0},'.repeat(10) + "1]"]);
    });
    await t.step("a million attachments announced", async () => {
      await attempt(['451000000-["message",{"_placeholder":true,"num":0}]']);
    });
    await t.step("attachments over the payload cap together", async () => {
      await attempt([
        '453-["message",[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1},{"_placeholder":true,"num":2}]]',
        new Uint8Array(60_000),
        new Uint8Array(60_000),
      ]);
    });
    await t.step("binary data with no packet waiting for it", async () => {
      await attempt([new Uint8Array(10)]);
    });
    await until(() => s.admission.open === 0, 3000, "every session to end");
    assert.equal(s.hub.connectionCount, 0);
    await stillServes(s.url);
  },
});

Deno.test({
  name: "socket.io: EIO=3 (2.x clients) too: a repeated attachment is refused; 2.x and 4.x clients' binary is stored",
  ...opts,
  async fn() {
    await using s = await startTestServer();
    const ws = new WebSocket(`${s.url.replace("http", "ws")}/socket.io/?EIO=3&transport=websocket`);
    ws.binaryType = "arraybuffer";
    const got: string[] = [];
    ws.onmessage = (e) => typeof e.data === "string" && got.push(e.data);
    await new Promise((resolve) => ws.onopen = resolve);
    await until(() => got.some((m) => m.startsWith("40")), 3000, "CONNECT");
    const [head, attachment] = binaryBomb(2_000, 30_000);
    ws.send(head.replace("451-", "451-7"));
    // EIO=3 binary frames lead with the packet type (4: message).
    ws.send(new Uint8Array([4, ...attachment.subarray(0, 1000)]));
    await until(() => got.some((m) => m.startsWith("437")), 5000, "the ack");
    assert.match(got.find((m) => m.startsWith("437")) as string, /named once/);
    ws.close();
    await until(() => s.hub.connectionCount === 0, 3000, "the raw session to end");
    for (const connect of [sio4, sio2]) {
      const client = await connect(s.url, { transports: ["websocket"] });
      // socket.io-client 2.x sends an ArrayBuffer as binary (a Uint8Array as JSON).
      const bytes = new Uint8Array([1, 2, 3]).buffer;
      // A client sends the same bytes twice as two attachments: fine.
      const reply = await client.request("message", { room: "lobby", data: [bytes, bytes] }) as { offset?: number };
      assert.ok((reply.offset ?? 0) >= 1, JSON.stringify(reply));
      client.close();
      await until(() => s.hub.connectionCount === 0, 3000, "the client to be gone");
    }
    const stored = (await s.hub.history("lobby", { limit: 10 })).messages.map((m) => m.data);
    assert.deepEqual(stored, [[{ $binary: "AQID" }, { $binary: "AQID" }], [{ $binary: "AQID" }, { $binary: "AQID" }]]);
  },
});

Deno.test({
  name: "socket.io with two isolates: a CONNECT flood makes one connection at most, and the loop runs",
  ...opts,
  async fn() {
    const config = configWith({ port: 0, hostname: "127.0.0.1", kvPath: ":memory:", workers: 2 });
    await using cluster = await startCluster({ config, memory: true });
    const sids = await Promise.all(Array.from({ length: 4 }, () => eioHandshake(cluster.url)));
    using probe = stallProbe();
    for (const sid of sids) {
      const response = await eioPost(cluster.url, sid, Array(50_000).fill("40").join("\x1e"));
      await response.body?.cancel();
    }
    assert.ok(probe.stop() < MAX_STALL_MS * 2, `the event loop was held ${Math.round(probe.worst)} ms`);
    const client = io(cluster.url, { transports: ["websocket"], reconnection: false, forceNew: true });
    await new Promise((resolve) => client.on("connect", () => resolve(undefined)));
    await until(
      async () => {
        const members = await (await fetch(`${cluster.url}/api/rooms/lobby/presence`)).json();
        return members.members?.length === 1;
      },
      5000,
      "the lobby to hold the one well-behaved client only",
    );
    client.close();
  },
});

Deno.test({
  name: "socket.io with auth: each connection's token is checked; a valid one connects once per session",
  ...opts,
  async fn() {
    const secret = "a-secret-of-at-least-32-characters-long!";
    await using s = await startTestServer({ authSecret: secret });
    const token = await signToken({ sub: "ana", exp: Math.floor(Date.now() / 1000) + 600 }, secret);
    const client = await sio4(s.url, { transports: ["websocket"], auth: { token } });
    assert.equal(s.hub.connectionCount, 1);
    client.close();
  },
});
