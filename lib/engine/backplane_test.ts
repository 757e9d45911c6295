/**
 * The backplane contract for every backplane, and the hub's repair of what a backplane loses:
 * hubs of several "isolates" (here in one, sharing a store as the isolates of a process share
 * their coordinator's) deliver every message once, in order, through a backplane that drops
 * and reorders, and through none at all.
 */
import assert from "node:assert/strict";
import { ManualClock } from "../clock.ts";
import { Hub } from "../hub.ts";
import { backplaneContract } from "../../tests/backplane_contract.ts";
import { FakePeer } from "../../tests/_fake_peer.ts";
import { testHub } from "../../tests/_hubs.ts";
import { LossyBackplane } from "../../tests/_lossy_backplane.ts";
import type { Backplane, BackplaneEvent } from "./backplane.ts";
import type { StoredMessage } from "../protocol.ts";
import { BroadcastChannelBackplane } from "./cluster/broadcast.ts";
import { RedisBackplane } from "./redis/backplane.ts";
import { RedisLink } from "./redis/link.ts";
import { openLinks, redisTest, startRedis } from "../../tests/_redis.ts";
import { RedisStore } from "./redis/store.ts";
import { LocalBackplane } from "./memory/backplane.ts";
import { KvBackplane } from "./kv/backplane.ts";
import { MemoryPresence } from "./memory/presence.ts";
import { MemoryStore } from "./memory/store.ts";
import { forward, slowKv } from "../../tests/_faulty_kv.ts";

backplaneContract("LocalBackplane", () => {
  const nodes = [new LocalBackplane("n1")];
  return Promise.resolve({ nodes, cleanup: async () => await nodes[0]?.close() });
}, { crosses: false });

backplaneContract("BroadcastChannelBackplane", (n) => {
  const namespace = `contract-${crypto.randomUUID()}`;
  const nodes = Array.from({ length: n }, (_, i) => new BroadcastChannelBackplane({ node: `n${i}`, namespace }));
  return Promise.resolve({ nodes, cleanup: async () => void await Promise.all(nodes.map((b) => b.close())) });
}, { crosses: true });

backplaneContract("RedisBackplane (processes on one Redis)", async (n) => {
  const redis = await startRedis();
  const links = await openLinks(redis, n);
  const nodes = links.map((link, i) => new RedisBackplane(link, `n${i}`));
  await Promise.all(nodes.map((node) => node.subscribed()));
  return {
    nodes,
    async cleanup() {
      await Promise.all(nodes.map((node) => node.close()));
      await Promise.all(links.map((link) => link.close()));
      await redis[Symbol.asyncDispose]();
    },
  };
}, { crosses: true, messages: false });

