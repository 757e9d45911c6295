/** The KV store's local sequencer: deliver first, commit right after, one writer per file, and
 * no offset handed out twice across a crash. */
import assert from "node:assert/strict";
import { ManualClock } from "../../clock.ts";
import type { NewMessage } from "../../protocol.ts";
import { recover } from "../store.ts";
import { type KvStore, kvStoreOver, openKvStore } from "./open.ts";
import { utf8Length } from "./format.ts";
import { durable, keysOf, logged, stored } from "../../../tests/_kv.ts";
import { faultyKv, slowKv } from "../../../tests/_faulty_kv.ts";

const clock = new ManualClock();
const retention = { historyLimit: 1000, historyTtlMs: undefined, clock };
let n = 0;
const message = (room: string, data: unknown): NewMessage => ({
  type: "message",
  room,
  id: `m${++n}`,
  from: { id: "u", name: "U" },
  data,
  ts: clock.now(),
});

/** Runs `body` with the path of a KV file in a fresh temporary folder, removed afterwards. */
async function withKvFile(body: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await body(`${dir}/store.kv`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const openLocal = (path: string) => openKvStore(path, { ...retention, sequencer: "local" });

/** Appends and waits until the store says the message is durable. */
async function appendDurably(store: KvStore, m: NewMessage) {
  const durable = Promise.withResolvers<void>();
  const stored = (await store.append(m, (error) => error ? durable.reject(error) : durable.resolve())).message;
  await durable.promise;
  return stored;
}

/** Runs tests/_crash_writer.ts on `path`: `durable` messages stored, `lost` more handed out, then
 * an exit without a clean stop. */
async function crash(path: string, durable: number, lost: number): Promise<Deno.CommandOutput> {
  const writer = new URL("../../../tests/_crash_writer.ts", import.meta.url).pathname;
  return await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-kv", writer, path, String(durable), String(lost)],
    stdout: "piped",
    stderr: "inherit",
  }).output();
}

Deno.test("local sequencer: resolves at once, stores right after, and says when", () =>
  withKvFile(async (path) => {
    const store = await openLocal(path);
    try {
      await store.position("r"); // a join reads the room (the first publish reserves offsets)
      const events: string[] = [];
      const first = store.append(message("r", 1), () => events.push("durable 1"));
      const second = store.append(message("r", 2), () => events.push("durable 2"));
      const [{ message: a }, { message: b }] = await Promise.all([first, second]);
      events.push("resolved");
      assert.deepEqual([a.offset, b.offset], [1, 2]);
      assert.deepEqual(events, ["resolved"], "both resolve before either is stored");
      const c = await appendDurably(store, message("r", 3));
      assert.equal(c.offset, 3);
      assert.deepEqual(events, ["resolved", "durable 1", "durable 2"], "stored in order, before the later one");
      // Stored means in the commit log; filed under the room's keys soon after, or when a read needs them.
      assert.deepEqual(await durable(path, "r"), [1, 2, 3]);
      // A read waits for what was handed out before it.
      void store.append(message("r", 4));
      assert.deepEqual((await store.read("r", { limit: 10 })).messages.map((m) => m.offset), [1, 2, 3, 4]);
      assert.deepEqual(await keysOf(path, "r"), [1, 2, 3, 4]);
      assert.deepEqual(await logged(path), [], "log records wholly filed are deleted");
    } finally {
      await store.close();
    }
  }));

Deno.test("local sequencer: one process per KV file (lock), free again after close", () =>
  withKvFile(async (path) => {
    const first = await openLocal(path);
    await assert.rejects(
      openLocal(path),
      /in use by another roomcast process.*ROOMCAST_SEQUENCER=kv/s,
    );
    await first.close();
    const again = await openLocal(path);
    await again.close();
  }));

