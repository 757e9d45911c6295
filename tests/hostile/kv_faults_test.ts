/**
 * Issue "hardening", item 3: the KV commit paths that handle a failed commit and a commit of
 * unknown outcome, with faults injected into a real Deno KV (tests/_faulty_kv.ts). Whatever the
 * KV does, no offset names two messages, nothing is stored twice, an acknowledged-durable message
 * is readable, and what is lost is a hole that recoveries report (`recovered: false`).
 */
import assert from "node:assert/strict";
import { ManualClock } from "../../lib/clock.ts";
import type { Sequencer } from "../../lib/config.ts";
import { recover } from "../../lib/engine/store.ts";
import { type KvStore, kvStoreOver } from "../../lib/engine/kv/open.ts";
import { Counter } from "../../lib/metrics.ts";
import type { NewMessage, StoredMessage } from "../../lib/protocol.ts";
import { type Fault, faultyKv } from "../_faulty_kv.ts";

const clock = new ManualClock();
let n = 0;
const message = (data: unknown): NewMessage => ({
  type: "message",
  room: "f",
  id: `f${++n}`,
  from: { id: "u", name: "U" },
  data,
  ts: clock.now(),
});

async function open(sequencer: Sequencer, historyLimit = 1000) {
  const faulty = faultyKv(await Deno.openKv(":memory:"));
  const lost = new Counter("lost", "lost");
  const store = await kvStoreOver(faulty.kv, { historyLimit, historyTtlMs: undefined, clock, sequencer, lost });
  return { faulty, store, lost };
}

/** Appends; resolves with the stored message and whether (and how) it became durable. */
async function append(store: KvStore, m: NewMessage): Promise<{ stored: StoredMessage; durable: Promise<unknown> }> {
  const durable = Promise.withResolvers<unknown>();
  const stored = (await store.append(m, (error) => durable.resolve(error ?? "durable"))).message;
  return { stored, durable: durable.promise };
}

async function quietly<T>(work: () => Promise<T>): Promise<T> {
  const error = console.error;
  console.error = () => {};
  try {
    return await work();
  } finally {
    console.error = error;
  }
}

const ids = async (store: KvStore) => (await store.read("f", { limit: 100 })).messages.map((m) => [m.offset, m.id]);

for (const fault of ["fail", "unknown"] as Fault[]) {
  Deno.test(`local sequencer, one commit ${fault === "fail" ? "fails" : "of unknown outcome"}: retried or found, stored once`, async () => {
    const { faulty, store } = await open("local");
    try {
      await store.position("f");
      const first = await append(store, message(1));
      assert.equal(await first.durable, "durable");
      faulty.faults.push(fault);
      const batch = await Promise.all([2, 3, 4].map((i) => append(store, message(i))));
      for (const { durable } of batch) assert.equal(await durable, "durable");
      const expected = [first, ...batch].map(({ stored }) => [stored.offset, stored.id]);
      assert.deepEqual(await ids(store), expected, "each message once, at the offset it was acked with");
      assert.deepEqual(expected.map(([offset]) => offset), [1, 2, 3, 4]);
    } finally {
      await store.close();
    }
  });

  Deno.test(`kv sequencer, a commit ${fault === "fail" ? "fails" : "of unknown outcome"}`, async () => {
    const { faulty, store } = await open("kv");
    try {
      const first = await append(store, message(1));
      faulty.faults.push(fault);
      const second = store.append(message(2));
      if (fault === "fail") {
        await assert.rejects(second, /injected/, "the publisher is told it was not stored");
        const third = await append(store, message(3));
        assert.equal(third.stored.offset, 2, "the failed message used no offset anybody saw");
        assert.deepEqual(await ids(store), [[1, first.stored.id], [2, third.stored.id]]);
      } else {
        const { message: stored } = await second;
        assert.equal(stored.offset, 2, "the commit applied: found, and answered as stored");
        const third = await append(store, message(3));
        assert.deepEqual(await ids(store), [[1, first.stored.id], [2, stored.id], [3, third.stored.id]]);
      }
    } finally {
      await store.close();
    }
  });
}

Deno.test("local sequencer, the KV keeps failing: messages delivered meanwhile are a hole, counted and reported", async () => {
  const limit = 5;
  const { faulty, store, lost } = await open("local", limit);
  try {
    await store.position("f");
    const kept = [];
    for (let i = 0; i < 3; i++) kept.push(await append(store, message(i)));
    for (const { durable } of kept) assert.equal(await durable, "durable");
    faulty.faults.push(...Array<Fault>(60).fill("fail"));
    const doomed = await Promise.all([10, 11].map((i) => append(store, message(i))));
    const errors = await quietly(() => Promise.all(doomed.map(({ durable }) => durable)));
    for (const error of errors) assert.match(String(error), /injected/, "the lost messages' onDurable says why");
    assert.equal(lost.value, 2);
    faulty.faults.length = 0;
    const after = [];
    for (let i = 0; i < 3; i++) after.push(await append(store, message(20 + i)));
    for (const { durable } of after) assert.equal(await durable, "durable");
    assert.deepEqual(after.map(({ stored }) => stored.offset), [6, 7, 8], "numbering goes on above the hole");
    // The window counts the 5 newest messages; the two lost offsets don't count.
    assert.deepEqual((await ids(store)).map(([offset]) => offset), [2, 3, 6, 7, 8]);
    const epoch = kept[0]?.stored.epoch as string;
    assert.equal((await recover(store, "f", { epoch, offset: 3 }, limit)).recovered, false, "across the hole");
    const fromSix = await recover(store, "f", { epoch, offset: 6 }, limit);
    assert.deepEqual([fromSix.recovered, fromSix.messages.map((m) => m.offset)], [true, [7, 8]]);
  } finally {
    await store.close();
  }
});
