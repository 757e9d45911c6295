/**
 * Issue "hardening", item 4: one batched message of 500,000 bad one-character lines used to be
 * decoded and answered line by line (an Error with a stack trace each), freezing the event loop
 * for about 10 s, and lines went on being handled after the connection was closed. Now a batched
 * message carries at most 100 frames, a connection that keeps sending bad frames is closed, and
 * bad frames cost no stack trace. Item 6: binary frames close the connection (1003).
 */
import assert from "node:assert/strict";
import { isType, TestClient } from "../_client.ts";
import { startTestServer } from "../_server.ts";

/** How long a bystander's ping takes to be answered while `attack` runs. */
async function pongDelay(bystander: TestClient, attack: () => void): Promise<number> {
  attack();
  const started = performance.now();
  await bystander.request({ type: "ping" }, 10_000);
  return performance.now() - started;
}

Deno.test("a 1 MB batched message of 500,000 bad lines is refused whole at once; others are not held up", async () => {
  await using server = await startTestServer();
  const bystander = await server.client();
  const attacker = await TestClient.raw(server.ws("/ws?batch=1"));
  const delay = await pongDelay(bystander, () => attacker.send("x\n".repeat(500_000)));
  const closed = await attacker.closed;
  assert.equal(closed.code, 1008);
  assert.match(closed.reason, /Too many frames/);
  const error = JSON.parse((await attacker.next((text) => text.includes('"error"'))).split("\n")[0] as string);
  assert.equal(error.code, "too_large");
  assert.ok(delay < 1000, `the bystander's ping was answered in ${Math.round(delay)} ms`);
  assert.equal(server.metrics.errors.get("bad_request"), 0, "not one of the lines was decoded");
  await bystander.close();
});

Deno.test("a batched message stops at the frame that closes the connection: later lines do nothing", async () => {
  await using server = await startTestServer();
  const attacker = await TestClient.raw(server.ws("/ws?batch=1"));
  const lines = ['{"type":"join","room":"b"}', ...Array(60).fill("nope"), '{"type":"publish","room":"b","data":1}'];
  attacker.send(lines.join("\n"));
  assert.equal((await attacker.closed).code, 1008);
  assert.equal(server.metrics.errors.get("bad_request"), 51, "50 bad frames allowed, the 51st closes, then nothing");
  const page = await server.hub.history("b", { limit: 10 });
  assert.deepEqual(page.messages, [], "the publish after the closing frame was not handled");
});

Deno.test("a connection that keeps sending bad frames is closed with 1008; one bad frame now and then is fine", async () => {
  await using server = await startTestServer();
  const bad = await server.client();
  const ok = await server.client();
  for (let i = 0; i < 10; i++) ok.send("{oops");
  // The 51st within 10 s closes (more sent after it would reach a closed socket: a reset, not a close).
  for (let i = 0; i < 51; i++) bad.send("{oops");
  const closed = await bad.closed;
  assert.deepEqual([closed.code, closed.reason], [1008, "Too many bad frames"]);
  assert.equal((await ok.request({ type: "ping" })).type, "pong");
  assert.equal(ok.unread.filter(isType("error")).length, 10, "each bad frame got its error");
  await ok.close();
});

for (const path of ["/ws", "/raw/bin"]) {
  Deno.test(`a binary frame on ${path} closes the connection with 1003, after saying why`, async () => {
    await using server = await startTestServer();
    const c = await TestClient.raw(server.ws(path));
    c.socket.send(new Uint8Array(1 << 20));
    const closed = await c.closed;
    assert.equal(closed.code, 1003);
    const error = JSON.parse(c.unread.find((text) => text.includes('"error"')) as string);
    assert.deepEqual([error.code, error.message], ["bad_request", "Binary frames are not supported: send text"]);
  });
}

Deno.test("a malformed WebSocket handshake is a 400, not an internal error", async () => {
  await using server = await startTestServer();
  const logged: unknown[] = [];
  const error = console.error;
  console.error = (...args: unknown[]) => void logged.push(args);
  try {
    for (const headers of [{ upgrade: "websocket" }, { upgrade: "websocket", connection: "upgrade" }]) {
      for (const path of ["/ws", "/raw/r", "/"]) {
        const response = await server.fetch(path, { headers });
        assert.equal(response.status, 400, `${path} ${JSON.stringify(headers)}`);
        assert.match((await response.json()).error.message, /Not a valid WebSocket upgrade/);
      }
    }
  } finally {
    console.error = error;
  }
  assert.deepEqual(logged, [], "nothing logged: it is the client's mistake");
  assert.equal(server.admission.open, 0, "and no connection slot kept");
});
