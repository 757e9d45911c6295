/** The JSON protocol on /ws against the real server, one step per row of the contract's table. */
import assert from "node:assert/strict";
import { isType, TestClient } from "./_client.ts";
import { startTestServer } from "./_server.ts";
import { signToken } from "../lib/auth.ts";

Deno.test("/ws: welcome, join, publish, ack, delivery, leave", async (t) => {
  await using server = await startTestServer();

  await t.step("welcome carries connection, user from ?name=, heartbeat and node", async () => {
    const c = await TestClient.json(server.ws("/ws?name=%20Ada%20"));
    const welcome = await c.next(isType("welcome"));
    assert.match(welcome.connection, /^c-/);
    assert.match(welcome.user.id, /^guest-/);
    assert.equal(welcome.user.name, "Ada");
    assert.equal(welcome.heartbeat, 25000);
    assert.match(welcome.node, /^n-/);
    await c.close();
  });

  await t.step("join answers joined with epoch, offset 0, members; others see member join", async () => {
    const a = await server.client("?name=Ann");
    const joined = await a.request({ type: "join", room: "r1" });
    assert.equal(joined.type, "joined");
    assert.equal(joined.room, "r1");
    assert.equal(joined.offset, 0);
    assert.equal(joined.recovered, false);
    assert.equal(typeof joined.epoch, "string");
    assert.deepEqual(joined.members.map((m: { name: string }) => m.name), ["Ann"]);

    const b = await server.client("?name=Bob");
    const joinedB = await b.request({ type: "join", room: "r1" });
    assert.deepEqual(joinedB.members.map((m: { name: string }) => m.name).sort(), ["Ann", "Bob"]);
    const member = await a.next(isType("member"));
    assert.deepEqual({ ...member, user: member.user.name }, { type: "member", room: "r1", event: "join", user: "Bob" });
    await b.close();
    const gone = await a.next(isType("member"));
    assert.equal(gone.event, "leave");
    assert.equal(gone.user.name, "Bob");
    await a.close();
  });

  await t.step("publish: ack with id/epoch/offset 1,2,3; others get the message, not the publisher", async () => {
    const a = await server.joined("r2", "?name=Ann");
    const b = await server.joined("r2", "?name=Bob");
    const c = await server.joined("r2", "?name=Cy");
    const acks = [];
    for (let i = 1; i <= 3; i++) {
      const ack = await a.request({ type: "publish", room: "r2", data: { text: `hi ${i}` } });
      assert.equal(ack.type, "ack");
      assert.equal(ack.room, "r2");
      assert.equal(ack.offset, i);
      acks.push(ack);
    }
    for (const reader of [b, c]) {
      for (let i = 1; i <= 3; i++) {
        const m = await reader.next(isType("message"));
        assert.equal(m.offset, i);
        assert.equal(m.id, acks[i - 1]?.id);
        assert.equal(m.epoch, acks[0]?.epoch);
        assert.deepEqual(m.data, { text: `hi ${i}` });
        assert.equal(m.from.name, "Ann");
        assert.equal(m.room, "r2");
        assert.equal(typeof m.ts, "number");
      }
    }
    // B publishes offset 4: if A had been sent its own messages, they would come before it.
    await b.request({ type: "publish", room: "r2", data: "from b" });
    const next = await a.next(isType("message"));
    assert.equal(next.offset, 4);
    assert.equal(next.data, "from b");
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  await t.step("leave answers left; the room no longer delivers to that connection", async () => {
    const a = await server.joined("r3");
    const b = await server.joined("r3");
    const left = await a.request({ type: "leave", room: "r3" });
    assert.deepEqual({ type: left.type, room: left.room }, { type: "left", room: "r3" });
    await b.request({ type: "publish", room: "r3", data: 1 });
    const joined = await a.request({ type: "join", room: "r3" });
    assert.equal(joined.offset, 1, "rejoin sees the message as history, not as a live frame");
    await b.request({ type: "publish", room: "r3", data: 2 });
    const m = await a.next(isType("message"));
    assert.equal(m.data, 2);
    await Promise.all([a.close(), b.close()]);
  });
});

Deno.test("/ws: direct, signal, history, presence, ping", async (t) => {
  await using server = await startTestServer();

  await t.step("direct reaches every connection of the user; the ack doesn't tell whether anybody got it", async () => {
    const sender = await server.client("?name=S");
    const tab1 = await server.client("?name=T");
    const target = tab1.welcome?.user.id;
    const ack = await sender.request({ type: "direct", to: target, data: { text: "psst" } });
    assert.equal(ack.type, "ack");
    assert.equal(ack.delivered, undefined, "whether a user is online is not a client's to learn");
    const direct = await tab1.next(isType("direct"));
    assert.equal(direct.id, ack.id);
    assert.deepEqual(direct.data, { text: "psst" });
    assert.equal(direct.from.name, "S");
    assert.equal(typeof direct.ts, "number");
    const none = await sender.request({ type: "direct", to: "nobody", data: 1 });
    assert.deepEqual(Object.keys(none).sort(), Object.keys(ack).sort(), "an ack to nobody looks the same");
    await Promise.all([sender.close(), tab1.close()]);
  });

  await t.step("signal goes to the others in the room, is not stored, gets no reply", async () => {
    const a = await server.joined("s", "?name=A");
    const b = await server.joined("s", "?name=B");
    a.send({ type: "signal", room: "s", event: "typing", data: { on: true } });
    const signal = await b.next(isType("signal"));
    assert.deepEqual({ ...signal, from: signal.from.name }, {
      type: "signal",
      room: "s",
      from: "A",
      event: "typing",
      data: { on: true },
    });
    const history = await a.request({ type: "history", room: "s" });
    assert.deepEqual(history.messages, []);
    assert.equal((await a.request({ type: "ping" })).type, "pong");
    assert.equal(a.unread.filter(isType("signal")).length, 0, "the sender does not get its own signal");
    await Promise.all([a.close(), b.close()]);
  });

  await t.step("history pages oldest first with before and limit", async () => {
    const a = await server.joined("h");
    for (let i = 1; i <= 7; i++) await a.request({ type: "publish", room: "h", data: i });
    const last = await a.request({ type: "history", room: "h", limit: 3 });
    assert.equal(last.type, "history");
    assert.deepEqual(last.messages.map((m: { offset: number }) => m.offset), [5, 6, 7]);
    const before = await a.request({ type: "history", room: "h", before: 5, limit: 3 });
    assert.deepEqual(before.messages.map((m: { offset: number }) => m.offset), [2, 3, 4]);
    assert.equal(before.epoch, last.epoch);
    const all = await a.request({ type: "history", room: "h", limit: 500 });
    assert.equal(all.messages.length, 7, "limit above 100 is clamped, not refused");
    await a.close();
  });

  await t.step("presence lists members with connection counts", async () => {
    const a1 = await server.joined("p", "?name=A");
    const b = await server.joined("p", "?name=B");
    const presence = await b.request({ type: "presence", room: "p" });
    assert.equal(presence.type, "presence");
    assert.deepEqual(
      presence.members.map((m: { name: string; connections: number }) => [m.name, m.connections]).sort(),
      [["A", 1], ["B", 1]],
    );
    await Promise.all([a1.close(), b.close()]);
  });

  await t.step("ping answers pong with the ref", async () => {
    const a = await server.client();
    a.send({ type: "ping", ref: 42 });
    const pong = await a.next(isType("pong"));
    assert.deepEqual(pong, { type: "pong", ref: 42 });
    await a.close();
  });
});

Deno.test("/ws?room=: joined at connect after welcome, with since; batch too; bad lists refused whole", async () => {
  const secret = "a-test-secret-of-some-length";
  await using server = await startTestServer({ authSecret: secret, limits: { maxRooms: 4 } });
  const token = async (sub: string, rooms?: string[]) => await signToken(rooms ? { sub, rooms } : { sub }, secret);
  const publisher = await TestClient.json(server.ws(`/ws?token=${await token("pub")}&room=a&room=b`));
  assert.equal((await publisher.next()).type, "welcome", "welcome comes first");
  const joinedA = await publisher.next(isType("joined"));
  const joinedB = await publisher.next(isType("joined"));
  assert.deepEqual([joinedA.room, joinedB.room], ["a", "b"], "in the order of the URL");
  for (const data of ["a1", "a2"]) publisher.send({ type: "publish", room: "a", data, ref: data });
  const acks = [await publisher.next(isType("ack")), await publisher.next(isType("ack"))];
  const [first] = acks;

  // Since the first message of "a" (SSE's grammar): the second comes again, then live.
  const since = encodeURIComponent(`a=${first?.epoch}:${first?.offset}`);
  const back = await TestClient.json(server.ws(`/ws?token=${await token("back")}&room=a&room=b&since=${since}`));
  const recovered = await back.next(isType("joined"));
  assert.deepEqual([recovered.room, recovered.recovered], ["a", true]);
  const missed = await back.next(isType("message"));
  assert.deepEqual([missed.room, missed.data, missed.offset], ["a", "a2", 2]);
  const other = await back.next((f) => f.type === "joined" && f.room === "b");
  assert.equal(other.recovered, false);
  assert.deepEqual(
    (await server.hub.presence("a")).map((m) => m.id).sort(),
    ["back", "pub"],
  );

  // Batched mode takes it too (frames one per line).
  const batched = await TestClient.raw(server.ws(`/ws?batch=1&token=${await token("bat")}&room=b`));
  await batched.next((text) => text.split("\n").some((line) => line.includes('"type":"joined"')));

  // A room its token does not allow: that join refused, the others made.
  const limited = await TestClient.json(server.ws(`/ws?token=${await token("lim", ["b"])}&room=a&room=b`));
  const refused = await limited.next(isType("error"));
  assert.equal(refused.code, "forbidden");
  assert.equal((await limited.next(isType("joined"))).room, "b");

  // Hostile URLs: too many rooms, a bad name; an error says why, nothing joined, still connected.
  for (const query of ["room=c&room=d&room=e&room=f&room=g", "room=c&room=bad%20name", `room=${"x".repeat(129)}`]) {
    const c = await TestClient.json(server.ws(`/ws?token=${await token("h")}&${query}`));
    const error = await c.next(isType("error"));
    assert.equal(error.code, "bad_request", query);
    assert.equal(c.socket.readyState, WebSocket.OPEN);
    c.send({ type: "ping" });
    await c.next(isType("pong"));
    assert.equal(c.unread.filter((f) => f.type === "joined").length, 0);
    await c.close();
  }
  // A since that names no position, or another room: those rooms start live.
  const odd = await TestClient.json(server.ws(`/ws?token=${await token("odd")}&room=a&since=nonsense`));
  assert.equal((await odd.next(isType("joined"))).recovered, false);
  assert.deepEqual((await server.hub.presence("c")).length, 0);
  for (const c of [publisher, back, batched, limited, odd]) await c.close();
});
