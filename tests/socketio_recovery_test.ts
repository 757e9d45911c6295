/**
 * Socket.IO's connection state recovery (routes/transports/socketio/recovery.ts) with the stock
 * socket.io-client 4 and on the wire as socket.io's own `test/connection-state-recovery.ts` asks:
 * `{sid, pid}` in the CONNECT answer, an offset ending each event, `{pid, offset}` coming back;
 * drops by `socket.io.engine.close()` and by a cut TCP connection; messages published during the
 * gap from `/ws`, HTTP and another Socket.IO client, in order and once; rooms and user back; a
 * session too old; forged and foreign sessions; across two Workers, two processes on Redis and two
 * Deploy-mode instances on one KV.
 */
import assert from "node:assert/strict";
import { signToken } from "../lib/auth.ts";
import { configWith } from "../lib/config.ts";
import { postJson, startTestServer, type TestServer, twoServers, twoWorkers } from "./_server.ts";
import { eioHandshake, eioPost, sio4, sio4Reconnecting, type SioClient } from "./_sio.ts";
import { redisTest } from "./_redis.ts";
import { startTcpProxy } from "./_tcp_proxy.ts";
import { stallProbe } from "./_stall.ts";
import { until } from "./_wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

const withRecovery = (recoveryMs = 120_000) => ({ socketIo: { ...configWith().socketIo, recoveryMs } });

type Meta = { offset: number; from: { id: string } };

/** The data of the next `n` lobby messages `client` gets (each also checked to end with an offset). */
async function lobbyMessages(client: SioClient, n: number, ms = 6000): Promise<unknown[]> {
  const out: unknown[] = [];
  for (let i = 0; i < n; i++) {
    const args = await client.next("message", undefined, ms);
    assert.equal(typeof args.at(-1), "string", "each event ends with its offset");
    out.push(args[0]);
  }
  return out;
}

/** What a stock client's socket keeps for recovery (socket.io-client 4.6+'s private fields). */
const pidOf = (client: SioClient) => (client.socket as unknown as { _pid?: string })._pid;

// ── on the wire, as socket.io's own server test asks ───────────────────────────────────────────

async function eioPush(server: TestServer, sid: string, body: string): Promise<void> {
  const response = await eioPost(server.url, sid, body);
  assert.equal(response.status, 200);
  await response.body?.cancel();
}

async function eioPoll(server: TestServer, sid: string): Promise<string[]> {
  return (await (await server.fetch(`/socket.io/?EIO=4&transport=polling&sid=${sid}`)).text()).split("\x1e");
}

/** Polls until a packet passes `pred`; returns the packets polled. */
async function pollUntil(server: TestServer, sid: string, pred: (packet: string) => boolean): Promise<string[]> {
  const seen: string[] = [];
  for (let i = 0; i < 10 && !seen.some(pred); i++) seen.push(...await eioPoll(server, sid));
  return seen;
}

Deno.test(
  { name: "recovery on the wire: pid in CONNECT, offsets on events, missed packets come back", ...opts },
  async () => {
    await using server = await startTestServer(withRecovery());
    const sid = await eioHandshake(server.url);
    await eioPush(server, sid, "40");
    const first = await pollUntil(server, sid, (p) => p.startsWith('42["joined"'));
    const connect = JSON.parse((first.find((p) => p.startsWith("40")) as string).slice(2));
    assert.ok(connect.sid && connect.pid, "the CONNECT answer carries sid and pid");
    await postJson(server, "/api/rooms/lobby/messages", { data: "hello" });
    const hello = (await pollUntil(server, sid, (p) => p.startsWith('42["message"'))).find((p) =>
      p.startsWith('42["message"')
    ) as string;
    const offset = JSON.parse(hello.slice(2)).at(-1);
    assert.equal(typeof offset, "string", "each event packet ends with an offset");
    await eioPush(server, sid, "1"); // the client closes its Engine.IO session: a drop

    await postJson(server, "/api/rooms/lobby/messages", { data: "hello1" });
    await postJson(server, "/api/rooms/lobby/messages", { data: "hello2" });
    const again = await eioHandshake(server.url);
    await eioPush(server, again, `40{"pid":"${connect.pid}","offset":"${offset}"}`);
    const packets = await pollUntil(server, again, (p) => p.includes('"hello2"'));
    assert.deepEqual(JSON.parse((packets[0] as string).slice(2)), { sid: connect.sid, pid: connect.pid });
    const events = packets.slice(1).map((p) => JSON.parse(p.slice(2)));
    assert.deepEqual(events.map((e) => [e[0], e[1]]), [["message", "hello1"], ["message", "hello2"]]);
  },
);

