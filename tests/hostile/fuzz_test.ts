/**
 * Issue "hardening": fuzzing the frame decoder and the HTTP bodies with random and structure-aware
 * mutations of valid frames (tests/_fuzz.ts; a fixed seed here, `deno task fuzz` for a longer run
 * with a fresh one). No input crashes anything, every bad input is answered with a contract error
 * (never `internal`), and nothing else changes: a bystander sees nothing, the server still serves.
 */
import assert from "node:assert/strict";
import { decodeClientFrame } from "../../lib/codec.ts";
import { FrameError } from "../../lib/protocol.ts";
import { type Frame, TestClient } from "../_client.ts";
import { FUZZ_SCALE, FUZZ_SEED, fuzzText, Random, VALID_BODIES, VALID_FRAMES } from "../_fuzz.ts";
import { startTestServer } from "../_server.ts";

const CLIENT_TYPES = new Set(["join", "leave", "publish", "direct", "signal", "history", "presence", "ping", "pong"]);
const SERVER_TYPES = new Set([
  "welcome",
  "joined",
  "left",
  "ack",
  "message",
  "direct",
  "signal",
  "history",
  "presence",
  "member",
  "broadcast",
  "ping",
  "pong",
  "error",
]);
/** What a client's mistake may be answered with; `internal` would be a bug. */
const CLIENT_ERRORS = new Set(["bad_request", "not_joined", "forbidden", "too_large", "rate_limited"]);

console.log(`fuzz seed ${FUZZ_SEED}, scale ${FUZZ_SCALE} (FUZZ_SEED=${FUZZ_SEED} replays it)`);

Deno.test(`fuzz: the frame decoder answers every input with a frame or a contract error (seed ${FUZZ_SEED})`, () => {
  const random = new Random(FUZZ_SEED);
  let frames = 0;
  for (let i = 0; i < 20_000 * FUZZ_SCALE; i++) {
    const text = fuzzText(random, VALID_FRAMES);
    const decoded = decodeClientFrame(text);
    if (decoded instanceof FrameError) {
      assert.ok(CLIENT_ERRORS.has(decoded.code), `${decoded.code} for ${text.slice(0, 200)}`);
      assert.equal(typeof decoded.message, "string");
      continue;
    }
    frames++;
    assert.ok(CLIENT_TYPES.has(decoded.type), text.slice(0, 200));
    // Whatever was accepted can be encoded again: nothing downstream overflows on it.
    JSON.stringify(decoded);
  }
  assert.ok(frames > 1000, `${frames} valid frames among the mutations`);
});

Deno.test({
  name: `fuzz: /ws and /ws?batch=1 take mutated frames without a crash or an internal error (seed ${FUZZ_SEED})`,
  async fn() {
    // The memory store: a history request on the KV store waits for its room's messages to be
    // filed, which would make this test wait, not work (the stores have tests of their own).
    await using server = await startTestServer({ connectBurst: 0, maxConnectionsPerIp: 0 });
    const calm = await server.joined("calm");
    const random = new Random(FUZZ_SEED + 1);
    const seen = new Map<string, number>();
    let closes = 0;
    for (const path of ["/ws", "/ws?batch=1"]) {
      const parse = (text: string): Frame[] => text.split("\n").map((line) => JSON.parse(line));
      let c = await TestClient.raw(server.ws(path));
      for (let i = 0; i < 800 * FUZZ_SCALE; i++) {
        const lines = path.includes("batch") ? 1 + random.int(4) : 1;
        const text = Array.from({ length: lines }, () => fuzzText(random, VALID_FRAMES)).join("\n");
        c.send(text);
        c.send(JSON.stringify({ type: "ping", ref: `sync-${i}` }));
        const synced = await c.next((t) => t.includes(`"sync-${i}"`), 5000).catch(() => undefined);
        for (const frame of c.unread.splice(0).flatMap(parse)) {
          assert.ok(SERVER_TYPES.has(frame.type), JSON.stringify(frame).slice(0, 200));
          if (frame.type === "error") {
            assert.ok(CLIENT_ERRORS.has(frame.code), `${frame.code}: ${frame.message} after ${text.slice(0, 200)}`);
            seen.set(frame.code, (seen.get(frame.code) ?? 0) + 1);
          }
        }
        if (!synced) {
          // Closed by the server for its behaviour (bad frames, flood, too large): a policy close.
          const closed = await c.closed;
          assert.ok([1003, 1008, 1009, 4429, 0].includes(closed.code), `closed with ${closed.code}`);
          closes++;
          c = await TestClient.raw(server.ws(path));
        }
      }
      await c.close();
    }
    assert.ok((seen.get("bad_request") ?? 0) > 100, `errors seen: ${JSON.stringify([...seen])}`);
    assert.ok((seen.get("too_large") ?? 0) > 5 && (seen.get("not_joined") ?? 0) > 5, JSON.stringify([...seen]));
    assert.deepEqual(
      calm.unread.filter((f) => f.type !== "ping"),
      [],
      "a bystander in another room got nothing",
    );
    assert.equal((await server.hub.history("calm", { limit: 10 })).messages.length, 0);
    assert.equal(server.metrics.errors.get("internal"), 0, "no input was an internal error");
    assert.equal((await server.fetch("/healthz")).status, 200);
    const after = await server.joined("after");
    assert.equal((await after.request({ type: "publish", room: "after", data: "still fine" })).type, "ack");
    console.log(`  ${closes} connections closed for their behaviour; errors ${JSON.stringify([...seen])}`);
    await Promise.all([calm.close(), after.close()]);
  },
});

Deno.test(`fuzz: HTTP bodies are answered with 2xx or a contract error, never 500 (seed ${FUZZ_SEED})`, async () => {
  await using server = await startTestServer({ kv: true, authSecret: "fuzz-secret" });
  const random = new Random(FUZZ_SEED + 2);
  const statuses = new Map<number, number>();
  const paths = ["/api/rooms/fuzz/messages", "/api/broadcast", "/api/users/u-1/messages", "/api/tokens"];
  for (let i = 0; i < 600 * FUZZ_SCALE; i++) {
    const path = random.pick(paths);
    const type = random.pick(["application/json", "application/json", "text/plain", "application/x+json", ""]);
    const response = await server.fetch(path, {
      method: "POST",
      headers: type ? { "content-type": type } : {},
      body: fuzzText(random, VALID_BODIES),
    });
    statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
    const body = await response.json();
    assert.ok(response.status < 500, `${response.status} ${JSON.stringify(body)}`);
    if (response.status >= 400) {
      assert.equal(typeof body.error?.code, "string");
      assert.equal(typeof body.error?.message, "string");
    }
  }
  assert.ok((statuses.get(400) ?? 0) > 50 && (statuses.get(415) ?? 0) > 20, JSON.stringify([...statuses]));
  assert.ok([...statuses.keys()].some((s) => s < 300), "some mutations were valid");
  assert.equal((await server.fetch("/healthz")).status, 200);
});
