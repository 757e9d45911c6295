/**
 * Issue "hardening", item 1: JSON nested thousands of levels deep used to overflow the stack in
 * `JSON.stringify` on the publish path (a 12 KB frame ended the process), and a message that could
 * not be numbered used up an offset that never settled, hanging every later read of its room.
 * Now nesting and size are bounded where frames and bodies are decoded, and a message the store
 * can't number or store fails alone.
 */
import assert from "node:assert/strict";
import type { Sequencer } from "../../lib/config.ts";
import type { User } from "../../lib/protocol.ts";
import { isType } from "../_client.ts";
import { postJson, startTestServer } from "../_server.ts";

const nested = (depth: number, inner = "0") => "[".repeat(depth) + inner + "]".repeat(depth);
const server = { id: "s", name: "Server" } satisfies User;

/** Settles within `ms` or fails the test: what used to hang forever. */
async function within<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => timer = setTimeout(() => reject(new Error(`${what} hung`)), ms));
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

for (const kv of [true, false]) {
  Deno.test(`deep JSON on /ws and HTTP is bad_request; the server and the room go on (${kv ? "KV" : "memory"})`, async (t) => {
    await using s = await startTestServer({ kv });
    const c = await s.joined("deep");
    const other = await s.joined("deep");

    await t.step("6,000 levels in a 12 KB frame → bad_request, nothing stored", async () => {
      c.send(`{"type":"publish","room":"deep","ref":"d","data":${nested(6000)}}`);
      const error = await c.next(isType("error"));
      assert.deepEqual([error.code, error.ref], ["bad_request", undefined]);
      assert.match(error.message, /nested deeper than 32 levels/);
    });

    await t.step("more values than allowed → bad_request", async () => {
      c.send({ type: "publish", room: "deep", data: new Array(10_001).fill(0) });
      assert.match((await c.next(isType("error"))).message, /more than 10000 values/);
    });

    await t.step("31 levels of data (32 with the frame) are accepted", async () => {
      const ack = await c.request({ type: "publish", room: "deep", data: JSON.parse(nested(31)) });
      assert.equal(ack.offset, 1, "the refused frames used up no offset");
      assert.equal((await other.next(isType("message"))).offset, 1);
    });

    await t.step("HTTP bodies: 400 for depth and for values", async () => {
      const deep = await postJson(s, "/api/rooms/deep/messages", `{"data":${nested(6000)}}`);
      assert.equal(deep.status, 400);
      assert.match((await deep.json()).error.message, /Body is nested deeper than 32 levels/);
      const wide = await postJson(s, "/api/broadcast", { data: new Array(20_000).fill(1) });
      assert.equal(wide.status, 400);
      assert.match((await wide.json()).error.message, /more than 10000 values/);
    });

    await t.step("the room still answers history and recovery, and takes publishes", async () => {
      const page = await within(2000, "history", s.fetch("/api/rooms/deep/messages").then((r) => r.json()));
      assert.deepEqual(page.messages.map((m: { offset: number }) => m.offset), [1]);
      const late = await s.client();
      const joined = await late.request({ type: "join", room: "deep", since: { epoch: page.epoch, offset: 0 } });
      assert.equal(joined.recovered, true);
      assert.equal((await late.next(isType("message"))).offset, 1);
      const next = await postJson(s, "/api/rooms/deep/messages", { data: "after" });
      assert.equal((await next.json()).offset, 2);
      await late.close();
    });
    await Promise.all([c.close(), other.close()]);
  });
}

const stores: { name: string; kv: boolean; sequencer?: Sequencer }[] = [
  { name: "memory store", kv: false },
  { name: "KV, local sequencer", kv: true, sequencer: "local" },
  { name: "KV, kv sequencer", kv: true, sequencer: "kv" },
];
for (const { name, kv, sequencer } of stores) {
  Deno.test(`a message the store can't number fails alone; no offset is lost, no read hangs (${name})`, async () => {
    await using s = await startTestServer({ kv, ...(sequencer ? { sequencer } : {}) });
    const reader = await s.joined("r");
    // JSON can't hold a BigInt: numbering it (which encodes it) throws, as deep nesting did.
    const unencodable = 10n;
    // In a fresh room (numbered once a reservation is committed), then in a loaded one.
    await assert.rejects(s.hub.publishAs("fresh", unencodable, server));
    assert.equal((await s.hub.publishAs("fresh", "ok", server)).offset, 1);
    assert.equal((await s.hub.publishAs("r", "one", server)).offset, 1);
    await assert.rejects(s.hub.publishAs("r", unencodable, server));
    assert.equal((await s.hub.publishAs("r", "two", server)).offset, 2, "the failure used up no offset");
    assert.deepEqual([(await reader.next(isType("message"))).offset, (await reader.next(isType("message"))).offset], [
      1,
      2,
    ]);
    for (const room of ["fresh", "r"]) {
      const page = await within(2000, `history of ${room}`, s.hub.history(room, { limit: 10 }));
      assert.deepEqual(page.messages.map((m) => m.data), room === "r" ? ["one", "two"] : ["ok"]);
    }
    // A WebSocket publisher whose message fails is told so, with its ref, and keeps its connection.
    const publisher = await s.joined("r");
    const store = s.engine.store;
    const { append, appendNow } = store;
    const poison = <M extends { data: unknown }>(m: M): M => m.data === "poison" ? { ...m, data: unencodable } : m;
    store.append = (m, onDurable) => append.call(store, poison(m), onDurable);
    if (appendNow) store.appendNow = (m) => appendNow.call(store, poison(m));
    const errors = console.error;
    console.error = () => {};
    try {
      const error = await publisher.request({ type: "publish", room: "r", data: "poison" });
      assert.deepEqual([error.type, error.code], ["error", "internal"]);
    } finally {
      console.error = errors;
      store.append = append;
      if (appendNow) store.appendNow = appendNow;
    }
    assert.equal((await publisher.request({ type: "publish", room: "r", data: "three" })).offset, 3);
    await within(3000, "drain", s.drain());
    await Promise.all([reader.close(), publisher.close()]);
  });
}