Deno.test({ name: "recovery on the wire: an unknown session gets a fresh one; off, no pid", ...opts }, async () => {
  {
    await using server = await startTestServer(withRecovery());
    const sid = await eioHandshake(server.url);
    await eioPush(server, sid, '40{"pid":"foo","offset":"bar"}');
    const [connect] = await pollUntil(server, sid, (p) => p.startsWith("40"));
    const handshake = JSON.parse((connect as string).slice(2));
    assert.notEqual(handshake.sid, "foo");
    assert.ok(handshake.pid && handshake.pid !== "foo");
  }
  {
    await using server = await startTestServer(withRecovery(0));
    const sid = await eioHandshake(server.url);
    await eioPush(server, sid, "40");
    const [connect] = await pollUntil(server, sid, (p) => p.startsWith("40"));
    const handshake = JSON.parse((connect as string).slice(2));
    assert.ok(handshake.sid);
    assert.equal(handshake.pid, undefined, "recovery off: no private session id");
  }
});

Deno.test(
  { name: "recovery on the wire: a pong lets the log go; after it, only offsets since the ping recover", ...opts },
  async () => {
    await using server = await startTestServer({
      socketIo: { ...configWith().socketIo, recoveryMs: 120_000, pingIntervalMs: 150, pingTimeoutMs: 5000 },
    });
    /** A session that has read two lobby messages, then a ping it answers, then a third it never reads. */
    const session = async (tag: string) => {
      const sid = await eioHandshake(server.url);
      await eioPush(server, sid, "40");
      const first = await pollUntil(server, sid, (p) => p.startsWith('42["joined"'));
      const { pid } = JSON.parse((first.find((p) => p.startsWith("40")) as string).slice(2));
      await postJson(server, "/api/rooms/lobby/messages", { data: `${tag}1` });
      await postJson(server, "/api/rooms/lobby/messages", { data: `${tag}2` });
      const read = await pollUntil(server, sid, (p) => p.includes(`"${tag}2"`));
      const offsets = read.filter((p) => p.startsWith('42["message"')).map((p) => JSON.parse(p.slice(2)).at(-1));
      assert.equal(offsets.length, 2);
      // The server's ping (every 150 ms), after what it wrote before; the client answers it.
      const pinged = await pollUntil(server, sid, (p) => p === "2");
      assert.ok(pinged.includes("2"), "a ping came");
      await eioPush(server, sid, "3");
      await postJson(server, "/api/rooms/lobby/messages", { data: `${tag}3` });
      await eioPush(server, sid, "1"); // a drop, before it read the third
      return { pid: pid as string, offsets: offsets as string[] };
    };
    const reconnect = async (pid: string, offset: string, until: string) => {
      const sid = await eioHandshake(server.url);
      await eioPush(server, sid, `40{"pid":"${pid}","offset":"${offset}"}`);
      const packets = await pollUntil(server, sid, (p) => p.includes(until));
      const answer = JSON.parse((packets.find((p) => p.startsWith("40")) as string).slice(2));
      const messages = packets.filter((p) => p.startsWith('42["message"')).map((p) => JSON.parse(p.slice(2))[1]);
      return { recovered: answer.pid === pid, messages };
    };

    // From its last offset: the message it missed, once.
    const a = await session("a");
    assert.deepEqual(await reconnect(a.pid, a.offsets[1] as string, '"a3"'), { recovered: true, messages: ["a3"] });
    // From an offset before the answered ping: not its client's any more, a fresh session.
    const b = await session("b");
    const stale = await reconnect(b.pid, b.offsets[0] as string, '42["joined"');
    assert.deepEqual(stale, { recovered: false, messages: [] });
  },
);

