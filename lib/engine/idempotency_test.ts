/**
 * Idempotency keys when the first publish's commit fails, or the publish is refused: what the
 * store contract can't provoke with a real store (tests/store_contract.ts covers the rest).
 */
import assert from "node:assert/strict";
import { ManualClock } from "../clock.ts";
import { Idempotency, IDEMPOTENCY_TTL_MS } from "./idempotency.ts";
import type { Appended, OnDurable } from "./store.ts";

/** A store's append: numbered at once (offset `n`), durable when the test says so. */
function fakeStore() {
  let offset = 0;
  const commits: OnDurable[] = [];
  return {
    appends: () => offset,
    commit: (error?: unknown) => {
      for (const told of commits.splice(0)) told(error);
    },
    append: (onDurable?: OnDurable): Promise<Appended> => {
      offset++;
      if (onDurable) commits.push(onDurable);
      const message = {
        type: "message" as const,
        room: "r",
        id: `m${offset}`,
        from: { id: "u", name: "U" },
        data: null,
        ts: 0,
        epoch: "e",
        offset,
      };
      return Promise.resolve({ message, json: JSON.stringify(message) });
    },
  };
}

Deno.test("idempotency: a failed commit fails its waiting retries, and the next retry stores the message", async () => {
  const clock = new ManualClock();
  const keys = new Idempotency(clock);
  const store = fakeStore();
  const told: string[] = [];
  const tell = (who: string) => (error?: unknown) => told.push(`${who}: ${error === undefined ? "durable" : error}`);

  const first = await keys.run("r", "u", "k", tell("first"), store.append);
  const retry = await keys.run("r", "u", "k", tell("retry"), store.append);
  assert.equal(retry.message.offset, first.message.offset);
  assert.deepEqual(told, [], "nobody is told before the commit");
  store.commit("disk full");
  assert.deepEqual(told, ["first: disk full", "retry: disk full"]);

  const again = await keys.run("r", "u", "k", tell("again"), store.append);
  assert.equal(again.message.offset, 2, "the failed first publish stored nothing: this one stores it");
  store.commit();
  assert.deepEqual(told.slice(2), ["again: durable"]);
  assert.equal((await keys.run("r", "u", "k", tell("late"), store.append)).message.offset, 2);
  assert.deepEqual(told.slice(3), ["late: durable"], "told at once: it is stored");
  assert.equal(store.appends(), 2);

  clock.advance(IDEMPOTENCY_TTL_MS + 1);
  assert.equal(
    (await keys.run("r", "u", "k", undefined, store.append)).message.offset,
    3,
    "a day later the key is new",
  );
});

Deno.test("idempotency: a refused publish refuses its concurrent retries and is forgotten", async () => {
  const keys = new Idempotency(new ManualClock());
  const told: unknown[] = [];
  let refuse: (error: Error) => void = () => {};
  const refused = new Promise<Appended>((_, reject) => refuse = reject);
  const first = keys.run("r", "u", "k", (error) => told.push(error), () => refused);
  const retry = keys.run("r", "u", "k", (error) => told.push(error), () => Promise.reject(new Error("not called")));
  refuse(new Error("unavailable"));
  await assert.rejects(first, /unavailable/);
  await assert.rejects(retry, /unavailable/);
  assert.equal(told.length, 1, "the first publish hears of its refusal once");
  const store = fakeStore();
  assert.equal((await keys.run("r", "u", "k", undefined, store.append)).message.offset, 1, "the key was forgotten");
});

Deno.test("idempotency: at most 100,000 keys are kept (a flood of keyed publishes); the oldest go first", async () => {
  const store = fakeStore();
  const idempotency = new Idempotency(new ManualClock(0));
  const run = (key: string) => idempotency.run("r", "u", key, undefined, (done) => store.append(done), 600_000);
  for (let i = 0; i <= 100_000; i++) await run(`k${i}`);
  assert.equal(store.appends(), 100_001);
  await run("k100000");
  assert.equal(store.appends(), 100_001, "the newest key is remembered");
  await run("k0");
  assert.equal(store.appends(), 100_002, "the oldest was let go");
});
