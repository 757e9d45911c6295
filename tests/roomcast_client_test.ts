/**
 * static/roomcast.js against a fake socket (its `WebSocketImpl` option): the frames it sends, what
 * it makes of what it receives, per-room subscription objects, recovery positions and reconnects,
 * without a server. (tests/client_module_test.ts runs it against the real server.)
 */
import assert from "node:assert/strict";
import { RoomcastClient, RoomSubscription } from "../static/roomcast.js";
import { until } from "./_wait.ts";

/** A WebSocket as the client uses it: the test plays the server. */
class FakeSocket {
  static made: FakeSocket[] = [];
  readyState = 0;
  readonly sent: Record<string, unknown>[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((event: { data: string }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: (() => void) | null = null;

  constructor(readonly url: string) {
    FakeSocket.made.push(this);
  }

  send(text: string): void {
    this.sent.push(JSON.parse(text));
  }

  close(code = 1000, reason = ""): void {
    this.drop(code, reason);
  }

  /** The server accepts: open, then `welcome`. */
  open(user = { id: "u1", name: "Ann" }): void {
    this.readyState = 1;
    this.onopen?.();
    this.frame({ type: "welcome", connection: "c1", user, heartbeat: 25_000, node: "n1" });
  }

  frame(frame: Record<string, unknown>): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  drop(code = 1006, reason = ""): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  /** The last frame the client sent of a type. */
  last(type: string): Record<string, unknown> {
    const frame = this.sent.findLast((f) => f.type === type);
    if (!frame) throw new Error(`no ${type} sent; sent ${JSON.stringify(this.sent)}`);
    return frame;
  }
}

function client(): [RoomcastClient, () => FakeSocket] {
  FakeSocket.made = [];
  const c = new RoomcastClient({
    url: "ws://example.test/ws",
    name: "Ann",
    minDelay: 1,
    maxDelay: 5,
    WebSocketImpl: FakeSocket as unknown as typeof WebSocket,
  });
  return [c, () => FakeSocket.made.at(-1) as FakeSocket];
}

/** Once `connect()` has made its socket. */
const dialled = () => until(() => FakeSocket.made.length > 0, 1000, "the client to make a socket");

Deno.test("roomcast.js: a subscription joins its room and hears its events only", async () => {
  const [c, socket] = client();
  c.connect();
  await dialled();
  socket().open();
  const lobby = c.subscribe("lobby");
  assert.ok(lobby instanceof RoomSubscription);
  assert.equal(c.subscribe("lobby"), lobby, "one object per room");
  const join = socket().last("join");
  assert.deepEqual({ ...join, ref: undefined }, { type: "join", room: "lobby", ref: undefined });
  socket().frame({
    type: "joined",
    room: "lobby",
    epoch: "e1",
    offset: 4,
    recovered: false,
    members: [],
    ref: join.ref,
  });
  assert.equal((await lobby.joined).offset, 4);
  const heard: string[] = [];
  lobby.addEventListener("message", (e) => heard.push((e as CustomEvent).detail.data));
  const message = (room: string, offset: number, data: string) =>
    socket().frame({
      type: "message",
      room,
      id: `m${offset}`,
      epoch: "e1",
      offset,
      from: { id: "u2", name: "Bob" },
      data,
      ts: 1,
    });
  message("lobby", 5, "hello");
  message("other", 1, "not for lobby");
  message("lobby", 5, "the same offset again");
  assert.deepEqual(heard, ["hello"]);
  assert.deepEqual(lobby.position, { epoch: "e1", offset: 5 });
  c.close();
});

Deno.test("roomcast.js: a subscription's requests name its room; unsubscribe leaves and goes quiet", async () => {
  const [c, socket] = client();
  c.connect();
  await dialled();
  socket().open();
  const news = c.subscribe("news");
  const join = socket().last("join");
  socket().frame({ type: "joined", room: "news", epoch: "e", offset: 0, recovered: false, members: [], ref: join.ref });
  await news.joined;
  const published = news.publish({ text: "hi" });
  const publish = socket().last("publish");
  assert.deepEqual([publish.room, publish.data], ["news", { text: "hi" }]);
  socket().frame({ type: "ack", room: "news", id: "m1", epoch: "e", offset: 1, ref: publish.ref });
  assert.equal((await published).offset, 1);
  assert.equal(news.signal("typing"), true);
  assert.deepEqual(socket().last("signal"), { type: "signal", room: "news", event: "typing", data: null });
  const history = news.history({ limit: 5 });
  const asked = socket().last("history");
  assert.deepEqual([asked.room, asked.limit], ["news", 5]);
  socket().frame({ type: "history", room: "news", epoch: "e", messages: [], ref: asked.ref });
  assert.deepEqual((await history).messages, []);
  let after = 0;
  news.addEventListener("message", () => after++);
  const left = news.unsubscribe();
  const leave = socket().last("leave");
  socket().frame({ type: "left", room: "news", ref: leave.ref });
  await left;
  socket().frame({
    type: "message",
    room: "news",
    id: "m2",
    epoch: "e",
    offset: 2,
    from: { id: "x", name: "X" },
    data: 1,
    ts: 1,
  });
  assert.equal(after, 0, "nothing after unsubscribe");
  assert.notEqual(c.subscribe("news"), news, "a new object after unsubscribe");
  c.close();
});

Deno.test("roomcast.js: after a drop it reconnects and rejoins with the last position it saw", async () => {
  const [c, socket] = client();
  c.connect();
  await dialled();
  socket().open();
  const room = c.subscribe("r");
  const join = socket().last("join");
  socket().frame({ type: "joined", room: "r", epoch: "e", offset: 7, recovered: false, members: [], ref: join.ref });
  await room.joined;
  const first = socket();
  first.drop(1006);
  await until(() => socket() !== first, 1000, "a new socket");
  assert.notEqual(socket(), first, "a new socket");
  socket().open();
  assert.deepEqual(socket().last("join").since, { epoch: "e", offset: 7 });
  c.close();
});