// ── the stock client ───────────────────────────────────────────────────────────────────────────

Deno.test({
  name: "socket.io-client 4 after engine.close(): recovered, same id, rooms and user back, " +
    "gap messages from /ws, HTTP and Socket.IO in order and once, then live",
  ...opts,
}, async () => {
  await using server = await startTestServer(withRecovery());
  const client = await sio4Reconnecting(server.url, { transports: ["websocket"] });
  assert.equal(client.socket.recovered, false);
  await client.next("joined"); // the lobby's, on connecting
  await client.request("join", "r");
  const other = await sio4(server.url, { transports: ["websocket"] });
  const writer = await server.joined("r");
  writer.send({ type: "publish", room: "r", data: "r0" });
  const [first] = await client.next("message", ([m]) => (m as { data?: string }).data === "r0");
  const id = client.socket.id;
  const pid = pidOf(client);
  assert.ok(pid);
  const mine = await client.request("message", "mine before") as { offset: number };
  assert.ok(mine.offset >= 1);
  const user = await other.next("message", ([data]) => data === "mine before");
  const userId = (user[1] as Meta).from.id;

  // The drop: the client reconnects by itself 50 ms later; meanwhile three kinds of publisher.
  const reconnected = client.next("connect", undefined, 6000);
  client.socket.io.engine.close();
  writer.send({ type: "publish", room: "r", data: "r1" });
  await postJson(server, "/api/rooms/lobby/messages", { data: "http" });
  await other.request("message", "from socket.io");
  writer.send({ type: "publish", room: "r", data: "r2" });
  await reconnected;
  assert.equal(client.socket.recovered, true);
  assert.equal(client.socket.id, id);
  assert.equal(pidOf(client), pid);
  assert.equal((first as { data: string }).data, "r0");

  // Live after the replay: in the room it had joined, without joining again.
  writer.send({ type: "publish", room: "r", data: "r3" });
  const got: string[] = [];
  for (let i = 0; i < 6; i++) {
    const [a] = await client.next("message", undefined, 6000);
    got.push(typeof a === "string" ? a : (a as { data: string }).data);
    if (got.at(-1) === "r3") break;
  }
  const rooms = got.filter((d) => d.startsWith("r"));
  assert.deepEqual(rooms, ["r1", "r2", "r3"], "room r's messages in order, once");
  assert.deepEqual(got.filter((d) => !d.startsWith("r")), ["http", "from socket.io"], "the lobby's, in order");
  assert.equal(got.length, 5, "nothing twice");
  assert.equal(client.received.filter((r) => r.event === "joined").length, 0, "no join answers on recovery");

  // The same user: others see its messages from the same id.
  await client.request("message", "mine after");
  const after = await other.next("message", ([data]) => data === "mine after");
  assert.equal((after[1] as Meta).from.id, userId);
  client.close();
  other.close();
  await writer.close();
});

Deno.test(
  { name: "socket.io-client 4 after its TCP connection is cut: recovered, nothing missed", ...opts },
  async () => {
    await using server = await startTestServer(withRecovery());
    const proxy = startTcpProxy(Number(new URL(server.url).port), "http");
    try {
      const client = await sio4Reconnecting(proxy.url, { transports: ["websocket"], reconnectionDelay: 200 });
      const writer = await server.joined("lobby");
      writer.send({ type: "publish", room: "lobby", data: "one" });
      assert.deepEqual(await lobbyMessages(client, 1), ["one"]);
      proxy.cut();
      await client.next("disconnect", undefined, 6000);
      for (const data of ["two", "three", "four"]) writer.send({ type: "publish", room: "lobby", data });
      proxy.restore();
      await client.next("connect", undefined, 6000);
      assert.equal(client.socket.recovered, true);
      writer.send({ type: "publish", room: "lobby", data: "five" });
      assert.deepEqual(await lobbyMessages(client, 4), ["two", "three", "four", "five"]);
      client.close();
      await writer.close();
    } finally {
      proxy.close();
    }
  },
);

