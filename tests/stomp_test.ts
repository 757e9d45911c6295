/**
 * STOMP 1.2 against roomcast with @stomp/stompjs 7: subscribe and send in rooms shared with /ws
 * and Socket.IO, receipts, recovery with `since`, transactions, binary bodies, heart-beats, auth
 * (a JWT as CONNECT's passcode, the rooms claim), and the errors the spec asks for.
 */
import assert from "node:assert/strict";
import { signToken } from "../lib/auth.ts";
import { isType } from "./_client.ts";
import { sio4 } from "./_sio.ts";
import { postJson, startTestServer } from "./_server.ts";
import { collectMessages, RawStomp, receiptOf, stompClient } from "./_stomp.ts";
import { quiet, until } from "./_wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test({ name: "STOMP: one room with /ws and Socket.IO clients, receipts, offsets", ...opts }, async (t) => {
  await using server = await startTestServer();
  const stomp = await stompClient(server);
  const ws = await server.joined("chat");
  const io = await sio4(server.url, { transports: ["websocket"] });
  try {
    const seen = collectMessages(stomp, "/topic/chat", { receipt: "sub-1" });
    await receiptOf(stomp, "sub-1");
    await new Promise<void>((resolve) => io.socket.emit("join", "chat", () => resolve()));

    await t.step("a SEND is stored, acknowledged by RECEIPT, and reaches /ws and Socket.IO", async () => {
      const receipt = receiptOf(stomp, "send-1");
      stomp.publish({ destination: "/topic/chat", body: "hello from stomp", headers: { receipt: "send-1" } });
      await receipt;
      const m = await ws.next(isType("message"));
      assert.deepEqual([m.data, m.offset], ["hello from stomp", 1]);
      const atIo = await io.next("message");
      assert.equal((atIo[0] as { data: string }).data, "hello from stomp");
      const stored = await server.hub.history("chat", { limit: 5 });
      assert.deepEqual(stored.messages.map((s) => s.data), ["hello from stomp"]);
    });

    await t.step(
      "a /ws publish, an HTTP publish and a Socket.IO message reach STOMP with offset and epoch",
      async () => {
        await ws.request({ type: "publish", room: "chat", data: { n: 2 } });
        await (await postJson(server, "/api/rooms/chat/messages", { data: "three" })).body?.cancel();
        io.socket.emit("message", { room: "chat", data: "four" });
        await until(() => seen.length === 3, 3000, "three messages");
        // The /ws client reads the two it did not publish.
        assert.deepEqual([(await ws.next(isType("message"))).data, (await ws.next(isType("message"))).data], [
          "three",
          "four",
        ]);
        assert.deepEqual(seen.map((m) => [m.body, m.headers["content-type"], m.headers.offset]), [
          ['{"n":2}', "application/json", "2"],
          ["three", "text/plain;charset=utf-8", "3"],
          ["four", "text/plain;charset=utf-8", "4"],
        ]);
        assert.equal(seen[0]?.headers.destination, "/topic/chat");
        assert.ok(seen[0]?.headers.epoch);
        assert.ok(seen[0]?.headers["message-id"]);
      },
    );

    await t.step("a JSON SEND is stored as JSON; a binary body as bytes, back as bytes", async () => {
      stomp.publish({
        destination: "/topic/chat",
        body: '{"x":[1,2]}',
        headers: { "content-type": "application/json" },
      });
      assert.deepEqual((await ws.next(isType("message"))).data, { x: [1, 2] });
      const bytes = new Uint8Array([0, 1, 2, 255, 0, 7]);
      const other = await stompClient(server);
      const atOther = collectMessages(other, "/topic/chat", { receipt: "o" });
      await receiptOf(other, "o");
      stomp.publish({
        destination: "/topic/chat",
        binaryBody: bytes,
        headers: { "content-type": "application/octet-stream" },
      });
      assert.deepEqual((await ws.next(isType("message"))).data, { $binary: btoa(String.fromCharCode(...bytes)) });
      await until(() => atOther.length === 1, 3000, "the binary message");
      assert.deepEqual([...(atOther[0]?.binaryBody ?? [])], [...bytes]);
      await other.deactivate();
    });
  } finally {
    await stomp.deactivate();
    await ws.close();
    io.close();
  }
});

