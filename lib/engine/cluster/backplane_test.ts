/**
 * A cluster's Workers and their coordinator, in one isolate: each "Worker" reaches the
 * coordinator over a MessageChannel, as a real Worker does over its `postMessage`. The coordinator
 * pushes each message it stores to the other Workers subscribed to its room, in the order it
 * numbered them; the other events go over BroadcastChannel, or through the coordinator without it.
 */
import assert from "node:assert/strict";
import { ManualClock } from "../../clock.ts";
import { Hub } from "../../hub.ts";
import type { NewMessage } from "../../protocol.ts";
import { backplaneContract } from "../../../tests/backplane_contract.ts";
import { FakePeer } from "../../../tests/_fake_peer.ts";
import { testHub } from "../../../tests/_hubs.ts";
import type { Backplane, BackplaneEvent, BackplaneHandler } from "../backplane.ts";
import { BroadcastChannelBackplane } from "./broadcast.ts";
import { ClusterBackplane, Relay } from "./backplane.ts";
import { MemoryPresence } from "../memory/presence.ts";
import { RpcClient, serveRpc } from "./rpc.ts";
import { RemoteStore, storeHandlers } from "./store.ts";
import { MemoryStore } from "../memory/store.ts";
import type { Store } from "../store.ts";

/** A coordinator (store, relay) and the Workers' ends of their channels to it. */
function coordinator(
  store: Store = new MemoryStore({ historyLimit: 1000, historyTtlMs: undefined }, new ManualClock()),
) {
  const relay = new Relay();
  const ports: MessagePort[] = [];
  let reads = 0;
  const counted: Store = {
    append: (...args) => store.append(...args),
    appendNow: (message) => store.appendNow?.(message),
    position: (room) => store.position(room),
    read: (room, options) => {
      reads++;
      return store.read(room, options);
    },
    reset: (room) => store.reset(room),
    park: (key, value, ttlMs) => store.park(key, value, ttlMs),
    unpark: (key) => store.unpark(key),
    close: () => store.close(),
  };
  return {
    store,
    /** The shared presence, telling member events through the relay as the coordinator does. */
    presence: new MemoryPresence({ max: 100, tell: (event) => relay.forward(event, "coordinator") }),
    /** How many reads of history the Workers made (catching up what did not reach them). */
    reads: () => reads,
    /** A Worker `node`: its RPC to the coordinator, its store and backplane there. */
    worker(node: string, broadcast?: Backplane) {
      const { port1, port2 } = new MessageChannel();
      ports.push(port1, port2);
      const server = serveRpc(port1, { ...relay.handlers(), ...storeHandlers(counted, relay.appendedBy(node)) });
      relay.add(node, server.push);
      port1.start();
      port2.start();
      const rpc = new RpcClient(port2);
      return { rpc, store: new RemoteStore(rpc), backplane: new ClusterBackplane(rpc, node, broadcast) };
    },
    close() {
      for (const port of ports) port.close();
    },
  };
}

for (const broadcast of [true, false]) {
  backplaneContract(
    `ClusterBackplane (Workers and their coordinator${broadcast ? "" : ", no BroadcastChannel"})`,
    (n) => {
      const namespace = `cluster-${crypto.randomUUID()}`;
      const hub = coordinator();
      const nodes = Array.from({ length: n }, (_, i) => {
        const node = `n${i}`;
        return hub.worker(node, broadcast ? new BroadcastChannelBackplane({ node, namespace }) : undefined).backplane;
      });
      return Promise.resolve({
        nodes,
        async cleanup() {
          await Promise.all(nodes.map((b) => b.close()));
          hub.close();
        },
      });
    },
    // Messages cross through the coordinator's store (tested below), not through `publish`.
    { crosses: true, messages: false },
  );
}

let n = 0;
const newMessage = (room: string, data: unknown): NewMessage => ({
  type: "message",
  room,
  id: `m${++n}`,
  from: { id: "u", name: "U" },
  data,
  ts: 0,
});

function listen(backplane: Backplane): { event: BackplaneEvent; node: string }[] {
  const heard: { event: BackplaneEvent; node: string }[] = [];
  backplane.onEvent((event, node) => heard.push({ event, node }));
  return heard;
}