Deno.test({ name: "a client back after ROOMCAST_SIO_RECOVERY gets a fresh session", ...opts }, async () => {
  await using server = await startTestServer(withRecovery(300));
  const client = await sio4Reconnecting(server.url, { transports: ["websocket"], reconnectionDelay: 800 });
  const id = client.socket.id;
  const pid = pidOf(client);
  await client.next("joined");
  client.socket.io.engine.close();
  await client.next("connect", undefined, 6000);
  assert.equal(client.socket.recovered, false);
  assert.notEqual(client.socket.id, id);
  assert.notEqual(pidOf(client), pid);
  const [joined] = await client.next("joined") as [{ room: string }];
  assert.equal(joined.room, "lobby", "a fresh session starts in the lobby again");
  client.close();
});

// ── hostile ────────────────────────────────────────────────────────────────────────────────────

Deno.test(
  { name: "hostile: forged sessions and offsets get fresh sessions, never another's rooms", ...opts },
  async () => {
    await using server = await startTestServer(withRecovery());
    const victim = await sio4Reconnecting(server.url, { transports: ["websocket"], reconnectionDelay: 1000 });
    await victim.request("join", "secret");
    await victim.next("joined");
    const pid = pidOf(victim) as string;
    const offset = (victim.socket as unknown as { _lastOffset: string })._lastOffset;
    victim.socket.io.engine.close(); // parked now; back in 1 s

    using probe = stallProbe();
    const forged = [
      { pid: "x".repeat(20), offset: "1" },
      { pid: "y".repeat(5000), offset: "1" },
      { pid, offset: "999999" }, // past anything handed out
      { pid, offset: "-1" },
      { pid, offset: "1e3" },
      { pid, offset: "bar" },
      { pid: 42, offset: 1 },
    ];
    for (const auth of forged) {
      const attacker = await sio4(server.url, { transports: ["websocket"], auth });
      assert.equal(attacker.socket.recovered, false, JSON.stringify(auth).slice(0, 80));
      assert.notEqual(pidOf(attacker), pid);
      const [joined] = await attacker.next("joined") as [{ room: string }];
      assert.equal(joined.room, "lobby");
      attacker.close();
    }
    // Fifty at once: the loop is never held.
    const many = await Promise.all(
      Array.from(
        { length: 50 },
        (_, i) => sio4(server.url, { transports: ["websocket"], auth: { pid: `f${i}`, offset: "3" } }),
      ),
    );
    assert.ok(many.every((c) => c.socket.recovered === false));
    for (const c of many) c.close();
    assert.ok(probe.stop() < 150, `the loop was held ${probe.worst.toFixed(0)} ms`);

    // Offsets it never handed out left the session parked: the victim, back, recovers it.
    const writer = await server.joined("secret");
    writer.send({ type: "publish", room: "secret", data: "s" });
    await victim.next("connect", undefined, 6000);
    assert.equal(victim.socket.recovered, true);
    const [message] = await victim.next("message", ([m]) => (m as { data?: string }).data === "s");
    assert.equal((message as { room: string }).room, "secret");
    assert.equal(offset !== undefined, true);
    victim.close();
    await writer.close();
  },
);

Deno.test({ name: "hostile: with auth on, another user's token never gets the session", ...opts }, async () => {
  const secret = "recovery-secret-0123456789abcdef";
  await using server = await startTestServer({ ...withRecovery(), authSecret: secret });
  const alice = await signToken({ sub: "alice", name: "Alice" }, secret);
  const mallory = await signToken({ sub: "mallory", name: "Mallory" }, secret);
  const client = await sio4Reconnecting(server.url, {
    transports: ["websocket"],
    auth: { token: alice },
    reconnectionDelay: 600,
  });
  await client.request("join", "alice-only");
  await client.next("joined");
  const pid = pidOf(client) as string;
  const offset = (client.socket as unknown as { _lastOffset: string })._lastOffset;
  client.socket.io.engine.close();

  const thief = await sio4(server.url, { transports: ["websocket"], auth: { token: mallory, pid, offset } });
  assert.equal(thief.socket.recovered, false);
  assert.notEqual(thief.socket.id, client.socket.id);
  const writer = await server.joined("alice-only", `?token=${alice}`);
  writer.send({ type: "publish", room: "alice-only", data: "for alice" });
  // Alice, back with her own token, still recovers: the thief's try left her session parked.
  await client.next("connect", undefined, 6000);
  assert.equal(client.socket.recovered, true);
  const [message] = await client.next("message", ([m]) => (m as { data?: string }).data === "for alice");
  assert.equal((message as { room: string }).room, "alice-only");
  assert.equal(thief.received.some((r) => JSON.stringify(r.args).includes("for alice")), false);
  thief.close();
  client.close();
  await writer.close();
});

