/**
 * KvWatch against a real Deno KV (in memory): subjects packed ten keys a stream, a change reported
 * once with its key's index, churn restarting streams in bounded number, the cap on subjects with
 * waiting ones promoted, and a stream that fails reported and started again.
 */
import assert from "node:assert/strict";
import { KEYS_PER_WATCH, KvWatch } from "./watch.ts";
import { forward } from "../../../tests/_faulty_kv.ts";

type Change = [subject: string, index: number, value: unknown];

/** A KV whose `watch` calls are counted, and whose first `failing` streams error on first read
 * (or, with `ending`, end without an error). */
function countingKv(real: Deno.Kv, failing = 0, ending = false): { kv: Deno.Kv; watches: number } {
  const state = { kv: real, watches: 0 };
  state.kv = forward(real, {
    watch: (keys: Deno.KvKey[]) => {
      state.watches++;
      if (failing > 0) {
        failing--;
        return new ReadableStream({ pull: (c) => ending ? c.close() : c.error(new Error("watch stream broke")) });
      }
      return real.watch(keys);
    },
  });
  return state;
}

/** Waits until `done()` holds (polled every 10 ms), failing after `ms`. */
async function until(done: () => boolean, ms = 3000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const keysOf = (s: string): Deno.KvKey[] => [["a", s], ["b", s]];

function watcher(kv: Deno.Kv, maxSubjects = 1000) {
  const changes: Change[] = [];
  const troubles: unknown[] = [];
  const watch = new KvWatch({
    kv,
    keysOf,
    changed: (subject, index, entry) => changes.push([subject, index, entry.value]),
    trouble: (error) => troubles.push(error),
    maxSubjects,
  });
  return { watch, changes, troubles };
}

Deno.test("KvWatch: subjects share streams ten keys each; a change is told once, with its key's index", async () => {
  const kv = await Deno.openKv(":memory:");
  const { watch, changes } = watcher(kv);
  try {
    for (let i = 0; i < 23; i++) watch.add(`s${i}`);
    assert.equal(watch.streams, Math.ceil((23 * 2) / KEYS_PER_WATCH), "23 subjects of two keys: 5 streams");
    assert.equal(watch.watched, 23);
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.deepEqual(changes, [], "keys that don't exist are not a change");

    await kv.set(["b", "s17"], "first");
    await until(() => changes.length >= 1, 3000, "the change");
    await kv.set(["a", "s3"], "second");
    await until(() => changes.length >= 2, 3000, "the second change");
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(changes, [["s17", 1, "first"], ["s3", 0, "second"]], "each change once, nothing else");
  } finally {
    await watch.close();
    kv.close();
  }
});

Deno.test("KvWatch: churn restarts few streams; a subject's first report is a change where its key exists", async () => {
  const real = await Deno.openKv(":memory:");
  const counted = countingKv(real);
  const { watch, changes } = watcher(counted.kv);
  try {
    await real.set(["a", "old"], "before");
    // A thousand joins and leaves in one turn: applied together, one start per group left.
    for (let i = 0; i < 1000; i++) {
      watch.add(`r${i % 40}`);
      if (i % 3 === 0) watch.delete(`r${i % 40}`);
    }
    watch.add("old");
    await until(() => changes.length >= 1, 3000, "the existing key's report");
    assert.ok(counted.watches <= watch.streams, `${counted.watches} watch calls for ${watch.streams} streams`);
    assert.equal(watch.streams, Math.ceil((watch.watched * 2) / KEYS_PER_WATCH));
    assert.deepEqual(changes, [["old", 0, "before"]], "what was written before the stream started is told");

    const before = counted.watches;
    for (let i = 0; i < 40; i++) watch.delete(`r${i}`);
    watch.delete("old");
    await until(() => watch.streams === 0, 1000, "every stream to end");
    assert.equal(counted.watches, before, "ending streams starts none");
  } finally {
    await watch.close();
    real.close();
  }
});

Deno.test("KvWatch: at most maxSubjects are watched; one waiting is watched when a place frees", async () => {
  const kv = await Deno.openKv(":memory:");
  const { watch, changes } = watcher(kv, 2);
  try {
    for (const s of ["x", "y", "z"]) watch.add(s);
    assert.equal(watch.watched, 2);
    await new Promise((resolve) => setTimeout(resolve, 150));
    await kv.set(["a", "z"], 1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(changes, [], "z waits for a place: not watched");
    watch.delete("x");
    assert.equal(watch.watched, 2);
    await until(() => changes.length >= 1, 3000, "z's report");
    assert.deepEqual(changes, [["z", 0, 1]], "z is watched now, and its earlier change is told");
  } finally {
    await watch.close();
    kv.close();
  }
});

Deno.test("KvWatch: a stream that fails is reported and started again; changes are told after", async () => {
  const real = await Deno.openKv(":memory:");
  const counted = countingKv(real, 1);
  const { watch, changes, troubles } = watcher(counted.kv);
  try {
    watch.add("f");
    await until(() => troubles.length === 1, 2000, "the failure to be reported");
    assert.match(String(troubles[0]), /watch stream broke/);
    await until(() => counted.watches === 2, 3000, "the stream to start again");
    await real.set(["b", "f"], "after");
    await until(() => changes.length >= 1, 3000, "the change after the restart");
    assert.deepEqual(changes, [["f", 1, "after"]]);
    assert.equal(troubles.length, 1);
  } finally {
    await watch.close();
    real.close();
  }
});

Deno.test("KvWatch: a stream that ends (the platform closed it) is started again, unreported", async () => {
  const real = await Deno.openKv(":memory:");
  const counted = countingKv(real, 1, true);
  const { watch, changes, troubles } = watcher(counted.kv);
  try {
    watch.add("e");
    await until(() => counted.watches === 2, 3000, "the stream to start again");
    await real.set(["a", "e"], "later");
    await until(() => changes.length >= 1, 3000, "the change after the restart");
    assert.deepEqual(changes, [["e", 0, "later"]]);
    assert.deepEqual(troubles, [], "an ended stream is no trouble");
  } finally {
    await watch.close();
    real.close();
  }
});
