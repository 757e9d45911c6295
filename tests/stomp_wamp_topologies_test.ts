/**
 * STOMP and WAMP clients across topologies: two processes on Redis, two Deploy-mode instances on
 * one KV, two Workers. A STOMP SEND on one node reaches a WAMP subscriber on the other; a WAMP
 * procedure registered on one node is called from the other, is registered once across both, and
 * a callee that goes fails its pending calls there.
 */
import assert from "node:assert/strict";
import { redisTest } from "./_redis.ts";
import { type TestServer, twoServers, twoWorkers } from "./_server.ts";
import { receiptOf, stompClient } from "./_stomp.ts";
import { autobahnSession, closeSession, type Session } from "./_wamp.ts";
import { quiet, until } from "./_wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function acrossNodes(one: TestServer, two: TestServer): Promise<void> {
  const stomp = await stompClient(one);
  const callee: Session = await autobahnSession(one);
  const caller: Session = await autobahnSession(two);
  try {
    // STOMP on one node, WAMP on the other, one room.
    const events: unknown[][] = [];
    await caller.subscribe("mixed", (args: unknown[]) => events.push(args));
    const sent = receiptOf(stomp, "s1");
    stomp.publish({ destination: "/topic/mixed", body: "from stomp", headers: { receipt: "s1" } });
    await sent;
    await until(() => events.length === 1, 5000, "the WAMP event on the other node");
    assert.deepEqual(events[0], ["from stomp"]);

    // RPC across the nodes, and one registration for both.
    await callee.register("math.add", (args: number[]) => (args[0] ?? 0) + (args[1] ?? 0));
    assert.equal(await caller.call("math.add", [20, 22]), 42);
    await assert.rejects(caller.register("math.add", () => 0), (e: { error: string }) => {
      assert.equal(e.error, "wamp.error.procedure_already_exists");
      return true;
    });
    // A callee that goes fails the call waiting on the other node, and its procedure is free again.
    await callee.register("math.never", () => new Promise(() => {}));
    const pending = caller.call("math.never", []);
    await quiet(200, "the invocation crosses to the callee");
    closeSession(callee);
    await assert.rejects(pending, (e: { error: string }) => {
      assert.equal(e.error, "wamp.error.canceled");
      return true;
    });
    await until(
      async () => {
        try {
          await caller.register("math.add", () => 1);
          return true;
        } catch {
          return false;
        }
      },
      5000,
      "math.add free once its callee went",
    );
  } finally {
    await stomp.deactivate();
    closeSession(callee);
    closeSession(caller);
  }
}

redisTest("STOMP and WAMP across two processes on one Redis", async (redis) => {
  await using pair = await twoServers({ redisUrl: redis.url });
  await acrossNodes(...pair.servers);
});

Deno.test({ name: "STOMP and WAMP across two Deploy-mode instances on one KV", ...opts }, async () => {
  await using pair = await twoServers("kv");
  await acrossNodes(...pair.servers);
});

Deno.test({ name: "WAMP RPC across the two Workers of one process", ...opts }, async () => {
  const cluster = await twoWorkers();
  const server = cluster as unknown as TestServer;
  server.ws = (path = "/ws") => cluster.url.replace(/^http/, "ws") + path;
  const sessions: Session[] = [];
  try {
    // Sessions land on either isolate: callers of every procedure from every session.
    for (let i = 0; i < 6; i++) sessions.push(await autobahnSession(server));
    for (const [i, s] of sessions.entries()) await s.register(`p.${i}`, () => i);
    for (const s of sessions) {
      for (let i = 0; i < sessions.length; i++) assert.equal(await s.call(`p.${i}`, []), i);
    }
  } finally {
    for (const s of sessions) closeSession(s);
    await cluster.drain();
  }
});
