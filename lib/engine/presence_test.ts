/** The presence contract for every presence. */
import { presenceContract } from "../../tests/presence_contract.ts";
import { RedisLink } from "./redis/link.ts";
import { RedisPresence } from "./redis/presence.ts";
import { openLinks, redisTest, startRedis } from "../../tests/_redis.ts";
import { slowKv } from "../../tests/_faulty_kv.ts";
import assert from "node:assert/strict";
import { MemoryPresence } from "./memory/presence.ts";
import { KvPresence } from "./kv/presence.ts";
import { NodePresence, RemotePresence } from "./cluster/presence.ts";
import { DirectCaller } from "./cluster/rpc.ts";
import type { MemberEvent } from "./presence.ts";

presenceContract("MemoryPresence", () => {
  const presence = new MemoryPresence();
  return Promise.resolve({ nodes: [presence], cleanup: () => presence.close() });
}, { nodes: false });

/** The isolates of one process: each a `RemotePresence` calling the coordinator's `NodePresence`
 * (directly, as its own isolate does; a Worker's calls cross `postMessage` the same way). */
presenceContract("RemotePresence (isolates and their coordinator's NodePresence)", (n) => {
  const shared = new NodePresence(60_000);
  const callers = Array.from({ length: n }, () => {
    const caller = new DirectCaller();
    caller.serve(shared.handlers());
    return caller;
  });
  const nodes = callers.map((caller, i) => new RemotePresence(caller, `n${i}`, 20));
  return Promise.resolve({
    nodes,
    // What the coordinator does when a Worker dies or its lease lapses.
    expire: (i) => Promise.resolve(shared.expire(`n${i}`)),
    async cleanup() {
      await Promise.all(nodes.map((p) => p.close()));
      for (const caller of callers) caller.close();
    },
  });
}, { nodes: true });

presenceContract("KvPresence (nodes sharing one KV)", async (n) => {
  const kv = await Deno.openKv(":memory:");
  const nodes = Array.from({ length: n }, (_, i) => new KvPresence({ kv, node: `n${i}`, leaseMs: 300 }));
  return {
    nodes,
    async expire(i) {
      await nodes[i]?.close(); // stops renewing, as a killed instance would
      await new Promise((resolve) => setTimeout(resolve, 700));
    },
    async cleanup() {
      await Promise.all(nodes.map((p) => p.close()));
      kv.close();
    },
  };
}, { nodes: true });

presenceContract("RedisPresence (processes on one Redis)", async (n) => {
  const redis = await startRedis();
  const links = await openLinks(redis, n);
  const nodes = links.map((link, i) => new RedisPresence({ link, node: `n${i}`, leaseMs: 300 }));
  return {
    nodes,
    async expire(i) {
      await nodes[i]?.close(); // stops renewing, as a killed process would
      await new Promise((resolve) => setTimeout(resolve, 900));
    },
    async cleanup() {
      await Promise.all(nodes.map((p) => p.close()));
      await Promise.all(links.map((link) => link.close()));
      await redis[Symbol.asyncDispose]();
    },
  };
}, { nodes: true });

redisTest(
  "RedisPresence: a room of 10,000 members is counted without listing, and listed only up to max",
  async (redis) => {
    const link = new RedisLink({ url: redis.url });
    await link.open();
    const presence = new RedisPresence({ link, node: "n", leaseMs: 60_000 });
    try {
      const users = Array.from({ length: 10_000 }, (_, i) => ({ id: `u${String(i).padStart(5, "0")}`, name: `U${i}` }));
      for (let i = 0; i < users.length; i += 1000) {
        await Promise.all(users.slice(i, i + 1000).map((user) => presence.join("big", user, `c-${user.id}`)));
      }
      const last = await presence.join("big", { id: "late", name: "Late" }, "c-late");
      assert.deepEqual(last, { changed: true, members: 10_001 });
      assert.deepEqual(await presence.rooms(), [{ room: "big", members: 10_001, connections: 10_001 }]);
      const listed = await presence.members("big", 100);
      assert.equal(listed.length, 100);
      assert.ok(listed.every((m) => m.connections === 1));
    } finally {
      await presence.close();
      await link.close();
    }
  },
);