/** The contract for KV backplanes of `n` instances on one KV (`watch` replaces the KV's own). */
function kvContract(name: string, pollMs: number, watch?: unknown, after?: (troubles: unknown[]) => void): void {
  backplaneContract(name, async (n) => {
    const real = await Deno.openKv(":memory:");
    const kv = watch === undefined ? real : forward(real, { watch });
    const nodes = Array.from({ length: n }, (_, i) => new KvBackplane({ kv, node: `n${i}`, pollMs }));
    const troubles: unknown[] = [];
    for (const node of nodes) node.onTrouble((error) => troubles.push(error));
    return {
      nodes,
      async cleanup() {
        if (after) {
          // The watches start 50 ms after a subscription: what they report comes by then.
          for (let i = 0; i < 100 && troubles.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
        }
        await Promise.all(nodes.map((b) => b.close()));
        real.close();
        after?.(troubles);
      },
    };
  }, { crosses: true, messages: false });
}

kvContract("KvBackplane (instances sharing one KV)", 10);

/** Two hubs as two isolates: one store and one presence (as a coordinator on the first isolate
 * would keep them, telling member events on its backplane), each its backplane. */
function isolates(backplanes: [Backplane, Backplane], pollMs?: number) {
  const clock = new ManualClock();
  const store = new MemoryStore({ historyLimit: 1000, historyTtlMs: undefined }, clock);
  const presence = new MemoryPresence({ max: 100, tell: (event) => backplanes[0].publish(event) });
  const hubs = backplanes.map((backplane, i) =>
    testHub({ store, backplane, presence, clock, node: `n${i}`, ...(pollMs === undefined ? {} : { pollMs }) })
  ) as [Hub, Hub];
  return { hubs, store };
}

async function joined(hub: Hub, id: string, room: string) {
  const peer = new FakePeer(id);
  const connection = hub.connect(peer);
  await hub.join(connection, room);
  return { peer, connection };
}

async function eventually(pred: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
}

const MESSAGES = 200;

for (
  const [name, make, pollMs] of [
    [
      "a backplane that drops every other event and reorders",
      (namespace: string, node: string) => new LossyBackplane(new BroadcastChannelBackplane({ node, namespace })),
      20,
    ],
    [
      "no backplane between isolates at all (no BroadcastChannel)",
      (_: string, node: string) => new LocalBackplane(node),
      20,
    ],
  ] as const
) {
  Deno.test(`hubs on two isolates, ${name}: every message once, in order, from the store`, async () => {
    const namespace = `lossy-${crypto.randomUUID()}`;
    const { hubs: [a, b] } = isolates([make(namespace, "a"), make(namespace, "b")], pollMs);
    a.startHeartbeat();
    b.startHeartbeat();
    try {
      const reader = await joined(b, "reader", "room");
      const publisher = await joined(a, "publisher", "room");
      for (let i = 1; i <= MESSAGES; i++) {
        a.frames.receive(publisher.connection, JSON.stringify({ type: "publish", room: "room", data: i, ref: i }));
        if (i % 20 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
      }
      await eventually(() => reader.peer.of("message").length >= MESSAGES);
      const got = reader.peer.of("message").map((f) => f.offset);
      assert.deepEqual(got, Array.from({ length: MESSAGES }, (_, i) => i + 1));
      assert.deepEqual(publisher.peer.of("ack").map((f) => f.ref), Array.from({ length: MESSAGES }, (_, i) => i + 1));
      // Presence is shared; its member events travel on the backplane (like signals, they are not
      // stored: with no backplane at all they stay on their isolate).
      const members = reader.peer.of("member").map((f) => `${f.event}:${f.user.name}`);
      assert.deepEqual(members, name.startsWith("no backplane") ? [] : ["join:publisher"]);
    } finally {
      a.close();
      b.close();
    }
  });
}

Deno.test("a room's member events and signals cross isolates; a user on two isolates is one member", async () => {
  const namespace = `members-${crypto.randomUUID()}`;
  const { hubs: [a, b] } = isolates([
    new BroadcastChannelBackplane({ node: "a", namespace }),
    new BroadcastChannelBackplane({ node: "b", namespace }),
  ]);
  try {
    const watcher = await joined(a, "watcher", "m");
    const sam = { id: "sam", name: "Sam" };
    const tab1 = a.connect(new FakePeer("tab1", sam));
    const tab2 = b.connect(new FakePeer("tab2", sam));
    await a.join(tab1, "m");
    await b.join(tab2, "m");
    b.frames.receive(tab2, JSON.stringify({ type: "signal", room: "m", event: "typing" }));
    await eventually(() => watcher.peer.of("signal").length === 1);
    assert.deepEqual(watcher.peer.of("member").map((f) => f.event), ["join"], "one join for two isolates");
    assert.equal((await a.presence("m")).find((m) => m.id === "sam")?.connections, 2);
    a.disconnect(tab1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(watcher.peer.of("member").map((f) => f.event), ["join"], "still there on b");
    b.disconnect(tab2);
    await eventually(() => watcher.peer.of("member").length === 2);
    assert.deepEqual(watcher.peer.of("member").map((f) => f.event), ["join", "leave"]);
    assert.deepEqual((await b.rooms()).map((r) => [r.room, r.members]), [["m", 1]]);
  } finally {
    a.close();
    b.close();
  }
});

redisTest(
  "Redis: what the store's script publishes arrives as message and reset events, on subscribed nodes only",
  async (redis) => {
    const clock = new ManualClock();
    const open = async (node: string) => {
      const link = new RedisLink({ url: redis.url });
      await link.open();
      return {
        link,
        store: new RedisStore({ link, clock, node, historyLimit: 100, historyTtlMs: undefined }),
        backplane: new RedisBackplane(link, node),
      };
    };
    const [a, b, c] = [await open("a"), await open("b"), await open("c")];
    const heard: Record<string, BackplaneEvent[]> = { a: [], b: [], c: [] };
    for (const [name, n] of [["a", a], ["b", b], ["c", c]] as const) {
      n.backplane.onEvent((event) => heard[name]?.push(event));
    }
    b.backplane.subscribe("room");
    await b.backplane.subscribed();
    const first = await a.store.append({
      type: "message",
      room: "room",
      id: "x1",
      from: { id: "u", name: "U" },
      data: "é",
      ts: 1,
    });
    await a.store.append({ type: "message", room: "room", id: "x2", from: { id: "u", name: "U" }, data: 2, ts: 2 });
    const { epoch } = await a.store.reset("room");
    const deadline = Date.now() + 3000;
    while (heard.b?.length !== 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(heard.b?.map((e) => e.kind), ["message", "message", "reset"]);
    const m1 = heard.b?.[0] as { kind: "message"; message: StoredMessage; json: string };
    assert.deepEqual(m1.message, first.message);
    assert.equal(m1.json, first.json);
    assert.equal((heard.b?.[2] as { epoch: string }).epoch, epoch);
    assert.equal(heard.a?.length, 0, "the publisher's own echo is dropped");
    assert.equal(heard.c?.length, 0, "c has nobody in the room");
    for (const n of [a, b, c]) {
      await n.backplane.close();
      await n.link.close();
    }
  },
);

// The KV backplane's two ways, each alone: the watch (a poll of a minute never runs during the
// contract), and the poll (a KV whose every watch fails at once).
kvContract("KvBackplane, watch alone", 60_000);
kvContract(
  "KvBackplane, poll alone (every watch fails)",
  10,
  () => new ReadableStream({ pull: (c) => c.error(new Error("no watch here")) }),
  (troubles) => assert.ok(troubles.some((e) => /no watch here/.test(String(e))), "the failing watch was reported"),
);

Deno.test("KvBackplane on a KV without watch: no watch is tried (nothing to report), the poll carries events", async () => {
  const real = await Deno.openKv(":memory:");
  const kv = forward(real, { watch: undefined });
  const [a, b] = ["a", "b"].map((node) => new KvBackplane({ kv, node, pollMs: 10 })) as [KvBackplane, KvBackplane];
  const troubles: unknown[] = [];
  const heard: BackplaneEvent[] = [];
  for (const node of [a, b]) node.onTrouble((error) => troubles.push(error));
  a.onEvent(() => {});
  b.onEvent((event) => heard.push(event));
  try {
    b.subscribe("r");
    a.publish({ kind: "signal", room: "r", from: { id: "u", name: "U" }, event: "typing", data: 1, origin: "c" });
    for (let i = 0; i < 100 && heard.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(heard.map((e) => e.kind), ["signal"]);
    assert.deepEqual(troubles, []);
  } finally {
    await Promise.all([a.close(), b.close()]);
    real.close();
  }
});

Deno.test("KvBackplane: an event committed after a later-keyed one was read is still delivered, once", async () => {
  const real = await Deno.openKv(":memory:");
  // Instance a's commits take 150 ms (a remote KV, a retried commit): its event's key is older
  // than b's, which the reader has read by the time a's lands.
  const slow = slowKv(real, { commitMs: 150 });
  const a = new KvBackplane({ kv: slow, node: "a", pollMs: 20, watchRooms: 0 });
  const b = new KvBackplane({ kv: real, node: "b", pollMs: 20, watchRooms: 0 });
  const reader = new KvBackplane({ kv: real, node: "r", pollMs: 20, watchRooms: 0 });
  const got: string[] = [];
  reader.onEvent((event) => {
    if (event.kind === "broadcast") got.push(String(event.data));
  });
  for (const node of [a, b]) node.onEvent(() => {});
  try {
    await new Promise((resolve) => setTimeout(resolve, 30));
    a.publish({ kind: "broadcast", id: "1", data: "from a", ts: Date.now() });
    await new Promise((resolve) => setTimeout(resolve, 20));
    b.publish({ kind: "broadcast", id: "2", data: "from b", ts: Date.now() });
    // Both are committed after 150 ms; the reader reads every 20 ms, about 40 times here.
    await new Promise((resolve) => setTimeout(resolve, 800));
    assert.deepEqual(got, ["from b", "from a"], "each once, as they were committed");
  } finally {
    await Promise.all([a.close(), b.close(), reader.close()]);
    real.close();
  }
});

Deno.test("KvBackplane: more events than one read lists (20 pages of 500) are all read, once each", async () => {
  const kv = await Deno.openKv(":memory:");
  const reader = new KvBackplane({ kv, node: "r", pollMs: 50, watchRooms: 0 });
  const writer = new KvBackplane({ kv, node: "w", pollMs: 3_600_000, watchRooms: 0 });
  const got: number[] = [];
  reader.onEvent((event) => {
    if (event.kind === "broadcast") got.push(event.data as number);
  });
  writer.onEvent(() => {});
  try {
    await new Promise((resolve) => setTimeout(resolve, 5));
    const n = 10_500;
    for (let i = 0; i < n; i++) writer.publish({ kind: "broadcast", id: `${i}`, data: i, ts: Date.now() });
    const deadline = Date.now() + 20_000;
    while (got.length < n && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(got.length, n, "each once");
    assert.deepEqual(got.toSorted((x, y) => x - y), Array.from({ length: n }, (_, i) => i));
  } finally {
    await Promise.all([reader.close(), writer.close()]);
    kv.close();
  }
});
