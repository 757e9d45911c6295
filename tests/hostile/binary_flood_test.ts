/**
 * Issue "hardening, round two", finding 6: binary (and oversized) WebSocket messages were refused
 * with 1003 (1009), but Deno reads each whole first (up to 64 MiB): 40 × 60 MB from one address,
 * inside its connect rate, peaked at 4.36 GB RSS. A message can't be refused before Deno has read
 * it; what roomcast bounds is how often one address gets to do it: after a few, it may not connect
 * for a minute (lib/admission.ts), on /ws, raw rooms and Socket.IO. Scaled down: 8 × 4 MB.
 */
import assert from "node:assert/strict";
import { TestClient } from "../_client.ts";
import { startTestServer } from "../_server.ts";
import { stallProbe } from "../_stall.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name: "an address that sends large binary messages is closed each time, then shut out; others are served",
  ...opts,
  async fn() {
    await using server = await startTestServer({ maxConnectionsPerIp: 0 });
    const bystander = await server.client();
    const attackers = await Promise.all(Array.from({ length: 8 }, () => TestClient.json(server.ws())));
    const message = new Uint8Array(4 * 1024 * 1024).fill(1);
    using probe = stallProbe();
    for (const attacker of attackers) attacker.socket.send(message);
    const closes = await Promise.all(attackers.map((a) => a.closed));
    assert.deepEqual(closes.map((c) => c.code), Array(8).fill(1003));
    const started = performance.now();
    assert.equal((await bystander.request({ type: "ping" })).type, "pong");
    assert.ok(performance.now() - started < 1000, "the bystander was answered at once");
    assert.ok(probe.stop() < 300, `the event loop was held ${Math.round(probe.worst)} ms`);
    // The address has offended more than twice within a minute: its next connection is refused.
    const refused = await TestClient.json(server.ws());
    const error = await refused.next((f) => f.type === "error");
    assert.equal(error.code, "rate_limited");
    assert.equal((await refused.closed).code, 1013);
    const sio = await server.fetch("/socket.io/?EIO=4&transport=polling");
    assert.equal(sio.status, 429, "on every transport");
    await sio.body?.cancel();
    await bystander.close();
  },
});

Deno.test({
  name: "socket.io: messages over the payload cap count against the address too",
  ...opts,
  async fn() {
    await using server = await startTestServer({ maxConnectionsPerIp: 0 });
    for (let i = 0; i < 3; i++) {
      const ws = new WebSocket(`${server.url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`);
      const closed = new Promise<CloseEvent>((resolve) => ws.onclose = resolve);
      await new Promise((resolve) => ws.onopen = resolve);
      ws.send(new Uint8Array(2_000_000));
      await closed;
    }
    const response = await server.fetch("/socket.io/?EIO=4&transport=polling");
    assert.equal(response.status, 429);
    await response.body?.cancel();
  },
});
