/**
 * WAMP messages from a hostile client: not arrays, wrong type codes and shapes, a message before
 * HELLO, 10,000 registrations, calls to nobody and floods of calls, a JSON message too deep. Each
 * gets an ABORT and the close, or a WAMP ERROR, never a crash, a held loop or an effect on others.
 */
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "../_server.ts";
import { stallProbe } from "../_stall.ts";
import { RawWamp } from "../_wamp.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function welcomed(server: TestServer): Promise<RawWamp> {
  const raw = new RawWamp(server);
  await raw.hello();
  return raw;
}

Deno.test(
  { name: "WAMP hostile: malformed messages get ABORT and the close; a bystander is untouched", ...opts },
  async (t) => {
    await using server = await startTestServer();
    const bystander = await welcomed(server);
    bystander.send([32, 1, {}, "calm"]);
    await bystander.next(33);
    const cases: [string, unknown, boolean][] = [
      ["not JSON", "{nope", true],
      ["not an array", '{"type":1}', true],
      ["a type code that is a string", '["32",1,{},"calm"]', true],
      ["an unknown type code", [999, 1], true],
      ["a SUBSCRIBE without options", [32, 1, "calm"], true],
      ["a PUBLISH whose args are not a list", [16, 1, {}, "calm", "nope"], true],
      ["a request id that is negative", [32, -1, {}, "calm"], true],
      ["an ERROR for something else than an INVOCATION", [8, 48, 1, {}, "x"], true],
      ["a number JSON can't hold", '[16,1,{},"calm",[1e400]]', true],
      ["JSON 200 levels deep", `[16,1,{},"calm",${"[".repeat(200)}${"]".repeat(200)}]`, true],
    ];
    for (const [what, message, welcome] of cases) {
      await t.step(what, async () => {
        const raw = welcome ? await welcomed(server) : new RawWamp(server);
        raw.send(message);
        assert.equal((await raw.next(3))[2], "wamp.error.protocol_violation");
        await raw.closed;
      });
    }
    await t.step("anything before HELLO", async () => {
      const raw = new RawWamp(server);
      await raw.opened;
      raw.send([32, 1, {}, "calm"]);
      assert.equal((await raw.next(3))[2], "wamp.error.protocol_violation");
      await raw.closed;
    });
    const publisher = await welcomed(server);
    publisher.send([16, 1, {}, "calm", ["still here"]]);
    assert.deepEqual((await bystander.next(36))[4], ["still here"]);
  },
);

Deno.test(
  { name: "WAMP hostile: 10,000 registrations, calls to nobody, floods: bounded, loop never held", ...opts },
  async (t) => {
    await using server = await startTestServer();
    using probe = stallProbe();

    await t.step("10,000 REGISTERs from one client: 100 registered, the rest refused", async () => {
      const raw = await welcomed(server);
      for (let i = 0; i < 10_000; i++) raw.send([64, i + 1, {}, `proc.${i}`]);
      await raw.next(8, (m) => m[2] === 10_000, 10_000);
      const registered = raw.received.filter((m) => m[0] === 65).length;
      const refused = raw.received.filter((m) => m[0] === 8 && m[1] === 64).length;
      assert.equal(registered, 100);
      assert.equal(refused + 1, 9_900);
      raw.socket.close();
      await raw.closed;
    });

    await t.step("calls to nobody are answered no_such_procedure, each", async () => {
      const raw = await welcomed(server);
      for (let i = 0; i < 20; i++) raw.send([48, i + 1, {}, "nobody.home", []]);
      const errors = await Promise.all(Array.from({ length: 20 }, (_, i) => raw.next(8, (m) => m[2] === i + 1)));
      assert.ok(errors.every((m) => m[4] === "wamp.error.no_such_procedure"));
      raw.socket.close();
    });

    await t.step("3,000 PUBLISHes at once: the rate limit answers, the flooder is closed", async () => {
      const raw = await welcomed(server);
      raw.send([32, 1, {}, "flood"]);
      await raw.next(33);
      for (let i = 0; i < 3000; i++) raw.send([16, i + 2, { acknowledge: true }, "flood", [i]]);
      const closed = await raw.closed;
      // Closed as a flood (4429; a client still sending when the close comes may see a reset).
      assert.equal(server.metrics.closes.get("flood"), 1);
      if (closed.code !== 0 && closed.code !== 1006) assert.equal(closed.code, 4429);
      const stored = (await server.hub.history("flood", { limit: 100 })).messages.length;
      assert.ok(stored > 0 && stored <= server.config.limits.publishBurst, `${stored} stored`);
    });

    assert.ok(probe.stop() < 200, `the loop was held ${Math.round(probe.worst)} ms`);
  },
);