Deno.test("local sequencer: after a crash, numbering continues above anything handed out; recoveries across the lost messages answer recovered: false", () =>
  withKvFile(async (path) => {
    const output = await crash(path, 5, 3);
    const { offsets } = JSON.parse(new TextDecoder().decode(output.stdout)) as { offsets: number[] };
    assert.deepEqual(offsets, [1, 2, 3, 4, 5, 6, 7, 8], "the crashed process handed out 1–8");
    assert.deepEqual(await durable(path, "c"), [1, 2, 3, 4, 5], "only 1–5 were committed");

    const store = await openLocal(path);
    try {
      assert.deepEqual(await keysOf(path, "c"), [1, 2, 3, 4, 5], "the next start files what the log holds");
      assert.deepEqual(await logged(path), []);
      const position = await store.position("c");
      assert.ok(position.offset >= 8, `position ${position.offset} is at or above every offset handed out`);
      const next = await appendDurably(store, message("c", "after"));
      assert.ok(next.offset > 8, `offset ${next.offset} names no message a client may have seen`);
      assert.equal(next.epoch, position.epoch, "history of the epoch stays readable");
      const history = await store.read("c", { limit: 100 });
      assert.deepEqual(history.messages.map((m) => m.offset), [1, 2, 3, 4, 5, next.offset]);

      const epoch = position.epoch;
      const at = (offset: number) => recover(store, "c", { epoch, offset }, 1000);
      assert.equal((await at(5)).recovered, false, "6–8 were delivered and lost: not recoverable");
      assert.equal((await at(7)).recovered, false, "nor from inside the lost run");
      assert.equal((await at(8)).recovered, false, "the unused rest of the reservation is a hole too");
      const caughtUp = await at(next.offset);
      assert.equal(caughtUp.recovered, true);
      assert.deepEqual(caughtUp.messages, []);
    } finally {
      await store.close();
    }
    // A clean stop gives the reservation back: the next start continues right after.
    const reopened = await openLocal(path);
    try {
      const before = await reopened.position("c");
      const after = await appendDurably(reopened, message("c", "clean"));
      assert.equal(after.offset, before.offset + 1);
    } finally {
      await reopened.close();
    }
  }));

Deno.test("local sequencer: another writer on the file (sequencer kv) is noticed; no offset is used twice", () =>
  withKvFile(async (path) => {
    const local = await openLocal(path);
    const shared = await openKvStore(path, { ...retention, sequencer: "kv" });
    const warn = console.warn;
    console.warn = () => {};
    try {
      for (let i = 1; i <= 3; i++) await appendDurably(local, message("x", i));
      const theirs = (await shared.append(message("x", "kv"))).message;
      assert.ok(theirs.offset > 3, `the kv writer numbers above the local reservation (got ${theirs.offset})`);
      // The local store goes on inside its reservation, then needs a new one and finds the meta changed:
      // what it numbered meanwhile and has not stored is lost, and it numbers above the other writer.
      const outcomes = new Map<number, unknown>();
      const handed: number[] = [];
      for (let i = 0; i < 200; i++) {
        let offset = 0;
        const m = (await local.append(message("x", `l${i}`), (error) =>
          outcomes.set(offset, error ?? "stored"))).message;
        offset = m.offset;
        handed.push(m.offset);
      }
      await local.read("x", { limit: 1 }); // waits for every commit
      assert.equal(outcomes.size, 200, "every append was said to be stored or lost");
      const keys = await keysOf(path, "x");
      assert.equal(new Set(keys).size, keys.length, "no offset stored twice");
      for (const [offset, outcome] of outcomes) {
        assert.equal(keys.includes(offset), outcome === "stored", `offset ${offset}: ${String(outcome)}`);
      }
      assert.ok([...outcomes.values()].some((o) => o instanceof Error), "the change was noticed");
      assert.ok(handed.some((o) => o > theirs.offset), "numbering went on above the other writer");
      assert.ok(!handed.includes(theirs.offset), "the other writer's offset was never handed out here");
      const history = await shared.read("x", { limit: 1000 });
      assert.deepEqual(history.messages.map((m) => m.offset), keys);
    } finally {
      console.warn = warn;
      await local.close();
      await shared.close();
    }
  }));