Deno.test("the coordinator pushes what a Worker stores to the Workers in its room: once, in order, never back", async () => {
  const hub = coordinator();
  const [a, b, c] = ["a", "b", "c"].map((node) => hub.worker(node)) as [
    ReturnType<typeof hub.worker>,
    ReturnType<typeof hub.worker>,
    ReturnType<typeof hub.worker>,
  ];
  try {
    const [ha, hb, hc] = [listen(a.backplane), listen(b.backplane), listen(c.backplane)];
    b.backplane.subscribe("r");
    a.backplane.subscribe("r");
    c.backplane.subscribe("elsewhere");
    await Promise.all([a, b, c].map((w) => w.backplane.subscribed()));
    // Publishes from two Workers, interleaved: one sequence, and each Worker hears the other's.
    for (let i = 1; i <= 10; i++) await (i % 2 ? a : b).store.append(newMessage("r", i));
    await new Promise((resolve) => setTimeout(resolve, 20));
    const offsets = (heard: typeof ha) =>
      heard.map(({ event, node }) => event.kind === "message" ? `${event.message.offset}@${node}` : event.kind);
    assert.deepEqual(offsets(hb), ["1@a", "3@a", "5@a", "7@a", "9@a"]);
    assert.deepEqual(offsets(ha), ["2@b", "4@b", "6@b", "8@b", "10@b"]);
    assert.deepEqual(hc, [], "c listens to another room");
    // What crosses is the JSON the store made, once.
    const first = hb[0]?.event as Extract<BackplaneEvent, { kind: "message" }>;
    assert.deepEqual(JSON.parse(first.json), first.message);
    // A Worker no longer subscribed hears nothing more; a Worker that is gone gets nothing.
    b.backplane.unsubscribe("r");
    await b.backplane.subscribed();
    await a.store.append(newMessage("r", 11));
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(hb.length, 5);
  } finally {
    await Promise.all([a, b, c].map((w) => w.backplane.close()));
    hub.close();
  }
});

/** BroadcastChannel between these Workers, dropping everything that crosses it. */
class DeafBroadcast extends BroadcastChannelBackplane {
  dropped = 0;
  override onEvent(handler: BackplaneHandler): void {
    super.onEvent((event, node) => {
      if (node === this.node) return handler(event, node);
      this.dropped++;
    });
  }
}

Deno.test("hubs on two Workers publishing into one room: every message once, in order, with no read of history, however BroadcastChannel fares", async () => {
  const namespace = `deaf-${crypto.randomUUID()}`;
  const hub = coordinator();
  const clock = new ManualClock();
  const presence = hub.presence;
  const broadcasts = [new DeafBroadcast({ node: "a", namespace }), new DeafBroadcast({ node: "b", namespace })];
  const [a, b] = broadcasts.map((broadcast) => {
    const { store, backplane } = hub.worker(broadcast.node, broadcast);
    // No poll: what a Worker gets, it gets from the coordinator's pushes.
    return testHub({ store, backplane, presence, clock, node: broadcast.node, pollMs: 3_600_000 });
  }) as [Hub, Hub];
  const joined = async (on: Hub, id: string) => {
    const peer = new FakePeer(id);
    const connection = on.connect(peer);
    await on.join(connection, "room");
    return { peer, connection };
  };
  try {
    const readers = [await joined(a, "ra"), await joined(b, "rb")];
    const writers = [await joined(a, "wa"), await joined(b, "wb")];
    const before = hub.reads();
    const MESSAGES = 200;
    for (let i = 1; i <= MESSAGES; i++) {
      const [on, writer] = i % 2 ? [a, writers[0]] : [b, writers[1]];
      on.frames.receive(writer!.connection, JSON.stringify({ type: "publish", room: "room", data: i, ref: i }));
      if (i % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const deadline = Date.now() + 5000;
    while (readers.some((r) => r.peer.of("message").length < MESSAGES) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const all = Array.from({ length: MESSAGES }, (_, i) => i + 1);
    for (const reader of readers) assert.deepEqual(reader.peer.of("message").map((f) => f.offset), all);
    const data = readers[0]!.peer.of("message").map((f) => f.data as number);
    assert.deepEqual(data.toSorted((x, y) => x - y), all, "each publish once");
    assert.equal(hub.reads(), before, "nothing was caught up from the store");
    // Member events come through the coordinator too; only signals take BroadcastChannel, and are lost with it.
    const joinsOf = (peer: FakePeer) => peer.of("member").map((f) => f.user.id).toSorted();
    assert.deepEqual(joinsOf(readers[0]!.peer), ["u-rb", "u-wa", "u-wb"]);
    assert.deepEqual(joinsOf(readers[1]!.peer), ["u-wa", "u-wb"]);
    a.frames.receive(writers[0]!.connection, JSON.stringify({ type: "signal", room: "room", event: "typing" }));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(broadcasts[1]!.dropped > 0, "the signal crossed BroadcastChannel and was dropped");
    assert.equal(readers[1]!.peer.of("signal").length, 0);
    assert.equal(readers[0]!.peer.of("signal").length, 1, "the signal reached its own isolate");
  } finally {
    a.close();
    b.close();
    await Promise.all(broadcasts.map((bc) => bc.close()));
    hub.close();
  }
});
