/**
 * Issue "hardening, round two", finding 8: member events reached observers out of order across
 * isolates and Redis processes (one saw `join, join, leave, leave` for one user: 6 of 8 runs with
 * two isolates, 3 of 3 with two Redis processes): each hub told the change it made, on its own path,
 * after its presence call returned. Now the presence tells them where the change takes effect (the
 * coordinator; Redis' script), so every observer hears a room's member events in one order.
 *
 * One user flaps in and out of a room from two nodes at once; two observers, one on each node,
 * must hear the same events, alternating join and leave.
 */
import assert from "node:assert/strict";
import { signToken } from "../../lib/auth.ts";
import { configWith } from "../../lib/config.ts";
import { startCluster } from "../../routes/serve/cluster.ts";
import { type Frame, isType, TestClient } from "../_client.ts";
import { startTestServer } from "../_server.ts";
import { redisTest } from "../_redis.ts";
import { quiet, until } from "../_wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const SECRET = "member-order-secret";
const ROUNDS = 15;

async function client(url: string, sub: string): Promise<TestClient<Frame>> {
  const token = await signToken({ sub, name: sub }, SECRET);
  const c = await TestClient.json(`${url.replace("http", "ws")}/ws?token=${token}`);
  c.welcome = await c.next(isType("welcome"));
  return c;
}

/** Clients of `sub` until one lands on each of `nodes` (the kernel spreads them over isolates). */
async function onEachNode(urls: string[], sub: string, nodes: number): Promise<TestClient<Frame>[]> {
  const by = new Map<string, TestClient<Frame>>();
  const spare: TestClient<Frame>[] = [];
  for (let i = 0; i < 60 && by.size < nodes; i++) {
    const c = await client(urls[i % urls.length] as string, sub);
    const node = c.welcome?.node as string;
    if (by.has(node)) spare.push(c);
    else by.set(node, c);
  }
  await Promise.all(spare.map((c) => c.close()));
  assert.equal(by.size, nodes, `clients of ${sub} on ${nodes} nodes`);
  return [...by.values()];
}

/** What an observer heard about `user`: "join", "leave", … */
function heard(observer: TestClient<Frame>, user: string): string[] {
  return observer.unread.filter((f) => f.type === "member" && f.user.id === user).map((f) => f.event as string);
}

async function flapAndCompare(urls: string[], nodes: number): Promise<void> {
  const observers = await onEachNode(urls, "watcher", nodes);
  const other = await client(urls[0] as string, "stayer"); // the room is never empty: events are due
  for (const c of [...observers, other]) assert.equal((await c.request({ type: "join", room: "m" })).type, "joined");
  const flappers = await onEachNode(urls, "flap", nodes);
  // Each of flap's connections joins and leaves ROUNDS times, both at once.
  await Promise.all(flappers.map(async (c) => {
    for (let i = 0; i < ROUNDS; i++) {
      assert.equal((await c.request({ type: "join", room: "m" })).type, "joined");
      assert.equal((await c.request({ type: "leave", room: "m" })).type, "left");
    }
  }));
  // Quiet: flap is out; the last leave reaches everyone.
  await until(
    () => observers.every((o) => heard(o, "flap").length > 0 && heard(o, "flap").at(-1) === "leave"),
    5000,
    () => `flap's last leave at every observer (heard ${observers.map((o) => heard(o, "flap")).join(" | ")})`,
  );
  await quiet(200, "nothing more about flap comes late");
  const sequences = observers.map((o) => heard(o, "flap"));
  for (const sequence of sequences) {
    assert.ok(sequence.length >= 2, `heard ${sequence}`);
    sequence.forEach((event, i) => assert.equal(event, i % 2 === 0 ? "join" : "leave", `event ${i} of ${sequence}`));
  }
  assert.deepEqual(sequences[1], sequences[0], "both observers heard one order");
  await Promise.all([...observers, ...flappers, other].map((c) => c.close()));
}

Deno.test({
  name: "member events: one order for every observer, across two isolates",
  ...opts,
  async fn() {
    const config = configWith({
      port: 0,
      hostname: "127.0.0.1",
      kvPath: ":memory:",
      workers: 2,
      authSecret: SECRET,
      connectBurst: 0,
    });
    await using cluster = await startCluster({ config, memory: true });
    await flapAndCompare([cluster.url], 2);
  },
});

redisTest("member events: one order for every observer, across two processes on Redis", async (redis) => {
  const options = { kv: true, redisUrl: redis.url, authSecret: SECRET };
  await using one = await startTestServer(options);
  await using two = await startTestServer(options);
  await flapAndCompare([one.url, two.url], 2);
});