// ── across isolates, processes and instances ───────────────────────────────────────────────────

/** A client on `a` drops and comes back on `b` (socket.io-client reconnects to its manager's
 * `uri`), while `a` publishes: it recovers there. */
async function acrossNodes(a: TestServer, b: TestServer): Promise<void> {
  const client = await sio4Reconnecting(a.url, { transports: ["websocket"] });
  await client.request("join", "x");
  const writer = await a.joined("x");
  writer.send({ type: "publish", room: "x", data: "x1" });
  await client.next("message", ([m]) => (m as { data?: string }).data === "x1");
  const id = client.socket.id;
  (client.socket.io as unknown as { uri: string }).uri = b.url;
  const back = client.next("connect", undefined, 8000);
  client.socket.io.engine.close();
  for (const data of ["x2", "x3"]) writer.send({ type: "publish", room: "x", data });
  await back;
  assert.equal(client.socket.recovered, true);
  assert.equal(client.socket.id, id);
  writer.send({ type: "publish", room: "x", data: "x4" });
  const got: string[] = [];
  for (let i = 0; i < 3; i++) {
    const [m] = await client.next("message", (args) => (args[0] as { room?: string }).room === "x", 8000);
    got.push((m as { data: string }).data);
  }
  assert.deepEqual(got, ["x2", "x3", "x4"]);
  client.close();
  await writer.close();
}

redisTest("recovery across two processes on one Redis", async (redis) => {
  await using pair = await twoServers({ redisUrl: redis.url }, withRecovery());
  await acrossNodes(...pair.servers);
});

Deno.test({ name: "recovery across two Deploy-mode instances on one KV", ...opts }, async () => {
  await using pair = await twoServers("kv", withRecovery());
  await acrossNodes(...pair.servers);
});

Deno.test({ name: "recovery across the two Workers of one process", ...opts }, async () => {
  const cluster = await twoWorkers(withRecovery());
  try {
    const client = await sio4Reconnecting(cluster.url, { transports: ["websocket"] });
    const native = new WebSocket(cluster.url.replace(/^http/, "ws") + "/ws");
    await new Promise((resolve) => native.onopen = resolve);
    native.send(JSON.stringify({ type: "join", room: "lobby" }));
    // Engine.IO session ids end with the id of the Worker that holds them (eio/forward.ts).
    const worker = () => client.socket.io.engine.id?.split(".").at(-1) ?? "";
    const first = worker();
    const sent: string[] = [];
    const got: unknown[] = [];
    client.socket.on("message", (data: unknown) => got.push(data));
    // The stock client asks for recovery only once it holds an offset (one event received), as
    // socket.io's server requires: the first drop waits for one.
    sent.push("before");
    native.send(JSON.stringify({ type: "publish", room: "lobby", data: "before" }));
    await until(() => got.length === 1, 6000, "the first event");
    for (let drop = 0; drop < 24 && worker() === first; drop++) {
      const back = client.next("connect", undefined, 6000);
      client.socket.io.engine.close();
      const data = `m${drop}`;
      sent.push(data);
      native.send(JSON.stringify({ type: "publish", room: "lobby", data }));
      await back;
      assert.equal(client.socket.recovered, true, `drop ${drop}`);
    }
    assert.notEqual(worker(), first, "the client came back on the other Worker");
    await until(() => got.length === sent.length, 6000, () => `${got.length} of ${sent.length} messages`);
    assert.deepEqual(got, sent);
    native.close();
    client.close();
  } finally {
    await cluster.drain();
  }
});
