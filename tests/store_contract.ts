/**
 * The store contract (lib/engine/store.ts) as one suite that takes a factory, run against every
 * implementation by lib/engine/store_test.ts.
 */
import assert from "node:assert/strict";
import { ManualClock } from "../lib/clock.ts";
import { recover, type RetentionOptions, type Store } from "../lib/engine/store.ts";
import { jsonEncoder, Outbound } from "../lib/peer.ts";
import type { NewMessage } from "../lib/protocol.ts";
import { until } from "./_wait.ts";

export interface StoreFixture {
  store: Store;
  /** A second store over the same backing data, as another isolate or process would open it. */
  sibling?: () => Promise<Store>;
  /** The same data opened again after `store.close()`, as after a restart. */
  reopen?: () => Promise<Store>;
  cleanup(): Promise<void>;
}

export type StoreFactory = (retention: RetentionOptions, clock: ManualClock) => Promise<StoreFixture>;

let seq = 0;
function message(room: string, data: unknown, ts: number): NewMessage {
  return { type: "message", room, id: `m${++seq}`, from: { id: "u1", name: "U" }, data, ts };
}

const offsets = (messages: { offset: number }[]) => messages.map((m) => m.offset);

/** `shared`: the factory gives `sibling`; `durable`: it gives `reopen`. Those steps run only then. */
export function storeContract(name: string, factory: StoreFactory, can: { shared: boolean; durable: boolean }): void {
  const retention = { historyLimit: 1000, historyTtlMs: undefined };

  const withStore = async (
    options: Partial<RetentionOptions>,
    body: (f: StoreFixture, clock: ManualClock) => Promise<void>,
  ) => {
    const clock = new ManualClock();
    const fixture = await factory({ ...retention, ...options }, clock);
    try {
      await body(fixture, clock);
    } finally {
      await fixture.cleanup();
    }
  };

  Deno.test(`${name}: store contract`, async (t) => {
    await t.step("offsets 1, 2, 3 in one epoch; position follows", () =>
      withStore({}, async ({ store }, clock) => {
        const empty = await store.position("r");
        assert.equal(empty.offset, 0);
        assert.deepEqual(await store.position("r"), empty, "an empty room keeps the epoch it was given");
        const a = (await store.append(message("r", "a", clock.now()))).message;
        const b = (await store.append(message("r", { n: 2 }, clock.now()))).message;
        assert.deepEqual([a.offset, b.offset], [1, 2]);
        assert.equal(a.epoch, empty.epoch);
        assert.equal(b.type, "message");
        assert.deepEqual(b.data, { n: 2 });
        assert.deepEqual(await store.position("r"), { epoch: empty.epoch, offset: 2 });
        const other = (await store.append(message("other", "x", clock.now()))).message;
        assert.equal(other.offset, 1, "offsets are per room");
      }));

    await t.step(
      "concurrent appends: no holes, no duplicates, call order kept",
      () =>
        withStore({}, async ({ store }, clock) => {
          const stored = (await Promise.all(
            Array.from({ length: 200 }, (_, i) => store.append(message("c", i, clock.now()))),
          )).map((appended) => appended.message);
          assert.deepEqual(offsets(stored), Array.from({ length: 200 }, (_, i) => i + 1));
          assert.deepEqual(stored.map((m) => m.data), Array.from({ length: 200 }, (_, i) => i));
        }),
    );

    await t.step(
      "read: newest page, after, before, limit; oldest first",
      () =>
        withStore({}, async ({ store }, clock) => {
          for (let i = 1; i <= 10; i++) await store.append(message("h", i, clock.now()));
          assert.deepEqual(offsets((await store.read("h", { limit: 3 })).messages), [8, 9, 10]);
          assert.deepEqual(offsets((await store.read("h", { after: 2, limit: 3 })).messages), [3, 4, 5]);
          assert.deepEqual(offsets((await store.read("h", { before: 4, limit: 50 })).messages), [1, 2, 3]);
          assert.deepEqual(offsets((await store.read("h", { after: 3, before: 6, limit: 50 })).messages), [4, 5]);
          assert.deepEqual(offsets((await store.read("h", { after: 10, limit: 5 })).messages), []);
          const page = await store.read("h", { limit: 1 });
          assert.equal(page.offset, 10);
          assert.deepEqual((await store.read("nothing", { limit: 5 })).messages, []);
        }),
    );

    await t.step(
      "retention by count: only the last historyLimit messages",
      () =>
        withStore({ historyLimit: 5 }, async ({ store }, clock) => {
          for (let i = 1; i <= 100; i++) await store.append(message("t", i, clock.now()));
          assert.deepEqual(offsets((await store.read("t", { limit: 100 })).messages), [96, 97, 98, 99, 100]);
          assert.deepEqual(offsets((await store.read("t", { after: 2, limit: 100 })).messages), [96, 97, 98, 99, 100]);
        }),
    );

    await t.step(
      "retention by age: older messages are not returned",
      () =>
        withStore({ historyTtlMs: 60_000 }, async ({ store }, clock) => {
          await store.append(message("age", "old", clock.now()));
          clock.advance(59_000);
          await store.append(message("age", "newer", clock.now()));
          clock.advance(2_000);
          const page = await store.read("age", { limit: 10 });
          assert.deepEqual(page.messages.map((m) => m.data), ["newer"]);
          const position = await store.position("age");
          assert.equal((await recover(store, "age", { epoch: position.epoch, offset: 0 }, 1000)).recovered, false);
          assert.equal((await recover(store, "age", { epoch: position.epoch, offset: 1 }, 1000)).recovered, true);
        }),
    );

    await t.step(
      "recover: exactly what was missed, or recovered: false",
      () =>
        withStore({ historyLimit: 10 }, async ({ store }, clock) => {
          for (let i = 1; i <= 5; i++) await store.append(message("rec", i, clock.now()));
          const { epoch } = await store.position("rec");
          const exact = await recover(store, "rec", { epoch, offset: 2 }, 10);
          assert.equal(exact.recovered, true);
          assert.deepEqual(offsets(exact.messages), [3, 4, 5]);
          assert.equal(exact.offset, 5);
          const current = await recover(store, "rec", { epoch, offset: 5 }, 10);
          assert.deepEqual([current.recovered, current.messages.length], [true, 0]);
          const otherEpoch = await recover(store, "rec", { epoch: "not-it", offset: 2 }, 10);
          assert.deepEqual([otherEpoch.recovered, otherEpoch.messages.length, otherEpoch.epoch], [false, 0, epoch]);
          const future = await recover(store, "rec", { epoch, offset: 9 }, 10);
          assert.equal(future.recovered, false, "a position ahead of the room can't be trusted");
          for (let i = 6; i <= 20; i++) await store.append(message("rec", i, clock.now()));
          const trimmed = await recover(store, "rec", { epoch, offset: 5 }, 10);
          assert.equal(trimmed.recovered, false, "offsets 6–10 are no longer kept");
          const edge = await recover(store, "rec", { epoch, offset: 10 }, 10);
          assert.deepEqual([edge.recovered, offsets(edge.messages)[0], edge.messages.length], [true, 11, 10]);
        }),
    );

    await t.step(
      "reset: a new epoch, offsets restart, old history gone",
      () =>
        withStore({}, async ({ store }, clock) => {
          for (let i = 1; i <= 3; i++) await store.append(message("z", i, clock.now()));
          const before = await store.position("z");
          const after = await store.reset("z");
          assert.notEqual(after.epoch, before.epoch);
          assert.equal(after.offset, 0);
          assert.deepEqual((await store.read("z", { limit: 10 })).messages, []);
          const next = (await store.append(message("z", "fresh", clock.now()))).message;
          assert.deepEqual([next.epoch, next.offset], [after.epoch, 1]);
          assert.equal((await recover(store, "z", before, 1000)).recovered, false);
        }),
    );

    await t.step(
      "the JSON sent for a stored message is exactly its JSON",
      () =>
        withStore({}, async ({ store }, clock) => {
          const tricky = { text: 'quote " backslash \\ newline \n ü 😀 </script>', n: [1.5, null, true] };
          const stored = (await store.append({
            ...message("json", tricky, clock.now()),
            from: { id: 'u"1', name: "Zoë" },
          })).message;
          assert.equal(new Outbound(stored).text(jsonEncoder), JSON.stringify(stored));
          const read = (await store.read("json", { limit: 1 })).messages[0];
          assert.deepEqual(read, stored);
        }),
    );

    await t.step("large and non-ASCII messages round-trip", () =>
      withStore({}, async ({ store }, clock) => {
        const big = { text: "ü€😀".repeat(20_000), n: [1, 2, 3] };
        const stored = (await store.append(message("big", big, clock.now()))).message;
        await store.append(message("big", "small", clock.now()));
        const page = await store.read("big", { limit: 10 });
        assert.deepEqual(page.messages[0]?.data, big);
        assert.equal(page.messages[0]?.id, stored.id);
        assert.deepEqual((await store.read("big", { limit: 1 })).messages[0]?.data, "small");
        assert.deepEqual((await store.read("big", { after: 0, limit: 1 })).messages[0]?.data, big);
      }));

    await t.step(
      "an idempotency key: a retry gets the first publish's message, stores nothing, and is told durable only after it",
      () =>
        withStore({}, async ({ store }, clock) => {
          const told: string[] = [];
          const publish = (who: string, key = "k1") =>
            store.append(message("idem", "once", clock.now()), (error) => told.push(`${who} ${error ?? "durable"}`), {
              idempotencyKey: key,
            });
          const first = publish("first");
          const concurrent = publish("concurrent retry");
          const [a, b] = await Promise.all([first, concurrent]);
          // Numbered, perhaps not yet stored (the local sequencer): a retry now must wait for the commit too.
          const numbered = await publish("retry once numbered");
          await until(() => told.length >= 3, 5000, () => `three told durable (told: ${told})`);
          assert.equal(told[0], "first durable", `a retry was told durable before the message was stored: ${told}`);
          assert.deepEqual([...told].sort(), [
            "concurrent retry durable",
            "first durable",
            "retry once numbered durable",
          ]);
          for (const retry of [b, numbered]) {
            assert.deepEqual([retry.message.id, retry.message.offset], [a.message.id, a.message.offset]);
          }
          const later = await publish("later retry");
          assert.equal(later.message.offset, a.message.offset);
          assert.equal(told.at(-1), "later retry durable");
          const other = await publish("other key", "k2");
          assert.equal(other.message.offset, a.message.offset + 1);
          // A key is its publisher's: another user's publish with it is another publish, stored.
          const someoneElse = await store.append(
            { ...message("idem", "theirs", clock.now()), from: { id: "u2", name: "Other" } },
            undefined,
            { idempotencyKey: "k1" },
          );
          assert.equal(someoneElse.message.offset, a.message.offset + 2);
          assert.deepEqual(someoneElse.message.data, "theirs");
          assert.deepEqual(offsets((await store.read("idem", { limit: 10 })).messages), [1, 2, 3]);
        }),
    );

    if (!can.shared) return;
    await t.step(
      "two stores over the same data never assign an offset twice",
      () =>
        withStore({}, async (fixture, clock) => {
          assert.ok(fixture.sibling, "a shared store's fixture gives a sibling");
          const other = await fixture.sibling();
          try {
            const both = (await Promise.all(
              Array.from(
                { length: 100 },
                (_, i) => (i % 2 ? other : fixture.store).append(message("s", i, clock.now())),
              ),
            )).map((appended) => appended.message);
            assert.deepEqual(
              offsets(both).sort((a, b) => a - b),
              Array.from({ length: 100 }, (_, i) => i + 1),
            );
            assert.equal(new Set(both.map((m) => m.epoch)).size, 1);
            const page = await other.read("s", { limit: 100 });
            assert.deepEqual(offsets(page.messages), Array.from({ length: 100 }, (_, i) => i + 1));
          } finally {
            await other.close();
          }
        }),
    );

    await t.step(
      "a parked value is taken once, replaced by a newer one, and gone when it expires",
      () =>
        withStore({}, async ({ store }, clock) => {
          assert.equal(await store.unpark("nobody"), undefined);
          const big = "é".repeat(20_000); // 40,000 bytes of UTF-8
          await store.park("p1", "first", 60_000);
          await store.park("p1", big, 60_000);
          await store.park("p2", "other", 60_000);
          const taken = await Promise.all([store.unpark("p1"), store.unpark("p1")]);
          assert.deepEqual(taken.filter((v) => v !== undefined), [big], "one taker gets it, the newer value");
          assert.equal(await store.unpark("p1"), undefined);
          await store.park("p3", "late", 1_000);
          clock.advance(1_001);
          assert.equal(await store.unpark("p3"), undefined, "expired");
          assert.equal(await store.unpark("p2"), "other", "not expired: parked for 60 s, taken after 1 s");
        }),
    );

    if (can.shared) {
      await t.step("a value parked by one sharer is taken by another", () =>
        withStore({}, async (fixture) => {
          assert.ok(fixture.sibling);
          const other = await fixture.sibling();
          try {
            await fixture.store.park("s1", "from one", 60_000);
            assert.equal(await other.unpark("s1"), "from one");
            assert.equal(await fixture.store.unpark("s1"), undefined);
          } finally {
            await other.close();
          }
        }));
    }

    if (!can.durable) return;
    await t.step("history and offsets survive a restart", () =>
      withStore({}, async (fixture, clock) => {
        assert.ok(fixture.reopen, "a durable store's fixture can reopen");
        for (let i = 1; i <= 3; i++) await fixture.store.append(message("keep", i, clock.now()));
        const position = await fixture.store.position("keep");
        await fixture.store.close();
        const again = await fixture.reopen();
        try {
          assert.deepEqual(await again.position("keep"), position);
          assert.deepEqual((await again.read("keep", { limit: 10 })).messages.map((m) => m.data), [1, 2, 3]);
          assert.equal((await again.append(message("keep", 4, clock.now()))).message.offset, 4);
        } finally {
          await again.close();
        }
      }));
  });
}