Deno.test(
  { name: "STOMP: SUBSCRIBE with since recovers what was missed; a RECEIPT says if it could", ...opts },
  async () => {
    await using server = await startTestServer();
    const first = await (await postJson(server, "/api/rooms/news/messages", { data: "m1" })).json();
    for (const data of ["m2", "m3"]) {
      await (await postJson(server, "/api/rooms/news/messages", { data })).body
        ?.cancel();
    }
    const stomp = await stompClient(server);
    try {
      const seen = collectMessages(stomp, "/topic/news", { since: `${first.epoch}:1`, receipt: "r" });
      const receipt = await receiptOf(stomp, "r");
      assert.equal(receipt.headers.recovered, "true");
      await until(() => seen.length === 2, 3000, "the two missed");
      assert.deepEqual(seen.map((m) => m.body), ["m2", "m3"]);
      // A bare offset recovers in the room's current epoch.
      const again = collectMessages(stomp, "/topic/news2", { since: "0" });
      await (await postJson(server, "/api/rooms/news2/messages", { data: "n1" })).body?.cancel();
      await until(() => again.length === 1, 3000, "n1");
    } finally {
      await stomp.deactivate();
    }
  },
);

Deno.test({ name: "STOMP: transactions store their SENDs on COMMIT, none on ABORT", ...opts }, async () => {
  await using server = await startTestServer();
  const stomp = await stompClient(server);
  try {
    const tx = stomp.begin("t1");
    stomp.publish({ destination: "/topic/tx", body: "a", headers: { transaction: tx.id } });
    stomp.publish({ destination: "/topic/tx", body: "b", headers: { transaction: tx.id } });
    const aborted = stomp.begin("t2");
    stomp.publish({ destination: "/topic/tx", body: "never", headers: { transaction: aborted.id } });
    aborted.abort();
    await quiet(200, "nothing stored before the commit");
    assert.equal((await server.hub.history("tx", { limit: 10 })).messages.length, 0);
    stomp.commit("t1");
    await until(async () => (await server.hub.history("tx", { limit: 10 })).messages.length === 2, 3000, "two stored");
    assert.deepEqual((await server.hub.history("tx", { limit: 10 })).messages.map((m) => m.data), ["a", "b"]);
  } finally {
    await stomp.deactivate();
  }
});

Deno.test({ name: "STOMP: heart-beats are negotiated from ROOMCAST_HEARTBEAT", ...opts }, async () => {
  await using server = await startTestServer({ heartbeatMs: 1000 });
  const raw = new RawStomp(server);
  await raw.opened;
  raw.send("CONNECT\naccept-version:1.2\nheart-beat:500,500\n\n\0");
  const connected = await raw.next("CONNECTED");
  assert.match(connected, /^version:1\.2$/m);
  assert.match(connected, /^heart-beat:1000,1000$/m);
  assert.equal(raw.socket.protocol, "v12.stomp");
  raw.socket.close();
  const quietOne = new RawStomp(server);
  await quietOne.opened;
  quietOne.send("CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\0");
  assert.match(await quietOne.next("CONNECTED"), /^heart-beat:0,0$/m);
  quietOne.socket.close();
});