Deno.test("KvPresence: a dead node's members leave, told once by a live node of their rooms; a user also on a live node stays", async () => {
  const kv = await Deno.openKv(":memory:");
  const told: [string, string, string][] = [];
  const node = (name: string) =>
    new KvPresence({
      kv,
      node: name,
      leaseMs: 300,
      telling: { max: 100, tell: (event) => told.push([event.room, event.user.id, event.event]) },
    });
  const [live1, live2, dead] = [node("live1"), node("live2"), node("dead")];
  const user = (id: string) => ({ id, name: id.toUpperCase() });
  try {
    await live1.join("r", user("ann"), "c1");
    await live2.join("r", user("bob"), "c2");
    await dead.join("r", user("carl"), "c3");
    await dead.join("r", user("bob"), "c4"); // bob is on a live node too
    await dead.join("elsewhere", user("dan"), "c5"); // no live node holds connections there
    await dead.close(); // stops renewing, as a killed instance would
    const deadline = Date.now() + 3000;
    const leaves = () => told.filter(([, , event]) => event === "leave");
    while (leaves().length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    await new Promise((resolve) => setTimeout(resolve, 400)); // both live nodes swept again meanwhile
    assert.deepEqual(
      leaves(),
      [["r", "carl", "leave"]],
      "carl's leave, once; bob stays; nobody listens in 'elsewhere'",
    );
    assert.deepEqual((await live1.members("r")).map((m) => m.id).sort(), ["ann", "bob"]);
  } finally {
    await Promise.all([live1.close(), live2.close()]);
    kv.close();
  }
});

Deno.test("KvPresence: a join and a leave of one connection at once leave no member behind; a later join is told", async () => {
  const kv = await Deno.openKv(":memory:");
  const one = new KvPresence({ kv, node: "one", leaseMs: 300 });
  const two = new KvPresence({ kv, node: "two", leaseMs: 300 });
  const ann = { id: "ann", name: "Ann" };
  try {
    // As the hub does when a socket closes while its join is under way.
    await Promise.all([one.join("r", ann, "c1"), one.leave("r", ann, "c1")]);
    await new Promise((resolve) => setTimeout(resolve, 1200)); // four leases, renewals and sweeps
    assert.deepEqual(await one.members("r"), []);
    const again = await two.join("r", ann, "c2");
    assert.equal(again.changed, true, "Ann's join on the other node is a member join");
    assert.equal(again.members, 1);
  } finally {
    await Promise.all([one.close(), two.close()]);
    kv.close();
  }
});

Deno.test("KvPresence: a leave while a renewal is being committed is told once, and the user is gone", async () => {
  const kv = await Deno.openKv(":memory:");
  // Node one's KV is slow (a remote KV): its commits take 50 ms and its listings 100 ms, so leaves
  // land in the middle of its renewals (every 200 ms).
  const slow = slowKv(kv, { commitMs: 50, listMs: 100 });
  const leaseMs = 600;
  const leaves: string[] = [];
  // Leaves the nodes tell of members that lapsed (a leave a node answers itself is counted below).
  const telling = (node: string) => ({
    max: 100,
    tell: (event: MemberEvent) => {
      if (event.event === "leave" && event.origin === "") leaves.push(`${event.user.id} (lapsed, told by ${node})`);
    },
  });
  const one = new KvPresence({ kv: slow, node: "one", leaseMs, telling: telling("one") });
  const two = new KvPresence({ kv, node: "two", leaseMs, telling: telling("two") });
  try {
    await two.join("r", { id: "bob", name: "Bob" }, "b1"); // Bob stays, and node two sweeps the room
    const users = ["u0", "u1", "u2", "u3", "u4"];
    for (const [i, id] of users.entries()) {
      const user = { id, name: id };
      assert.equal((await one.join("r", user, `${id}-c`)).changed, true);
      await new Promise((resolve) => setTimeout(resolve, 150 + 40 * i)); // at different points of a renewal
      if ((await one.leave("r", user, `${id}-c`)).changed) leaves.push(id);
    }
    await new Promise((resolve) => setTimeout(resolve, 4 * leaseMs));
    assert.deepEqual((await two.members("r")).map((m) => m.id), ["bob"]);
    for (const id of users) {
      assert.equal(leaves.filter((l) => l.startsWith(id)).length, 1, `${id}'s leave once: ${leaves}`);
    }
  } finally {
    await Promise.all([one.close(), two.close()]);
    kv.close();
  }
});
