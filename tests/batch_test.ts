/** Batched mode (`/ws?batch=1`): several frames per WebSocket message, one per line, both ways. */
import assert from "node:assert/strict";
import { RoomcastClient } from "../static/roomcast.js";
import { TestClient } from "./_client.ts";
import { postJson, startTestServer } from "./_server.ts";

Deno.test("batched mode coalesces a burst into newline-delimited messages, in order", async () => {
  await using server = await startTestServer({ kv: true, limits: { publishBurst: 1000, userPublishBurst: 1000 } });
  const reader = await TestClient.raw(server.ws("/ws?batch=1&name=Batch"));
  reader.send(JSON.stringify({ type: "join", room: "b", ref: 1 }));
  await reader.next((text) => text.includes('"type":"joined"'));
  const publisher = await server.joined("b");
  for (let i = 1; i <= 200; i++) publisher.send({ type: "publish", room: "b", data: i, ref: i });
  await publisher.next((f) => f.ref === 200, 5000);

  const frames: { type: string; offset?: number }[] = [];
  let messages = 0;
  while (frames.filter((f) => f.type === "message").length < 200) {
    const text = await reader.next();
    messages++;
    for (const line of text.split("\n")) frames.push(JSON.parse(line));
  }
  const offsets = frames.filter((f) => f.type === "message").map((f) => f.offset);
  assert.deepEqual(offsets, Array.from({ length: 200 }, (_, i) => i + 1));
  assert.ok(messages < 200, `200 frames came in ${messages} WebSocket messages`);
  await Promise.all([reader.close(), publisher.close()]);
});

Deno.test("batched mode accepts several client frames in one message", async () => {
  await using server = await startTestServer();
  const c = await TestClient.raw(server.ws("/ws?batch=1"));
  c.send('{"type":"ping","ref":1}\n{"type":"ping","ref":2}\n{"type":"nope","ref":3}');
  const seen: Record<string, unknown>[] = [];
  while (seen.length < 4) for (const line of (await c.next()).split("\n")) seen.push(JSON.parse(line));
  assert.deepEqual(seen.map((f) => `${f.type}:${f.ref ?? ""}`), ["welcome:", "pong:1", "pong:2", "error:3"]);
  await c.close();
});

Deno.test("roomcast.js in batched mode", async () => {
  await using server = await startTestServer({ kv: true });
  const client = new RoomcastClient({ url: server.ws("/ws"), name: "Js", batch: true });
  const got: number[] = [];
  const all = new Promise<void>((resolve) =>
    client.addEventListener("message", (e) => {
      got.push((e as CustomEvent).detail.offset);
      if (got.length === 20) resolve();
    })
  );
  client.connect();
  await client.join("js");
  await Promise.all(
    Array.from(
      { length: 20 },
      (_, i) => postJson(server, "/api/rooms/js/messages", { data: i }).then((r) => r.body?.cancel()),
    ),
  );
  await all;
  assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => i + 1));
  client.close();
});

Deno.test("a batched message of exactly 100 frames is accepted, each line ending with a newline", async () => {
  await using server = await startTestServer();
  const c = await TestClient.raw(server.ws("/ws?batch=1"));
  try {
    await c.next((text) => text.includes('"welcome"'));
    let text = "";
    for (let i = 1; i <= 100; i++) text += JSON.stringify({ type: "ping", ref: i }) + "\n";
    c.send(text);
    const pongs = new Set<number>();
    while (pongs.size < 100) {
      for (const line of (await c.next(() => true, 3000)).split("\n")) {
        const frame = JSON.parse(line);
        assert.notEqual(frame.type, "error", line);
        if (frame.type === "pong") pongs.add(frame.ref);
      }
    }
    assert.equal(pongs.size, 100);
  } finally {
    await c.close();
  }
});