Deno.test("local sequencer: a room idle for a minute gives its reservation back and leaves memory", () =>
  withKvFile(async (path) => {
    const time = new ManualClock();
    const store = await openKvStore(path, { ...retention, clock: time, sequencer: "local" });
    const meta = async (room: string) => {
      const kv = await Deno.openKv(path);
      const entry = await kv.get<{ offset: number; reserved: number }>(["rc1", "meta", room]);
      kv.close();
      return entry.value;
    };
    try {
      await appendDurably(store, message("idle", 1));
      await store.read("idle", { limit: 1 }); // filed from the commit log
      const reserved = (await meta("idle"))?.reserved ?? 0;
      assert.ok(reserved > 1, `offsets above 1 are reserved (${reserved})`);
      time.advance(61_000);
      await appendDurably(store, message("busy", 1)); // the committer runs, and looks for idle rooms
      const released = await meta("idle");
      assert.equal(released?.offset, 1);
      assert.equal(released?.reserved, 1, "the reservation was given back");
      const next = await appendDurably(store, message("idle", 2));
      assert.equal(next.offset, 2, "read again, the room continues right after its last message");
      assert.ok(((await meta("idle"))?.reserved ?? 0) > 2, "and reserves again");
    } finally {
      await store.close();
    }
  }));

Deno.test("local sequencer: the commit log is filed as blocks per room; pages cut through blocks", () =>
  withKvFile(async (path) => {
    const store = await openLocal(path);
    try {
      for (let group = 0; group < 3; group++) {
        // Five appends in one turn go into one log record; the read files them as one block.
        await Promise.all([1, 2, 3, 4, 5].map((i) => store.append(message("b", group * 5 + i))));
        await store.read("b", { limit: 1 });
      }
      const { offsets, keys } = await stored(path, "b");
      assert.deepEqual(offsets, Array.from({ length: 15 }, (_, i) => i + 1));
      assert.equal(keys, 3, "three blocks: 1–5, 6–10, 11–15");
      const page = async (options: { after?: number; before?: number; limit: number }) =>
        (await store.read("b", options)).messages.map((m) => m.offset);
      assert.deepEqual(await page({ before: 8, limit: 4 }), [4, 5, 6, 7]);
      assert.deepEqual(await page({ after: 3, limit: 4 }), [4, 5, 6, 7]);
      assert.deepEqual(await page({ after: 6, before: 12, limit: 50 }), [7, 8, 9, 10, 11]);
      assert.deepEqual(await page({ limit: 3 }), [13, 14, 15]);
    } finally {
      await store.close();
    }
  }));

Deno.test("local sequencer: a start files what an unclean stop left in the log, except into an epoch reset since", () =>
  withKvFile(async (path) => {
    // The log as a process that died before filing it leaves it: two records, rooms "kept" and "reset".
    const line = (room: string, epoch: string, offset: number) =>
      JSON.stringify({
        type: "message",
        room,
        id: `${room}${offset}`,
        epoch,
        offset,
        from: { id: "u", name: "U" },
        ts: 0,
      });
    const kv = await Deno.openKv(path);
    const bytes = (lines: string[]) => new TextEncoder().encode(lines.join("\n") + "\n");
    await kv.set(["rc1", "meta", "kept"], { epoch: "e1", offset: 0, reserved: 64 });
    await kv.set(["rc1", "meta", "reset"], { epoch: "fresh", offset: 0 }); // reset by another writer since
    await kv.set(["rc1", "log", 1, 0], bytes([line("kept", "e1", 1), line("reset", "old", 1)]));
    await kv.set(["rc1", "log", 2, 0], bytes([line("kept", "e1", 2)]));
    await kv.set(["rc1", "log", 3, 0], new Uint8Array(0)); // a record with no messages
    kv.close();
    const store = await openLocal(path);
    try {
      assert.deepEqual(await keysOf(path, "kept"), [1, 2], "filed at start");
      assert.deepEqual(await keysOf(path, "reset"), [], "the old epoch's message stays out");
      assert.deepEqual(await logged(path), [], "and the log is emptied");
      const left = await Deno.openKv(path);
      const logKeys = await Array.fromAsync(left.list({ prefix: ["rc1", "log"] }), (e) => e.key);
      left.close();
      assert.deepEqual(logKeys, [], "every record deleted, the empty one too");
      assert.deepEqual((await store.read("kept", { limit: 10 })).messages.map((m) => m.offset), [1, 2]);
      const next = (await store.append(message("kept", "next"))).message;
      assert.equal(next.offset, 65, "numbering continues above the reservation");
      assert.equal((await store.append(message("reset", "new"))).message.epoch, "fresh");
    } finally {
      await store.close();
    }
  }));

