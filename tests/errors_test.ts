/**
 * Bad input on /ws: every malformed frame gets the contract's error frame, the connection keeps
 * working, other connections are unaffected and nothing is stored.
 */
import assert from "node:assert/strict";
import { isType } from "./_client.ts";
import { startTestServer } from "./_server.ts";

Deno.test("/ws bad input: clear errors, nothing else changes", async (t) => {
  await using server = await startTestServer({ limits: { maxRooms: 3 } });
  const bad = await server.joined("room", "?name=Bad");
  const good = await server.joined("room", "?name=Good");

  const cases: [string, string | Record<string, unknown>, string, RegExp][] = [
    ["not JSON", "{nope", "bad_request", /not valid JSON/],
    ["JSON but not an object", "[1,2]", "bad_request", /JSON object/],
    ["no type", { room: "room" }, "bad_request", /type is required/],
    ["unknown type", { type: "dance" }, "bad_request", /Unknown frame type "dance"/],
    ["bad room name", { type: "join", room: "no spaces" }, "bad_request", /room must match/],
    ["room too long", { type: "join", room: "x".repeat(129) }, "bad_request", /room must match/],
    ["missing room", { type: "publish", data: 1 }, "bad_request", /room is required/],
    ["missing data", { type: "publish", room: "room" }, "bad_request", /data is required/],
    ["room of wrong type", { type: "publish", room: 5, data: 1 }, "bad_request", /room must match/],
    ["bad since", { type: "join", room: "other", since: { epoch: 1, offset: "x" } }, "bad_request", /since/],
    ["negative before", { type: "history", room: "room", before: -1 }, "bad_request", /before/],
    ["limit not a number", { type: "history", room: "room", limit: "all" }, "bad_request", /limit/],
    ["direct without to", { type: "direct", data: 1 }, "bad_request", /to must be/],
    ["signal without event", { type: "signal", room: "room" }, "bad_request", /event must be/],
    ["publish before join", { type: "publish", room: "elsewhere", data: 1 }, "not_joined", /Join room elsewhere/],
    ["signal before join", { type: "signal", room: "elsewhere", event: "t" }, "not_joined", /elsewhere/],
    ["leave a room not joined", { type: "leave", room: "elsewhere" }, "not_joined", /Not in room/],
    ["join twice", { type: "join", room: "room" }, "bad_request", /Already joined/],
  ];
  for (const [name, frame, code, message] of cases) {
    await t.step(`${name} → ${code}`, async () => {
      const withRef = typeof frame === "string" ? frame : { ...frame, ref: name };
      bad.send(withRef);
      const error = await bad.next(isType("error"));
      assert.equal(error.code, code);
      assert.match(error.message, message);
      if (typeof frame !== "string") assert.equal(error.ref, name, "errors carry the request's ref");
    });
  }

  await t.step("an invalid ref is itself a bad_request", async () => {
    bad.send({ type: "ping", ref: { nested: true } });
    const error = await bad.next(isType("error"));
    assert.equal(error.code, "bad_request");
    assert.match(error.message, /ref/);
  });

  await t.step("frame over 64 KiB → too_large, connection stays open", async () => {
    bad.send({ type: "publish", room: "room", data: "x".repeat(70_000), ref: "big" });
    const error = await bad.next(isType("error"));
    assert.equal(error.code, "too_large");
    // Multi-byte text over the byte limit although under it in characters.
    bad.send({ type: "publish", room: "room", data: "é".repeat(33_000) });
    assert.equal((await bad.next(isType("error"))).code, "too_large");
  });

  await t.step("binary frame → bad_request, then close 1003 (that connection only)", async () => {
    const binary = await server.joined("room");
    binary.socket.send(new Uint8Array([1, 2, 3]));
    const error = await binary.next(isType("error"));
    assert.equal(error.code, "bad_request");
    assert.match(error.message, /Binary/);
    assert.equal((await binary.closed).code, 1003);
  });

  await t.step("too many rooms → bad_request naming the limit", async () => {
    await bad.request({ type: "join", room: "a2" });
    await bad.request({ type: "join", room: "a3" });
    const error = await bad.request({ type: "join", room: "a4" });
    assert.equal(error.code, "bad_request");
    assert.match(error.message, /Too many rooms.*3/);
  });

  await t.step("after all that, both connections still work and nothing was stored", async () => {
    const ack = await bad.request({ type: "publish", room: "room", data: "still here" });
    assert.equal(ack.type, "ack");
    assert.equal(ack.offset, 1, "no malformed frame stored anything");
    const m = await good.next(isType("message"));
    assert.equal(m.data, "still here");
    assert.equal(good.unread.filter(isType("error")).length, 0, "the other connection saw no errors");
    const errors = server.metrics.errors;
    assert.ok(errors.get("bad_request") >= 15, "errors are counted by code");
  });

  await bad.close();
  await good.close();
});

Deno.test("/ws frames far over the limit close the socket with 1009", async () => {
  await using server = await startTestServer({ limits: { maxFrameBytes: 1024 } });
  const c = await server.client();
  c.send("x".repeat(1024 * 17));
  const closed = await c.closed;
  assert.equal(closed.code, 1009);
});

Deno.test("/ws publish rate limit: 50 per 10 s, then rate_limited, then 4429 for a flood", async (t) => {
  await using server = await startTestServer({ limits: { floodStrikes: 5 } });
  const a = await server.joined("rl");
  const b = await server.joined("rl");
  await t.step("the first 50 publishes are acked", async () => {
    for (let i = 0; i < 50; i++) a.send({ type: "publish", room: "rl", data: i, ref: i });
    for (let i = 0; i < 50; i++) assert.equal((await a.next((f) => f.ref === i)).type, "ack");
  });
  await t.step("the 51st answers rate_limited and is not stored", async () => {
    const error = await a.request({ type: "publish", room: "rl", data: "one too many" });
    assert.equal(error.code, "rate_limited");
    const history = await b.request({ type: "history", room: "rl", limit: 100 });
    assert.equal(history.messages.length, 50);
  });
  await t.step("others keep working while one connection is limited", async () => {
    const ack = await b.request({ type: "publish", room: "rl", data: "b is fine" });
    assert.equal(ack.offset, 51);
  });
  await t.step("repeated rate_limited closes the flooding connection with 4429", async () => {
    // Strike 1 was the 51st publish; strikes 2–5 follow. Sending on after the server's close frame
    // would make Deno's client report code 0, so the client stops at the fifth refusal.
    for (let i = 0; i < 4; i++) {
      a.send({ type: "publish", room: "rl", data: "flood" });
      assert.equal((await a.next(isType("error"))).code, "rate_limited");
    }
    const closed = await a.closed;
    assert.equal(closed.code, 4429);
    assert.equal((await b.request({ type: "ping" })).type, "pong");
  });
  await b.close();
});
