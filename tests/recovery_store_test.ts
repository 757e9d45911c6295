/**
 * Recovery through the store (more behind than the room keeps in memory) while publishes go on:
 * an SSE stream resuming with Last-Event-ID gets every offset after it once and in order. The
 * store's page named messages numbered during its read and not yet written, and the recovery took
 * them for delivered: `recovered: true`, with a gap just before the `joined` offset.
 */
import assert from "node:assert/strict";
import { postJson, startTestServer } from "./_server.ts";
import { quiet, until } from "./_wait.ts";

/** The offsets of the `message` events read from an SSE response until `last.offset` or `ms`. */
async function offsetsOf(response: Response, last: { offset: number }, ms: number): Promise<number[]> {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  const offsets: number[] = [];
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && (offsets.at(-1) ?? 0) < last.offset) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) => timer = setTimeout(() => resolve("late"), deadline - Date.now()));
    const chunk = await Promise.race([reader.read(), late]);
    clearTimeout(timer);
    if (chunk === "late" || chunk.done) break;
    buffer += chunk.value;
    for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (/^event: message$/m.test(block) && data) offsets.push(JSON.parse(data).offset);
    }
  }
  await reader.cancel();
  return offsets;
}

Deno.test("recovery from the store while publishes go on: every offset once, in order (SSE, Last-Event-ID)", async () => {
  await using server = await startTestServer({ kv: true, historyLimit: 5000, limits: { sendQueueBytes: 8 << 20 } });
  const room = "gap";
  const from = { id: "seed", name: "seed" };
  const { epoch } = await server.hub.publishAs(room, 0, from);
  for (let i = 0; i < 15; i++) {
    await Promise.all(Array.from({ length: 100 }, (_, j) => server.hub.publishAs(room, i * 100 + j, from)));
  }
  for (let attempt = 0; attempt < 3; attempt++) {
    // 1,400 behind: more than the 1,000 recent messages a room keeps, so the store is read.
    const since = (await server.hub.history(room, { limit: 1 })).offset - 1400;
    const posts: Promise<void>[] = [];
    const timer = setInterval(() => {
      for (let k = 0; k < 3; k++) {
        posts.push(
          postJson(server, `/api/rooms/${room}/messages`, { data: "live" }).then(async (response) => {
            assert.equal(response.status, 201);
            await response.body?.cancel();
          }),
        );
      }
    }, 0);
    await until(() => posts.length > 0, 1000, "the live publishes to start");
    const last = { offset: Infinity };
    const readings = Promise.all([0, 1, 2].map(async (n) => {
      await quiet(n * 7, "the three readings start 7 ms apart, amid the publishes");
      const response = await server.fetch(`/events?room=${room}`, {
        headers: { "last-event-id": `${epoch}:${since}` },
      });
      assert.equal(response.status, 200);
      return await offsetsOf(response, last, 3000);
    }));
    await quiet(200, "the publishes go on for 200 ms while the readings recover");
    clearInterval(timer);
    await Promise.all(posts);
    last.offset = (await server.hub.history(room, { limit: 1 })).offset;
    for (const offsets of await readings) {
      const expected = Array.from({ length: last.offset - since }, (_, i) => since + 1 + i);
      assert.deepEqual(offsets, expected, `attempt ${attempt}: every offset after ${since}, once, in order`);
    }
  }
});

Deno.test("a client that keeps up is not closed as a slow consumer after a large replay (SSE, 900 behind, live publishes)", async () => {
  await using server = await startTestServer({ kv: true });
  const room = "replay";
  const from = { id: "seed", name: "seed" };
  let epoch = "";
  for (let i = 0; i < 9; i++) {
    const batch = await Promise.all(
      Array.from({ length: 100 }, (_, j) => server.hub.publishAs(room, `m${i}-${j}`, from)),
    );
    epoch = batch[0]?.epoch ?? "";
  }
  // A subscriber keeps the room and its recent messages in memory, as in a live chat.
  const watcher = await server.joined(room);
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      const since = (await server.hub.history(room, { limit: 1 })).offset - 900;
      const posts: Promise<unknown>[] = [];
      const timer = setInterval(() => {
        posts.push(postJson(server, `/api/rooms/${room}/messages`, { data: "live" }).then((r) => r.body?.cancel()));
      }, 1);
      await until(() => posts.length > 0, 1000, "the live publishes to start");
      const response = await server.fetch(`/events?room=${room}`, {
        headers: { "last-event-id": `${epoch}:${since}` },
      });
      assert.equal(response.status, 200);
      const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      const reading = (async () => {
        for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) text += chunk.value;
      })();
      await quiet(600, "the replay and the live publishes flow, and no close may come");
      clearInterval(timer);
      await Promise.all(posts);
      await reader.cancel();
      await reading;
      assert.equal(/event: close\ndata: (.*)/.exec(text)?.[1], undefined, `attempt ${attempt}: not closed`);
      assert.ok(text.split("event: message").length - 1 >= 900, "the replay arrived");
    }
  } finally {
    watcher.close();
  }
});
