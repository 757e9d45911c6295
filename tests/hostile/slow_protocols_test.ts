/**
 * The send-queue cap holds for STOMP and WAMP subscribers as for `/ws`: one that stops reading is
 * closed (4008) before its queue grows past the cap, and the others get every message.
 */
import assert from "node:assert/strict";
import { isType } from "../_client.ts";
import { RawWsClient } from "../_raw_ws.ts";
import { postJson, startTestServer, type TestServer } from "../_server.ts";
import { until } from "../_wait.ts";

async function stalls(server: TestServer, reader: RawWsClient, room: string): Promise<void> {
  const watcher = await server.joined(room);
  await until(async () => (await server.hub.presence(room)).length === 2, 3000, "the stalling subscriber in the room");
  const chunk = "y".repeat(60_000);
  let sent = 0;
  for (; sent < 600 && (await server.hub.presence(room)).length === 2; sent++) {
    const response = await postJson(server, `/api/rooms/${room}/messages`, { data: chunk });
    assert.equal(response.status, 201);
    await response.body?.cancel();
  }
  assert.ok(sent < 600, "the stalled subscriber was dropped before 36 MB were queued for it");
  assert.equal(server.metrics.closes.get("slow_consumer"), 1);
  for (let i = 1; i <= sent; i++) assert.equal((await watcher.next(isType("message"))).offset, i);
  await watcher.close();
  reader.close();
}

Deno.test({
  name: "a STOMP subscriber that stops reading is closed with 4008",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  await using server = await startTestServer({ limits: { sendQueueBytes: 256 * 1024 } });
  const reader = await RawWsClient.connect(server.ws("/stomp"));
  await reader.send("CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\0");
  assert.ok(await reader.readUntil(() => reader.texts.some((t) => t.startsWith("CONNECTED"))), "CONNECTED");
  await reader.send("SUBSCRIBE\nid:1\ndestination:/topic/firehose\nreceipt:in\n\n\0");
  assert.ok(await reader.readUntil(() => reader.texts.some((t) => t.startsWith("RECEIPT"))), "subscribed");
  await stalls(server, reader, "firehose");
});

Deno.test({
  name: "a WAMP subscriber that stops reading is closed with 4008",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  await using server = await startTestServer({ limits: { sendQueueBytes: 256 * 1024 } });
  const reader = await RawWsClient.connect(server.ws("/wamp"));
  await reader.send(JSON.stringify([1, "realm1", {}]));
  assert.ok(await reader.readUntil(() => reader.texts.some((t) => t.startsWith("[2,"))), "WELCOME");
  await reader.send(JSON.stringify([32, 1, {}, "firehose"]));
  assert.ok(await reader.readUntil(() => reader.texts.some((t) => t.startsWith("[33,"))), "SUBSCRIBED");
  await stalls(server, reader, "firehose");
});
