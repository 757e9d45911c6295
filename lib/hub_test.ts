/** Hub unit tests with fake peers, the memory store and a manual clock: ordering, gaps, limits. */
import assert from "node:assert/strict";
import { ManualClock } from "./clock.ts";
import { configWith } from "./config.ts";
import type { Connection } from "./connection.ts";
import { LocalBackplane } from "./engine/memory/backplane.ts";
import type { Store } from "./engine/store.ts";
import type { Backplane, StoredHandler } from "./engine/backplane.ts";
import { MemoryPresence } from "./engine/memory/presence.ts";
import { MemoryStore } from "./engine/memory/store.ts";
import { Hub } from "./hub.ts";
import { Metrics } from "./metrics.ts";
import type { NewMessage } from "./protocol.ts";
import { FakePeer } from "../tests/_fake_peer.ts";

function setup(
  limits: Parameters<typeof configWith>[0] = {},
  wrap?: (store: MemoryStore) => Store,
  backplane: Backplane = new LocalBackplane(),
) {
  const config = configWith(limits);
  const clock = new ManualClock();
  const store = new MemoryStore({ historyLimit: config.historyLimit, historyTtlMs: undefined }, clock);
  const presence = new MemoryPresence({
    max: config.limits.memberEventsMax,
    tell: (event) => backplane.publish(event),
  });
  const metrics = new Metrics();
  const hub = new Hub({
    store: wrap ? wrap(store) : store,
    backplane,
    presence,
    clock,
    metrics,
    limits: config.limits,
    heartbeatMs: config.heartbeatMs,
    historyLimit: config.historyLimit,
    node: "n-test",
  });
  const connect = (id: string) => {
    const peer = new FakePeer(id);
    return { peer, connection: hub.connect(peer) };
  };
  return { hub, store, backplane, clock, metrics, connect, config };
}