Deno.test(
  { name: "STOMP with auth: the JWT as passcode, the rooms claim, and ERROR then close", ...opts },
  async (t) => {
    const secret = "stomp-secret-stomp-secret";
    await using server = await startTestServer({ authSecret: secret });
    const token = await signToken({ sub: "ann", name: "Ann", rooms: ["team-*"] }, secret);

    await t.step("no token: ERROR and the close", async () => {
      const raw = new RawStomp(server);
      await raw.opened;
      raw.send("CONNECT\naccept-version:1.2\n\n\0");
      assert.match(await raw.next("ERROR"), /token is required/);
      await raw.closed;
    });

    await t.step("passcode: connected as the token's user; a room outside the claim is an ERROR", async () => {
      const stomp = await stompClient(server, { connectHeaders: { login: "ignored", passcode: token } });
      collectMessages(stomp, "/topic/team-a", { receipt: "ok" });
      await receiptOf(stomp, "ok");
      assert.deepEqual((await server.hub.presence("team-a")).map((m) => m.id), ["ann"]);
      const error = new Promise<string>((resolve) => stomp.onStompError = (f) => resolve(f.headers.message ?? ""));
      stomp.subscribe("/topic/private", () => {});
      assert.match(await error, /Not allowed to join room private/);
      await stomp.deactivate();
    });

    await t.step("?token= works too", async () => {
      const stomp = await stompClient(server, { query: `?token=${token}` });
      collectMessages(stomp, "/topic/team-b", { receipt: "b" });
      await receiptOf(stomp, "b");
      await stomp.deactivate();
    });
  },
);

Deno.test({ name: "STOMP: /queue, frames before CONNECT and unknown commands are ERRORs", ...opts }, async () => {
  await using server = await startTestServer();
  for (
    const [frames, expected] of [
      [["SEND\ndestination:/topic/x\n\nhi\0"], /CONNECT first/],
      [["CONNECT\naccept-version:1.2\n\n\0", "SUBSCRIBE\nid:1\ndestination:/queue/jobs\n\n\0"], /\/topic\/<room>/],
      [["CONNECT\naccept-version:1.2\n\n\0", "FROB\n\n\0"], /Unknown or missing command/],
      [["CONNECT\naccept-version:9.9\n\n\0"], /Supported versions/],
    ] as const
  ) {
    const raw = new RawStomp(server);
    await raw.opened;
    for (const frame of frames) raw.send(frame);
    assert.match(await raw.next("ERROR"), expected);
    await raw.closed;
  }
});

Deno.test(
  { name: "STOMP: heart-beats go out, and a client that goes silent is closed after two intervals", ...opts },
  async () => {
    await using server = await startTestServer({ heartbeatMs: 300 });
    const raw = new RawStomp(server);
    await raw.opened;
    raw.send("CONNECT\naccept-version:1.2\nheart-beat:300,300\n\n\0");
    assert.match(await raw.next("CONNECTED"), /^heart-beat:300,300$/m);
    // The server's heart-beats are EOLs; the client sends none: closed as silent (4000).
    const started = Date.now();
    const closed = await raw.closed;
    assert.equal(closed.code, 4000);
    assert.ok(Date.now() - started < 3000, "within a few intervals");
    assert.ok(raw.received.includes("\n"), "a heart-beat came before the close");
  },
);

Deno.test({
  name: "STOMP: @stomp/stompjs reconnects and resubscribes with since: nothing missed, nothing twice",
  ...opts,
}, async () => {
  await using server = await startTestServer();
  let position = "";
  const seen: string[] = [];
  const client = await stompClient(server, { reconnectDelay: 50 });
  const subscribe = () =>
    client.subscribe("/topic/feed", (m) => {
      seen.push(m.body);
      position = `${m.headers.epoch}:${m.headers.offset}`;
    }, position ? { since: position } : {});
  client.onConnect = () => void subscribe();
  subscribe();
  try {
    for (const data of ["a", "b"]) await (await postJson(server, "/api/rooms/feed/messages", { data })).body?.cancel();
    await until(() => seen.length === 2, 3000, "a and b");
    // The server drops every connection (as a proxy restart would); messages keep coming meanwhile.
    server.hub.close(4000, "cut");
    for (const data of ["c", "d"]) await (await postJson(server, "/api/rooms/feed/messages", { data })).body?.cancel();
    await until(() => seen.length === 4, 5000, () => `c and d after the reconnect; seen ${seen}`);
    assert.deepEqual(seen, ["a", "b", "c", "d"]);
  } finally {
    await client.deactivate();
  }
});
