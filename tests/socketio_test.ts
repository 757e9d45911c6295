/**
 * `/socket.io/` with the real clients: socket.io-client 4 (WebSocket only, polling only, polling
 * then upgrade) and 2.3.0 (the seed's snippet), acks, binary, relayed events, recovery after a
 * reconnect, auth, and Socket.IO, `/ws`, raw and SSE clients in one room.
 */
import assert from "node:assert/strict";
import { signToken } from "../lib/auth.ts";
import { isType } from "./_client.ts";
import { onTransport, sio2, sio4 } from "./_sio.ts";
import { startTestServer } from "./_server.ts";
import { until } from "./_wait.ts";
import { configWith } from "../lib/config.ts";
import { ManualClock } from "../lib/clock.ts";
import io2 from "socket.io-client-v2";

// socket.io-client keeps timers and sockets of its own a little past `close()`.
const opts = { sanitizeOps: false, sanitizeResources: false };

/** Every behaviour holds with either Socket.IO layer: roomcast's own on socket.io-parser (the
 * default) and the official Server (ROOMCAST_SIO_LAYER=official). Connection state recovery has
 * tests of its own (socketio_recovery_test.ts); `recoveryMs` turns it off here. */
for (const layer of ["official", "own"] as const) {
  const start = (options: Parameters<typeof startTestServer>[0] = {}, recoveryMs = 0) =>
    startTestServer({ ...options, socketIo: { ...configWith().socketIo, layer, recoveryMs } });

  Deno.test({
    name:
      `[${layer}] socket.io-client 4: WebSocket only, polling only, polling then upgrade; publish with acks, in order`,
    ...opts,
    async fn() {
      await using server = await start();
      const ws = await sio4(server.url, { transports: ["websocket"] });
      const polling = await sio4(server.url, { transports: ["polling"] });
      const upgrading = await sio4(server.url);
      await onTransport(upgrading, "websocket"); // (the polling-only client, opened first, did not upgrade meanwhile)
      assert.equal(ws.socket.io.engine.transport.name, "websocket");
      assert.equal(polling.socket.io.engine.transport.name, "polling");
      for (const c of [ws, polling, upgrading]) {
        const [joined] = await c.next("joined") as [{ room: string; recovered: boolean }];
        assert.equal(joined.room, "lobby");
      }

      const acks = [];
      for (let i = 1; i <= 3; i++) acks.push(await ws.request("message", `m${i}`) as { offset: number; room: string });
      assert.deepEqual(acks.map((a) => a.offset), [1, 2, 3]);
      assert.ok(acks.every((a) => a.room === "lobby"));
      for (const c of [polling, upgrading]) {
        const got = [];
        for (let i = 0; i < 3; i++) got.push(await c.next("message"));
        assert.deepEqual(got.map(([data]) => data), ["m1", "m2", "m3"]);
        assert.deepEqual(got.map(([, meta]) => (meta as { offset: number }).offset), [1, 2, 3]);
      }
      // The publisher gets its acks, not its own messages.
      assert.equal(ws.received.filter((r) => r.event === "message").length, 0);

      // The polling client publishes too, and a room other than the lobby needs a join first.
      const refused = await polling.request("message", { room: "side", data: 1 }) as { error: { code: string } };
      assert.equal(refused.error.code, "not_joined");
      await polling.request("join", "side");
      await ws.request("join", { room: "side" });
      const ack = await polling.request("message", { room: "side", data: { n: 1 } }) as { offset: number };
      assert.equal(ack.offset, 1);
      const [message] = await ws.next("message", ([m]) => (m as { room?: string }).room === "side") as [
        { room: string; data: unknown; offset: number; from: { id: string } },
      ];
      assert.deepEqual(message.data, { n: 1 });
      assert.equal(message.offset, 1);
      const left = await ws.request("leave", "side") as { room: string };
      assert.equal(left.room, "side");
      for (const c of [ws, polling, upgrading]) c.close();
    },
  });

  Deno.test({
    name: `[${layer}] binary: a Socket.IO client's bytes reach Socket.IO clients as bytes and /ws clients as {$binary}`,
    ...opts,
    async fn() {
      await using server = await start();
      const a = await sio4(server.url, { transports: ["websocket"] });
      const b = await sio4(server.url, { transports: ["polling"] });
      const native = await server.joined("lobby");
      await a.request("message", { bytes: new Uint8Array([1, 2, 3, 250]) });
      const [data] = await b.next("message") as [{ bytes: Uint8Array }];
      assert.deepEqual([...new Uint8Array(data.bytes)], [1, 2, 3, 250]);
      const frame = await native.next(isType("message"));
      assert.deepEqual(frame.data, { bytes: { $binary: btoa(String.fromCharCode(1, 2, 3, 250)) } });
      a.close();
      b.close();
      await native.close();
    },
  });

  Deno.test({
    name:
      `[${layer}] socket.io-client 2.3.0, the seed's snippet: io(url), emit('message', 'Hello Server'), on('message')`,
    ...opts,
    async fn() {
      await using server = await start();
      const listener = await sio2(server.url);
      const native = await server.joined("lobby");
      // The seed, as written (only the URL differs):
      const socket = io2(server.url);
      socket.emit("message", "Hello Server");
      socket.on("message", (msg: unknown) => console.log(msg));

      const [hello] = await listener.next("message");
      assert.equal(hello, "Hello Server");
      assert.equal((await native.next(isType("message"))).data, "Hello Server");
      // And the other way: the 2.x client hears a /ws client.
      native.send({ type: "publish", room: "lobby", data: "from ws" });
      const [back] = await listener.next("message", ([m]) => m === "from ws");
      assert.equal(back, "from ws");
      assert.equal(listener.socket.io.engine.transport.name, "websocket", "2.x upgraded too");
      socket.close();
      listener.close();
      await native.close();
    },
  });

  Deno.test({
    name: `[${layer}] Socket.IO, /ws, raw and SSE clients in one room see each other's messages`,
    ...opts,
    async fn() {
      await using server = await start();
      const sio = await sio4(server.url);
      await sio.request("join", "mix");
      const native = await server.joined("mix");
      const { TestClient } = await import("./_client.ts");
      const raw = await TestClient.raw(server.ws("/raw/mix"));
      const sse = new EventSource(`${server.url}/events?room=mix`);
      const sseMessages: unknown[] = [];
      sse.addEventListener("message", (e) => sseMessages.push(JSON.parse((e as MessageEvent).data).data));
      await new Promise((resolve) => sse.addEventListener("open", resolve, { once: true }));

      await sio.request("message", { room: "mix", data: "from sio" });
      native.send({ type: "publish", room: "mix", data: "from ws" });
      raw.send("from raw");
      await until(() => sseMessages.length >= 3, 4000, "three messages on SSE");
      assert.deepEqual([...sseMessages].sort(), ["from raw", "from sio", "from ws"]);
      const sioGot = [
        await sio.next("message", ([m]) => (m as { data?: unknown }).data === "from ws"),
        await sio.next("message", ([m]) => (m as { data?: unknown }).data === "from raw"),
      ];
      assert.equal(sioGot.length, 2);
      assert.equal((await native.next((f) => f.type === "message" && f.data === "from sio")).room, "mix");
      assert.equal(await raw.next((t) => t === "from sio"), "from sio");
      sse.close();
      sio.close();
      await native.close();
      await raw.close();
    },
  });

  Deno.test({
    name: `[${layer}] relayed events reach the room's other clients, not stored; reserved names are refused`,
    ...opts,
    async fn() {
      await using server = await start();
      const a = await sio4(server.url, { transports: ["websocket"] });
      const b = await sio4(server.url, { transports: ["websocket"] });
      const native = await server.joined("lobby");
      a.socket.emit("typing", { who: "a" });
      const [typing] = await b.next("typing");
      assert.deepEqual(typing, { who: "a" });
      const signal = await native.next(isType("signal"));
      assert.equal(signal.event, "typing");
      assert.deepEqual(signal.data, { who: "a" });
      // A /ws client's signal reaches Socket.IO clients as that event; Socket.IO's reserved names don't.
      native.send({ type: "signal", room: "lobby", event: "disconnect", data: "boom" });
      native.send({ type: "signal", room: "lobby", event: "cursor", data: [3, 4] });
      const [cursor] = await b.next("cursor");
      assert.deepEqual(cursor, [3, 4]);
      assert.ok(b.socket.connected, "a reserved event name from another client did not cut it off");
      assert.equal(b.received.filter((r) => r.event === "disconnect").length, 0);
      const reply = await a.request("member", { fake: true }) as { error: { code: string } };
      assert.equal(reply.error.code, "bad_request");
      const history = await (await server.fetch("/api/rooms/lobby/messages")).json();
      assert.equal(history.messages.length, 0, "relayed events are not stored");
      a.close();
      b.close();
      await native.close();
    },
  });

  Deno.test({
    name: `[${layer}] recovery: a Socket.IO client that reconnects gets what it missed (join with since, auth.since)`,
    ...opts,
    async fn() {
      await using server = await start();
      const a = await sio4(server.url, { transports: ["websocket"] });
      const joined = await a.request("join", "r") as { epoch: string; offset: number };
      await a.request("message", { room: "r", data: "before" });
      const [lobby] = await a.next("joined") as [{ epoch: string; offset: number }];
      a.close();
      const writer = await server.joined("r");
      for (const data of ["x", "y", "z"]) writer.send({ type: "publish", room: "r", data });
      writer.send({ type: "join", room: "lobby" });
      await writer.next(isType("joined"));
      writer.send({ type: "publish", room: "lobby", data: "lobby missed" });
      await until(async () => {
        const page = await (await server.fetch("/api/rooms/r/messages")).json();
        return page.messages.length === 4;
      });

      // Back with the lobby's position in auth.since: the lobby's missed message comes first.
      const back = await sio4(server.url, { auth: { since: { epoch: lobby.epoch, offset: lobby.offset } } });
      const [rejoined] = await back.next("joined") as [{ recovered: boolean }];
      assert.equal(rejoined.recovered, true);
      const [missed] = await back.next("message");
      assert.equal(missed, "lobby missed");
      const recovered = await back.request("join", { room: "r", since: { epoch: joined.epoch, offset: 1 } }) as {
        recovered: boolean;
      };
      assert.equal(recovered.recovered, true);
      const replay = [];
      for (let i = 0; i < 3; i++) replay.push(await back.next("message"));
      assert.deepEqual(replay.map(([m]) => (m as { data: string }).data), ["x", "y", "z"]);
      assert.deepEqual(replay.map(([m]) => (m as { offset: number }).offset), [2, 3, 4]);
      back.close();
      await writer.close();
    },
  });

  Deno.test({
    name: `[${layer}] automatic reconnection: auth as a function hands the last position back, nothing is missed`,
    ...opts,
    async fn() {
      await using server = await start();
      const { io } = await import("socket.io-client");
      let last: { epoch: string; offset: number } | undefined;
      const got: string[] = [];
      const socket = io(server.url, {
        transports: ["websocket"],
        forceNew: true,
        reconnectionDelay: 50,
        reconnectionDelayMax: 100,
        // Called before every (re)connection: the position of the last message received.
        auth: (cb: (auth: object) => void) => cb(last ? { since: last } : {}),
      });
      socket.on("message", (data: string, meta: { epoch: string; offset: number }) => {
        got.push(data);
        last = { epoch: meta.epoch, offset: meta.offset };
      });
      const recoveries: boolean[] = [];
      socket.on("joined", (joined: { recovered: boolean }) => recoveries.push(joined.recovered));
      await until(() => recoveries.length === 1, 4000, "the first lobby join");
      const writer = await server.joined("lobby");
      writer.send({ type: "publish", room: "lobby", data: "one" });
      await until(() => got.length === 1, 4000, "the first message");
      // The network drops: the client reconnects by itself while messages keep coming.
      socket.io.engine.close();
      for (const data of ["two", "three", "four"]) writer.send({ type: "publish", room: "lobby", data });
      await until(() => got.length === 4, 6000, "the missed messages after the reconnect");
      assert.deepEqual(got, ["one", "two", "three", "four"]);
      assert.deepEqual(recoveries, [false, true]);
      socket.close();
      await writer.close();
    },
  });

  Deno.test({
    name: `[${layer}] auth: with ROOMCAST_AUTH_SECRET a Socket.IO client needs auth.token (2.x: ?token=)`,
    ...opts,
    async fn() {
      const secret = "a-test-secret-of-some-length";
      await using server = await start({ authSecret: secret });
      const { io } = await import("socket.io-client");
      const anonymous = io(server.url, { reconnection: false, forceNew: true, transports: ["websocket"] });
      const error = await new Promise<Error & { data?: { code: string } }>((resolve) =>
        anonymous.on("connect_error", resolve)
      );
      assert.equal(error.data?.code, "unauthorized");
      anonymous.close();
      const token = await signToken({ sub: "ann", name: "Ann" }, secret);
      const ann = await sio4(server.url, { auth: { token } });
      const [joined] = await ann.next("joined") as [{ members: { id: string }[] }];
      assert.deepEqual(joined.members.map((m) => m.id), ["ann"]);
      const bob = await sio2(server.url, { query: { token: await signToken({ sub: "bob" }, secret) } });
      const [member] = await ann.next("member") as [{ event: string; user: { id: string } }];
      assert.deepEqual([member.event, member.user.id], ["join", "bob"]);
      ann.close();
      bob.close();
    },
  });

  Deno.test({
    name: `[${layer}] auth.join: the rooms joined on connect instead of the lobby, with since; malformed lists refused`,
    ...opts,
    async fn() {
      const secret = "a-test-secret-of-some-length";
      await using server = await start({ authSecret: secret });
      const token = async (sub: string, rooms?: string[]) => await signToken(rooms ? { sub, rooms } : { sub }, secret);
      const members = async (room: string) =>
        ((await (await server.fetch(`/api/rooms/${room}/presence`)).json()) as { members: { id: string }[] }).members
          .map((m) => m.id).sort();
      // Two stored messages in "a" first: a join with since gets the second again.
      const early = await sio4(server.url, { auth: { token: await token("early"), join: "a" } });
      const [first] = await early.next("joined") as [{ room: string; epoch: string; offset: number }];
      assert.equal(first.room, "a");
      const m1 = await early.request("message", { room: "a", data: "m1" }) as { offset: number; epoch: string };
      await early.request("message", { room: "a", data: "m2" });

      const ann = await sio4(server.url, {
        auth: { token: await token("ann"), join: [{ room: "a", since: { epoch: m1.epoch, offset: m1.offset } }, "b"] },
      });
      const joinedA = await ann.next("joined", ([j]) => (j as { room: string }).room === "a") as [
        { recovered: boolean; members: { id: string }[] },
      ];
      assert.equal(joinedA[0].recovered, true);
      const [missed] = await ann.next("message") as [{ room: string; data: unknown; offset: number }];
      assert.deepEqual([missed.room, missed.data, missed.offset], ["a", "m2", 2]);
      await ann.next("joined", ([j]) => (j as { room: string }).room === "b");
      assert.deepEqual(await members("a"), ["ann", "early"]);
      assert.deepEqual(await members("b"), ["ann"]);
      assert.deepEqual(await members("lobby"), [], "no lobby when auth.join names the rooms");
      // Its short-form message is the lobby's, which it is not in.
      const refused = await ann.request("message", "to the lobby") as { error: { code: string } };
      assert.equal(refused.error.code, "not_joined");

      // None at all, and rooms its token does not allow: a clear error, the others joined.
      const none = await sio4(server.url, { auth: { token: await token("none"), join: [] } });
      const limited = await sio4(server.url, { auth: { token: await token("lim", ["b"]), join: ["a", "b"] } });
      const [forbidden] = await limited.next("roomcast:error") as [{ code: string }];
      assert.equal(forbidden.code, "forbidden");
      await limited.next("joined", ([j]) => (j as { room: string }).room === "b");
      assert.deepEqual(await members("b"), ["ann", "lim"]);
      assert.ok(!(await members("a")).includes("lim"));

      // Hostile lists: not a room, an object without a room, too many, a bad name; each refused whole
      // or by its join, the socket connected and in no room it did not ask for.
      const hostile: { join: unknown; code: string | undefined }[] = [
        { join: 5, code: "bad_request" },
        { join: ["c", { room: 7 }], code: "bad_request" },
        { join: Array.from({ length: 33 }, (_, i) => `r${i}`), code: "bad_request" },
        { join: ["bad room\u0000"], code: "bad_request" },
        { join: [{ room: "d", since: "nonsense" }], code: undefined },
      ];
      for (const [i, { join, code }] of hostile.entries()) {
        const c = await sio4(server.url, { auth: { token: await token(`h${i}`), join } });
        if (code) {
          const [error] = await c.next("roomcast:error") as [{ code: string; message: string }];
          assert.equal(error.code, code, JSON.stringify(join).slice(0, 60));
        } else {
          // A since that is no position is no since: a plain join.
          const [joined] = await c.next("joined") as [{ room: string; recovered: boolean }];
          assert.deepEqual([joined.room, joined.recovered], ["d", false]);
        }
        assert.equal(c.socket.connected, true);
        c.close();
      }
      assert.deepEqual(await members("c"), []);
      assert.deepEqual(await members("r0"), []);
      assert.deepEqual(await members("lobby"), []);
      assert.equal(none.received.filter((r) => r.event === "joined").length, 0);
      for (const c of [early, ann, none, limited]) c.close();
    },
  });

  Deno.test({
    name: `[${layer}] sessions end with their clients: the Engine.IO session count returns to zero`,
    ...opts,
    async fn() {
      await using server = await start();
      const sessions = async () => {
        const text = await (await server.fetch("/metrics")).text();
        return Number(/^roomcast_socketio_sessions (\d+)/m.exec(text)?.[1] ?? NaN);
      };
      const clients = [
        await sio4(server.url, { transports: ["websocket"] }),
        await sio4(server.url, { transports: ["polling"] }),
        await sio4(server.url),
        await sio2(server.url),
      ];
      assert.equal(await sessions(), 4);
      for (const c of clients) c.close();
      await until(async () => await sessions() === 0, 4000, "sessions to end");
    },
  });
}

Deno.test({
  name: "socket.io: an emit over the frame limit calls its ack with too_large, and leaves nothing waiting",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const clock = new ManualClock(Date.now());
    await using server = await startTestServer({ clock, heartbeat: false, limits: { maxFrameBytes: 256 } });
    const c = await sio4(server.url, { transports: ["websocket"] });
    try {
      await c.next("joined");
      const big = "x".repeat(400); // over the 256-byte frame limit
      const reply = await c.request("message", big) as { error?: { code: string } };
      assert.equal(reply.error?.code, "too_large", "the ack is called with the error");
      // 270 more (past the 256 acks a socket may have waiting), the bad-frame guard's window moved
      // on between batches: a valid request still gets its answer.
      for (let batch = 0; batch < 6; batch++) {
        clock.advance(11_000); // the bad-frame guard allows 50 per 10 s
        const replies = Array.from({ length: 45 }, () => c.request("message", big));
        for (const answer of await Promise.all(replies)) {
          assert.equal((answer as { error?: { code: string } }).error?.code, "too_large");
        }
      }
      assert.ok(c.socket.connected);
      const joined = await c.request("join", "room2") as { room?: string };
      assert.equal(joined.room, "room2");
    } finally {
      c.close();
    }
  },
});
