import assert from "node:assert/strict";
import { jsonEncoder, Outbound, QUEUED_MESSAGE_OVERHEAD, QueueEstimate, rawEncoder } from "./peer.ts";

Deno.test("queue estimate: unsent bytes plus per-message overhead at the average message size", () => {
  const estimate = new QueueEstimate();
  assert.equal(estimate.bytes(0), 0);
  assert.equal(estimate.bytes(500), 500, "nothing sent yet: bytes only");
  for (let i = 0; i < 10; i++) estimate.sent(250);
  assert.equal(estimate.bytes(0), 0);
  assert.equal(estimate.bytes(2500), 2500 + 10 * QUEUED_MESSAGE_OVERHEAD, "ten 250-byte messages");
  const big = new QueueEstimate();
  big.sent(60_000);
  assert.equal(big.bytes(60_000), 60_000 + QUEUED_MESSAGE_OVERHEAD, "one large message: little overhead");
});

Deno.test("outbound encodes once per encoder", () => {
  const frame = {
    type: "message" as const,
    room: "r",
    id: "i",
    epoch: "e",
    offset: 1,
    from: { id: "u", name: "U" },
    data: { a: 1 },
    ts: 0,
  };
  const out = new Outbound(frame);
  const json = out.text(jsonEncoder);
  assert.equal(json, JSON.stringify(frame));
  assert.equal(out.text(jsonEncoder), json);
  assert.equal(out.text(rawEncoder), '{"a":1}');
  assert.equal(new Outbound({ type: "ping" }).text(rawEncoder), undefined, "raw peers get no pings");
});