Deno.test("kv format: utf8Length agrees with TextEncoder on any text", () => {
  const encoder = new TextEncoder();
  const pieces = ["a", "\u00e9", "\u20ac", "\u{1f600}", "\ud800", "\udc00", '"', "\\", "\n", "\u0000"];
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let i = 0; i < 500; i++) {
    const text = Array.from({ length: Math.floor(random() * 12) }, () => pieces[Math.floor(random() * pieces.length)])
      .join("");
    assert.equal(utf8Length(text), encoder.encode(text).length, JSON.stringify(text));
  }
});

Deno.test("local sequencer: rooms whose first message comes while other rooms load get their own epoch", async () => {
  const faulty = faultyKv(await Deno.openKv(":memory:"));
  const store = await kvStoreOver(faulty.kv, { ...retention, sequencer: "local" });
  try {
    // Loading a room's meta takes 20 ms: first messages of other rooms arrive meanwhile.
    faulty.readDelayMs = 20;
    const appends = [];
    for (let i = 0; i < 20; i++) {
      appends.push(store.append(message(`first-${i}`, i)));
      await new Promise((resolve) => setTimeout(resolve, 3));
    }
    for (const [i, { message: stored }] of (await Promise.all(appends)).entries()) {
      const position = await store.position(`first-${i}`);
      assert.equal(stored.epoch, position.epoch, `room first-${i}`);
      assert.equal(stored.offset, 1);
      assert.match(stored.epoch, /^[0-9a-f]{12}$/);
    }
  } finally {
    await store.close();
  }
});

Deno.test("reset: two resets of one room at once delete only the epochs they replaced, never the newer one's messages", () =>
  withKvFile(async (path) => {
    // Two instances on one KV (sequencer kv); the first lists slowly while it deletes the old history.
    const real = await Deno.openKv(path);
    const one = await kvStoreOver(slowKv(real, { listMs: 300 }), { ...retention, sequencer: "kv" });
    const two = await openKvStore(path, { ...retention, sequencer: "kv" });
    try {
      for (let i = 0; i < 3; i++) await two.append(message("r", `old ${i}`));
      const first = one.reset("r");
      await new Promise((resolve) => setTimeout(resolve, 50));
      const second = await two.reset("r");
      const acked = await two.append(message("r", "new"));
      assert.equal(acked.message.epoch, second.epoch);
      await first;
      const page = await two.read("r", { limit: 10 });
      assert.equal(page.epoch, second.epoch);
      assert.deepEqual(page.messages.map((m) => m.data), ["new"], "the acknowledged message of the newest epoch stays");
      const epochs = new Set<unknown>();
      for await (const entry of real.list({ prefix: ["rc1", "msg", "r"] })) epochs.add(entry.key[3]);
      assert.deepEqual([...epochs], [second.epoch], "the old epochs' history is gone");
    } finally {
      await one.close();
      await two.close();
    }
  }));

Deno.test("reset: two resets at once in one process (local sequencer) keep the newer epoch's messages", () =>
  withKvFile(async (path) => {
    const real = await Deno.openKv(path);
    // Every listing waits 300 ms: both resets are still deleting when the message comes.
    const store = await kvStoreOver(slowKv(real, { listMs: 300 }), { ...retention, sequencer: "local" });
    try {
      for (let i = 0; i < 3; i++) await appendDurably(store, message("r", `old ${i}`));
      const first = store.reset("r");
      await new Promise((resolve) => setTimeout(resolve, 50));
      const second = store.reset("r");
      await new Promise((resolve) => setTimeout(resolve, 100));
      const stored = await appendDurably(store, message("r", "new"));
      // A read files the message under the room's keys (where a reset deletes) at once.
      const read = store.read("r", { limit: 10 });
      const [a, b] = await Promise.all([first, second]);
      assert.notEqual(a.epoch, b.epoch);
      assert.equal(stored.epoch, b.epoch);
      await read;
      const page = await store.read("r", { limit: 10 });
      assert.equal(page.epoch, b.epoch);
      assert.deepEqual(page.messages.map((m) => m.data), ["new"], "the acknowledged message of the newest epoch stays");
    } finally {
      await store.close();
    }
  }));