/** Lets pending promise callbacks (store appends, joins) run. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

async function join(hub: Hub, connection: Connection, room: string) {
  hub.frames.receive(connection, JSON.stringify({ type: "join", room }));
  await settle();
}

function message(room: string, data: unknown): NewMessage {
  return { type: "message", room, id: crypto.randomUUID(), from: { id: "x", name: "X" }, data, ts: 0 };
}

Deno.test("hub: the publisher's ack comes in offset order with the room's messages", async () => {
  const { hub, connect } = setup();
  const a = connect("a");
  const b = connect("b");
  await join(hub, a.connection, "r");
  await join(hub, b.connection, "r");
  for (let i = 0; i < 5; i++) {
    hub.frames.receive(a.connection, JSON.stringify({ type: "publish", room: "r", data: `a${i}`, ref: i }));
    hub.frames.receive(b.connection, JSON.stringify({ type: "publish", room: "r", data: `b${i}` }));
  }
  await settle();
  const seenByA = a.peer.frames.filter((f) => f.type === "ack" || f.type === "message").map((f) => f.offset);
  assert.deepEqual(seenByA, Array.from({ length: 10 }, (_, i) => i + 1), "acks and messages interleave in order");
  assert.deepEqual(a.peer.of("ack").map((f) => f.ref), [0, 1, 2, 3, 4]);
  assert.deepEqual(b.peer.of("message").map((f) => f.data), ["a0", "a1", "a2", "a3", "a4"]);
});

Deno.test("hub: a gap from the backplane waits for the late message, else is filled from the store; duplicates are dropped", async () => {
  const { hub, store, backplane, connect } = setup();
  const reader = connect("reader");
  await join(hub, reader.connection, "g");
  const offsets = () => reader.peer.of("message").map((f) => f.offset);
  const m1 = await store.append(message("g", 1));
  const m2 = await store.append(message("g", 2));
  const m3 = await store.append(message("g", 3));
  backplane.publish({ kind: "message", room: "g", ...m1 });
  backplane.publish({ kind: "message", room: "g", ...m3 }); // 2 is late
  assert.deepEqual(offsets(), [1], "3 waits for 2");
  backplane.publish({ kind: "message", room: "g", ...m2 }); // and comes, on the fast path
  backplane.publish({ kind: "message", room: "g", ...m3 }); // and a duplicate
  assert.deepEqual(offsets(), [1, 2, 3]);
  const m4 = await store.append(message("g", 4)); // never crosses the backplane
  const m5 = await store.append(message("g", 5));
  backplane.publish({ kind: "message", room: "g", ...m5 });
  assert.deepEqual(offsets(), [1, 2, 3]);
  const deadline = Date.now() + 2000;
  while (offsets().length < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(offsets(), [1, 2, 3, 4, 5], "the store filled 4 once it did not come");
  assert.equal(reader.peer.of("message")[3]?.id, m4.message.id);
});

Deno.test("hub: a history reset tells subscribers with joined recovered:false", async () => {
  const { hub, connect } = setup();
  const a = connect("a");
  await join(hub, a.connection, "z");
  const before = a.peer.of("joined")[0];
  const position = await hub.reset("z");
  const [, again] = a.peer.of("joined");
  assert.notEqual(position.epoch, before?.epoch);
  assert.deepEqual([again?.epoch, again?.offset, again?.recovered], [position.epoch, 0, false]);
});

Deno.test("hub: member events for a user's first connection in and last out", async () => {
  const { hub, connect } = setup();
  const watcher = connect("w");
  await join(hub, watcher.connection, "m");
  const peer1 = new FakePeer("tab1", { id: "same-user", name: "Sam" });
  const peer2 = new FakePeer("tab2", { id: "same-user", name: "Sam" });
  const tab1 = hub.connect(peer1);
  const tab2 = hub.connect(peer2);
  await join(hub, tab1, "m");
  await join(hub, tab2, "m");
  assert.deepEqual(watcher.peer.of("member").map((f) => f.event), ["join"], "one join for two tabs");
  assert.deepEqual((await hub.presence("m")).find((m) => m.id === "same-user")?.connections, 2);
  hub.disconnect(tab1);
  await settle();
  assert.deepEqual(watcher.peer.of("member").map((f) => f.event), ["join"]);
  hub.disconnect(tab2);
  await settle();
  assert.deepEqual(watcher.peer.of("member").map((f) => f.event), ["join", "leave"]);
  assert.deepEqual((await hub.presence("m")).map((m) => m.id), ["u-w"]);
});

Deno.test("hub: a peer still over its send-queue cap a turn later is closed with 4008; others get everything", async () => {
  const { hub, connect, metrics, clock } = setup({ limits: { sendQueueBytes: 1000 } });
  const fast = connect("fast");
  const slow = connect("slow");
  const pub = connect("pub");
  for (const c of [fast, slow, pub]) await join(hub, c.connection, "q");
  // The queue is measured at most every 10 ms: a burst within one turn is not a slow consumer.
  slow.peer.queuedBytes = 50_000;
  clock.advance(10);
  for (let i = 0; i < 3; i++) {
    hub.frames.receive(pub.connection, JSON.stringify({ type: "publish", room: "q", data: i }));
  }
  await settle();
  assert.deepEqual(slow.peer.closed, { code: 4008, reason: "Slow consumer: send queue over its cap" });
  assert.equal(slow.peer.of("message").length, 0);
  assert.deepEqual(fast.peer.of("message").map((f) => f.data), [0, 1, 2]);
  assert.equal(metrics.closes.get("slow_consumer"), 1);
  assert.deepEqual((await hub.presence("q")).map((m) => m.name).sort(), ["fast", "pub"]);
});

Deno.test("hub: heartbeat pings peers silent or not written to for an interval, closes those silent for two", () => {
  const { hub, clock, connect, config } = setup();
  const hb = config.heartbeatMs;
  const talker = connect("talker");
  const listener = connect("listener");
  const mute = connect("mute");
  hub.tick();
  assert.equal(mute.peer.of("ping").length, 0, "just welcomed: nothing is due");
  clock.advance(hb);
  // The talker talks and is talked to (each ping gets a pong back); the listener only talks.
  hub.frames.receive(talker.connection, '{"type":"ping"}');
  hub.frames.receive(listener.connection, '{"type":"pong"}');
  hub.tick();
  assert.equal(talker.peer.of("ping").length, 0, "heard from and written to within the interval: no ping");
  assert.equal(listener.peer.of("ping").length, 1, "nothing sent to it for an interval: pinged");
  assert.equal(mute.peer.of("ping").length, 1, "silent for an interval: pinged");
  clock.advance(hb / 2);
  hub.tick();
  assert.equal(mute.peer.of("ping").length, 1, "pinged once per interval, not every tick");
  clock.advance(hb / 2);
  hub.frames.receive(talker.connection, '{"type":"ping"}');
  hub.frames.receive(listener.connection, '{"type":"pong"}');
  hub.tick();
  assert.equal(talker.peer.closed, undefined);
  assert.equal(listener.peer.closed, undefined);
  assert.equal(talker.peer.of("ping").length, 0);
  assert.deepEqual(mute.peer.closed, { code: 4000, reason: "Heartbeat timeout" });
  assert.equal(hub.connectionCount, 2);
});

Deno.test("hub: a tick that comes late pings a silent connection instead of closing it unpinged", () => {
  const { hub, clock, connect, config } = setup();
  const hb = config.heartbeatMs;
  const mute = connect("mute");
  clock.advance(2.5 * hb); // the event loop was busy: no tick for two and a half intervals
  hub.tick();
  assert.equal(mute.peer.closed, undefined, "never pinged: not closed yet");
  assert.equal(mute.peer.of("ping").length, 1);
  clock.advance(hb / 2);
  hub.tick();
  assert.equal(mute.peer.closed, undefined, "its ping has not had an interval yet");
  clock.advance(hb / 2);
  hub.tick();
  assert.deepEqual(mute.peer.closed, { code: 4000, reason: "Heartbeat timeout" });
  assert.equal(mute.peer.of("ping").length, 1);
});

Deno.test("hub: pings of many idle connections go out a bounded number per tick, the rest at the next", () => {
  const { hub, clock, connect, config } = setup();
  const peers = Array.from({ length: 2500 }, (_, i) => connect(`idle-${i}`).peer);
  clock.advance(config.heartbeatMs);
  hub.tick();
  const pinged = () => peers.filter((p) => p.of("ping").length > 0).length;
  // 2,500 connections, a 25 s heartbeat and a tick a second: 200 a tick, but never fewer than 1,000.
  assert.equal(pinged(), 1000);
  clock.advance(1000);
  hub.tick();
  assert.equal(pinged(), 2000);
  clock.advance(1000);
  hub.tick();
  assert.equal(pinged(), 2500, "every connection is pinged within three ticks");
  assert.ok(peers.every((p) => p.of("ping").length === 1 && p.closed === undefined));
});

Deno.test("hub: frames of one connection take effect in order, even across an async join", async () => {
  const { hub, connect } = setup();
  const a = connect("a");
  hub.frames.receive(a.connection, '{"type":"join","room":"o","ref":1}');
  hub.frames.receive(a.connection, '{"type":"publish","room":"o","data":"right after join","ref":2}');
  hub.frames.receive(a.connection, '{"type":"leave","room":"o","ref":3}');
  await settle();
  const types = a.peer.frames.filter((f) => f.ref !== undefined).map((f) => `${f.type}:${f.ref}`);
  assert.deepEqual(types, ["joined:1", "ack:2", "left:3"]);
});

Deno.test("hub: rooms over memberEventsMax send no member events and cap joined.members", async () => {
  const { hub, connect } = setup({ limits: { memberEventsMax: 2 } });
  const [a, b, c] = [connect("a"), connect("b"), connect("c")];
  for (const x of [a, b, c]) await join(hub, x.connection, "big");
  assert.deepEqual(a.peer.of("member").map((f) => f.user.name), ["b"], "c was the third member: no event");
  assert.equal(c.peer.of("joined")[0]?.members.length, 2);
  assert.equal((await hub.presence("big")).length, 3, "presence still lists everyone");
  hub.disconnect(c.connection);
  await settle();
  assert.deepEqual(a.peer.of("member").map((f) => `${f.event}:${f.user.name}`), ["join:b"], "3 → 2: still too big");
  hub.disconnect(b.connection);
  await settle();
  assert.deepEqual(a.peer.of("member").map((f) => `${f.event}:${f.user.name}`), ["join:b", "leave:b"]);
});

Deno.test("hub: recent recoveries are served from the room's memory, older ones from the store", async () => {
  const { hub, store, connect } = setup();
  const watcher = connect("watcher");
  await join(hub, watcher.connection, "mem");
  const publisher = connect("pub");
  await join(hub, publisher.connection, "mem");
  for (let i = 1; i <= 5; i++) {
    hub.frames.receive(publisher.connection, JSON.stringify({ type: "publish", room: "mem", data: i }));
  }
  await settle();
  const { epoch } = await store.position("mem");
  let reads = 0;
  const read = store.read.bind(store);
  store.read = (room, options) => {
    reads++;
    return read(room, options);
  };
  const late = connect("late");
  hub.frames.receive(late.connection, JSON.stringify({ type: "join", room: "mem", since: { epoch, offset: 2 } }));
  await settle();
  assert.deepEqual(late.peer.of("joined").map((f) => [f.recovered, f.offset]), [[true, 5]]);
  assert.deepEqual(late.peer.of("message").map((f) => f.offset), [3, 4, 5]);
  assert.equal(reads, 0, "no store read for a recent position");
  // A room nobody here is in has no memory: the store answers.
  const fresh = connect("fresh");
  hub.frames.receive(
    fresh.connection,
    JSON.stringify({ type: "join", room: "cold", since: { epoch: "x", offset: 0 } }),
  );
  await settle();
  assert.deepEqual(fresh.peer.of("joined").map((f) => f.recovered), [false]);
});

Deno.test("hub: a publish the store refuses gets an internal error; the others are acked in order", async () => {
  // A store that numbers asynchronously (no appendNow) and refuses messages whose data is "refuse".
  const { hub, connect } = setup({}, (store) => ({
    append: (m, onDurable) => m.data === "refuse" ? Promise.reject(new Error("disk full")) : store.append(m, onDurable),
    position: (room) => store.position(room),
    read: (room, options) => store.read(room, options),
    reset: (room) => store.reset(room),
    park: (key, value, ttlMs) => store.park(key, value, ttlMs),
    unpark: (key) => store.unpark(key),
    close: () => store.close(),
  }));
  const a = connect("a");
  const b = connect("b");
  await join(hub, a.connection, "r");
  await join(hub, b.connection, "r");
  const errors = console.error;
  console.error = () => {};
  try {
    for (const [ref, data] of [[1, "one"], [2, "refuse"], [3, "three"], [4, "refuse"], [5, "five"]] as const) {
      hub.frames.receive(a.connection, JSON.stringify({ type: "publish", room: "r", data, ref }));
    }
    await settle();
  } finally {
    console.error = errors;
  }
  assert.deepEqual(a.peer.of("ack").map((f) => [f.ref, f.offset]), [[1, 1], [3, 2], [5, 3]]);
  assert.deepEqual(a.peer.of("error").map((f) => [f.ref, f.code]), [[2, "internal"], [4, "internal"]]);
  assert.deepEqual(b.peer.of("message").map((f) => [f.offset, f.data]), [[1, "one"], [2, "three"], [3, "five"]]);
  assert.equal(a.peer.closed, undefined);
});

Deno.test("hub: a direct message reaches every connection of the user, however many come and go", async () => {
  const { hub } = setup();
  const sender = hub.connect(new FakePeer("s"));
  const user = { id: "u-pat", name: "Pat" };
  const peers = ["p1", "p2", "p3"].map((id) => new FakePeer(id, user));
  const connections = peers.map((peer) => hub.connect(peer));
  const direct = async (data: string) => (await hub.directAs(sender.peer.user, "u-pat", data)).delivered;
  await settle();
  assert.equal(await direct("three"), 3);
  hub.disconnect(connections[1] as Connection);
  await settle();
  assert.equal(await direct("two"), 2);
  hub.disconnect(connections[0] as Connection);
  await settle();
  assert.equal(await direct("one"), 1);
  const again = hub.connect(new FakePeer("p4", user));
  assert.equal(await direct("two again"), 2);
  hub.disconnect(connections[2] as Connection);
  await settle();
  hub.disconnect(again);
  await settle();
  assert.equal(await direct("none"), 0);
  const got = (peer: FakePeer) => peer.of("direct").map((f) => f.data);
  assert.deepEqual(peers.map(got), [["three", "two"], ["three"], ["three", "two", "one", "two again"]]);
});

Deno.test("hub: a backplane that sees the store's head move (the KV watch) has rooms catch up at once, also mid-catch-up", async () => {
  let gate = Promise.resolve();
  const backplane: Backplane = new LocalBackplane();
  let stored: StoredHandler | undefined;
  backplane.onStored = (handler) => stored = handler;
  const { hub, store, connect } = setup({}, (memory) => ({
    append: memory.append.bind(memory),
    position: memory.position.bind(memory),
    reset: memory.reset.bind(memory),
    park: memory.park.bind(memory),
    unpark: memory.unpark.bind(memory),
    close: memory.close.bind(memory),
    // A read answers what the store held when it was asked, after `gate` (a slow storage).
    read: async (room, options) => {
      const page = await memory.read(room, options);
      await gate;
      return page;
    },
  }), backplane);
  const a = connect("a");
  await join(hub, a.connection, "w");
  const { epoch } = await store.position("w");

  // Another instance stores offset 1 and the watch says so: delivered without any poll.
  await store.append(message("w", "one"));
  stored?.("w", { epoch, offset: 1 });
  await settle();
  assert.deepEqual(a.peer.of("message").map((m) => m.data), ["one"]);

  // Offset 2, heard; its catch-up reads slowly. Offset 3 is stored and heard meanwhile.
  let open = () => {};
  gate = new Promise((resolve) => open = resolve);
  await store.append(message("w", "two"));
  stored?.("w", { epoch, offset: 2 });
  await settle();
  await store.append(message("w", "three"));
  stored?.("w", { epoch, offset: 3 });
  open();
  for (let i = 0; i < 5; i++) await settle();
  assert.deepEqual(a.peer.of("message").map((m) => m.data), ["one", "two", "three"], "three came after the catch-up");
  hub.close();
});
