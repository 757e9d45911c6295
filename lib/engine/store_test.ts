/** Runs the store contract (tests/store_contract.ts) against every store. */
import assert from "node:assert/strict";
import { ManualClock } from "../clock.ts";
import { storeContract } from "../../tests/store_contract.ts";
import { openKvStore } from "./kv/open.ts";
import { stored } from "../../tests/_kv.ts";
import { MemoryStore } from "./memory/store.ts";
import { RemoteStore, storeHandlers, TellingStore } from "./cluster/store.ts";
import { RpcClient, serveRpc } from "./cluster/rpc.ts";
import { keptHoles, oldestKept, withHole } from "./store.ts";
import { RedisLink } from "./redis/link.ts";
import { RedisStore } from "./redis/store.ts";
import { startRedis } from "../../tests/_redis.ts";

storeContract("MemoryStore", (retention, clock) => {
  const store = new MemoryStore(retention, clock);
  return Promise.resolve({ store, cleanup: () => store.close() });
}, { shared: false, durable: false });

/** A Worker's store: every call goes over a MessageChannel to its coordinator's store (`serveRpc`,
 * as a real Worker's `postMessage` does). */
storeContract("RemoteStore (a Worker's, through its coordinator)", (retention, clock) => {
  const real = new MemoryStore(retention, clock);
  const { port1, port2 } = new MessageChannel();
  const serving = serveRpc(port1, storeHandlers(real));
  const rpc = new RpcClient(port2);
  port1.start();
  port2.start();
  return Promise.resolve({
    store: new RemoteStore(rpc),
    async cleanup() {
      rpc.close();
      serving.stop();
      port1.close();
      port2.close();
      await real.close();
    },
  });
}, { shared: false, durable: false });

/** The coordinator's own serving isolate: the real store, each numbered message told on. */
storeContract("TellingStore (the coordinator's own isolate)", (retention, clock) => {
  const real = new MemoryStore(retention, clock);
  const told: number[] = [];
  return Promise.resolve({
    store: new TellingStore(real, ({ message }) => told.push(message.offset)),
    cleanup: () => real.close(),
  });
}, { shared: false, durable: false });

storeContract("KvStore :memory:", async (retention, clock) => {
  const store = await openKvStore(":memory:", { ...retention, clock });
  return { store, cleanup: () => store.close() };
}, { shared: false, durable: false });

storeContract("KvStore file", async (retention, clock) => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/sub/dir/roomcast.kv`;
  const options = { ...retention, clock };
  const store = await openKvStore(path, options);
  const opened = [store];
  const open = async () => {
    const another = await openKvStore(path, options);
    opened.push(another);
    return another;
  };
  return {
    store,
    sibling: open,
    reopen: open,
    async cleanup() {
      for (const s of opened) await s.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}, { shared: true, durable: true });

storeContract("KvStore file, local sequencer", async (retention, clock) => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/local.kv`;
  const options = { ...retention, clock, sequencer: "local" as const };
  const store = await openKvStore(path, options);
  const opened = [store];
  return {
    store,
    async reopen() {
      const again = await openKvStore(path, options);
      opened.push(again);
      return again;
    },
    async cleanup() {
      for (const s of opened) await s.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}, { shared: false, durable: true });

for (const sequencer of ["kv", "local"] as const) {
  Deno.test(`KvStore (sequencer ${sequencer}) keeps only the retained messages on disk (trim by key in runs, sweep after restart)`, async () => {
    const dir = await Deno.makeTempDir();
    const path = `${dir}/trim.kv`;
    const clock = new ManualClock();
    const message = (i: number) => ({
      type: "message" as const,
      room: "t",
      id: `m${i}`,
      from: { id: "u", name: "U" },
      data: i % 10 === 0 ? "x".repeat(70_000) : i, // some messages span two chunks
      ts: clock.now(),
    });
    const big = await openKvStore(path, { historyLimit: 50, historyTtlMs: undefined, clock, sequencer });
    for (let i = 1; i <= 120; i++) await big.append(message(i));
    const window = (await big.read("t", { limit: 100 })).messages.map((m) => m.offset);
    assert.deepEqual(window, Array.from({ length: 50 }, (_, i) => 71 + i), "reads show the last 50 only");
    await big.close();
    // Trimming deletes runs of 32 offsets (sequencer kv: 1–32 at offset 82, 33–64 at offset 114);
    // the local sequencer files its log at the read, as blocks, and skips what is out of the window.
    const run = (offsets: number[], last: number, kept: number) => {
      const first = offsets[0] ?? 0;
      assert.deepEqual(offsets, Array.from({ length: last + 1 - first }, (_, i) => first + i), `a run up to ${last}`);
      const oldest = last - kept + 1;
      assert.ok(first <= oldest && first > oldest - 32, `the ${kept} kept and at most 31 more (from ${first})`);
    };
    const before = await stored(path, "t");
    run(before.offsets, 120, 50);
    if (sequencer === "kv") {
      assert.equal(
        before.keys,
        before.offsets.length + before.offsets.filter((o) => o % 10 === 0).length,
        "70, 80, … in two chunks",
      );
    }

    // Restart with a smaller limit: the first append sweeps what the old limit kept.
    const small = await openKvStore(path, { historyLimit: 10, historyTtlMs: undefined, clock, sequencer });
    await small.append(message(121));
    await small.close();
    run((await stored(path, "t")).offsets, 121, 10);
    await Deno.remove(dir, { recursive: true });
  });
}

Deno.test("retention counts messages: offsets in holes don't count", () => {
  assert.equal(oldestKept(10, 3), 8);
  assert.equal(oldestKept(2, 3), 1);
  assert.equal(oldestKept(10, 3, [8, 9]), 6, "kept: 6, 7, 10");
  assert.equal(oldestKept(10, 3, [9, 10]), 6, "a hole at the top: kept 6, 7, 8");
  assert.equal(oldestKept(10, 3, [2, 3, 8, 9]), 6, "a hole below the window changes nothing");
  assert.equal(oldestKept(10, 3, [4, 5, 7, 9]), 3, "kept: 3, 6, 10");
  assert.equal(oldestKept(10, 4, [4, 5, 7, 9]), 2, "kept: 2, 3, 6, 10");
  assert.equal(oldestKept(100, 1000, [10, 90]), 1);
  assert.deepEqual(withHole([], 5, 5), [5, 5]);
  assert.deepEqual(withHole([5, 5], 6, 8), [5, 8], "neighbours merge");
  assert.deepEqual(withHole([10, 12], 1, 2), [1, 2, 10, 12], "kept in order");
  assert.deepEqual(withHole([1, 4, 10, 12], 3, 11), [1, 12], "overlaps merge");
  assert.deepEqual(keptHoles([1, 2, 50, 60], 100, 10), [], "holes below the window go");
  assert.deepEqual(keptHoles([1, 2, 95, 96], 100, 10), [95, 96]);
});

storeContract("RedisStore", async (retention, clock) => {
  const redis = await startRedis();
  const links: RedisLink[] = [];
  const open = async () => {
    const link = new RedisLink({ url: redis.url });
    await link.open();
    links.push(link);
    return new RedisStore({ ...retention, clock, link, node: `n${links.length}` });
  };
  const store = await open();
  return {
    store,
    sibling: open,
    reopen: open,
    async cleanup() {
      for (const link of links) await link.close();
      await redis[Symbol.asyncDispose]();
    },
  };
}, { shared: true, durable: true });
