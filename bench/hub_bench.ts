/**
 * Micro-benchmarks (`deno task bench:micro`): the codec, the hub's fan-out loop with fake peers,
 * and Deno KV appends one by one versus batched.
 */
import { ManualClock } from "../lib/clock.ts";
import { decodeClientFrame } from "../lib/codec.ts";
import { configWith } from "../lib/config.ts";
import { MemoryPresence } from "../lib/engine/memory/presence.ts";
import { LocalBackplane } from "../lib/engine/memory/backplane.ts";
import { openKvStore } from "../lib/engine/kv/open.ts";
import { MemoryStore } from "../lib/engine/memory/store.ts";
import { Hub } from "../lib/hub.ts";
import { Metrics } from "../lib/metrics.ts";
import { jsonEncoder, type Peer } from "../lib/peer.ts";
import type { NewMessage, StoredMessage } from "../lib/protocol.ts";

const publishFrame = JSON.stringify({ type: "publish", room: "bench-room", data: { text: "hello there" }, ref: 42 });

Deno.bench("codec: decode a publish frame", { group: "codec" }, () => {
  decodeClientFrame(publishFrame);
});

Deno.bench("codec: JSON.parse alone (the floor)", { group: "codec", baseline: true }, () => {
  JSON.parse(publishFrame);
});

class NullPeer implements Peer {
  readonly encoder = jsonEncoder;
  liveness: "app" | "transport" = "transport";
  readonly queuedBytes = 0;
  bytes = 0;
  constructor(readonly id: string, readonly user = { id: id, name: id }) {}
  send(text: string): void {
    this.bytes += text.length;
  }
  close(): void {}
}

async function hubWith(peers: number, roomSize = peers) {
  const config = configWith();
  const clock = new ManualClock();
  const store = new MemoryStore({ historyLimit: 1000, historyTtlMs: undefined }, clock);
  const backplane = new LocalBackplane();
  const hub = new Hub({
    store,
    backplane,
    presence: new MemoryPresence(),
    clock,
    metrics: new Metrics(),
    // The bench's publishers are not rate limited (bench/run.ts lifts the limits the same way).
    limits: { ...config.limits, publishBurst: 1e12, userPublishBurst: 1e12 },
    heartbeatMs: 25_000,
    historyLimit: 1000,
    node: "bench",
  });
  const connections = [];
  for (let i = 0; i < peers; i++) {
    const connection = hub.connect(new NullPeer(`p${i}`));
    await hub.join(connection, roomSize === peers ? "fan" : `chat-${Math.floor(i / roomSize)}`);
    connections.push(connection);
  }
  return { hub, store, backplane, connections, clock };
}

const fan = await hubWith(1000);
const { epoch } = await fan.store.position("fan");
let offset = 0;
Deno.bench("hub: fan one stored message out to 1000 peers", { group: "fanout" }, () => {
  const message: StoredMessage = {
    type: "message",
    room: "fan",
    id: `m${offset}`,
    epoch,
    offset: ++offset,
    from: { id: "u", name: "U" },
    data: { text: "hello" },
    ts: 0,
  };
  fan.backplane.publish({ kind: "message", room: "fan", message, json: JSON.stringify(message) });
});

const direct = Array.from({ length: 1000 }, (_, i) => new NullPeer(`d${i}`));
Deno.bench("floor: one JSON.stringify, 1000 no-op sends (no hub)", { group: "fanout", baseline: true }, () => {
  const frame = {
    type: "message",
    room: "fan",
    id: "x",
    epoch: "e",
    offset: 1,
    from: { id: "u", name: "U" },
    data: {},
    ts: 0,
  };
  const text = JSON.stringify(frame);
  for (const peer of direct) peer.send(text);
});

const kv = await openKvStore(":memory:", { historyLimit: 1000, historyTtlMs: undefined, clock: new ManualClock() });
const newMessage = (room: string): NewMessage => ({
  type: "message",
  room,
  id: crypto.randomUUID(),
  from: { id: "u", name: "U" },
  data: { text: "hello" },
  ts: 0,
});
Deno.bench("kv: 100 appends to one room, awaited one by one", { group: "kv", baseline: true }, async () => {
  for (let i = 0; i < 100; i++) await kv.append(newMessage("serial"));
});
Deno.bench("kv: 100 appends to one room, pipelined (batched)", { group: "kv" }, async () => {
  await Promise.all(Array.from({ length: 100 }, () => kv.append(newMessage("piped"))));
});
Deno.bench("kv: 100 appends to 100 rooms, pipelined", { group: "kv" }, async () => {
  await Promise.all(Array.from({ length: 100 }, (_, i) => kv.append(newMessage(`room-${i}`))));
});

// Chat as `deno task bench` runs it (2,000 clients in rooms of 10), minus Deno and the kernel: the
// JavaScript a publish costs from its text frame to nine deliveries and the ack, with fake peers and
// the memory store.
const chat = await hubWith(2000, 10);
let turn = 0;
Deno.bench("hub: one chat publish, text frame to 9 deliveries and the ack (memory store)", { group: "chat" }, () => {
  const connection = chat.connections[turn % 2000] as (typeof chat.connections)[number];
  const room = `chat-${Math.floor((turn % 2000) / 10)}`;
  chat.hub.frames.receive(connection, `{"type":"publish","room":"${room}","data":"${turn++}-0123456789abcdef"}`);
});

// The hub's tick (every second) walks every connection for liveness: its cost with 100,000 idle
// /ws connections joined to rooms of ten, none of them due for a ping (the common tick).
const idle = await hubWith(100_000, 10);
for (const connection of idle.connections) (connection.peer as NullPeer).liveness = "app";
Deno.bench("hub: one tick over 100,000 idle /ws connections, none due for a ping", { group: "tick" }, () => {
  // Each tick a millisecond later: nothing falls due within the 25 s heartbeat.
  idle.clock.advance(1);
  idle.hub.tick();
});
