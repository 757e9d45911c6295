/**
 * Redis presence against a real redis-server when things go wrong: a leave while Redis is away, a
 * leave while a node writes its presence again, a node cut off (no reset) for longer than its
 * lease, and a leave and a join of one room crossing on two nodes. Nobody is left listed who left,
 * and nobody who is connected goes missing.
 */
import assert from "node:assert/strict";
import { redisTest } from "./_redis.ts";
import { startTcpProxy } from "./_tcp_proxy.ts";
import { hashTag, RedisLink } from "../lib/engine/redis/link.ts";
import { RedisPresence } from "../lib/engine/redis/presence.ts";
import { RedisBackplane } from "../lib/engine/redis/backplane.ts";
import { quiet, until } from "./_wait.ts";

const ann = { id: "ann", name: "Ann" };
const bob = { id: "bob", name: "Bob" };

/** What a node subscribed to `room` hears of its member events (the presence scripts tell them on
 * the room's channel): `join r/ann`, … */
async function observe(link: RedisLink, room: string): Promise<{ events: string[]; close(): Promise<void> }> {
  const backplane = new RedisBackplane(link, "observer");
  const events: string[] = [];
  backplane.onEvent((event) => {
    if (event.kind === "member") events.push(`${event.event} ${event.room}/${event.user.id}`);
  });
  backplane.onTrouble(() => {});
  backplane.subscribe(room);
  await backplane.subscribed();
  return { events, close: () => backplane.close() };
}

async function upLink(url: string): Promise<RedisLink> {
  const link = new RedisLink({ url });
  await link.open();
  return link;
}

redisTest(
  "Redis presence: a leave and a disconnect while Redis is away take effect once it is back, the leave told",
  async (redis) => {
    // Redis is away for node A only (its connection cut): the others hear what A tells once back.
    const proxy = startTcpProxy(redis.port);
    const [la, lb] = [await upLink(proxy.url), await upLink(redis.url)];
    const heard = await observe(lb, "r");
    const a = new RedisPresence({ link: la, node: "A", leaseMs: 300 });
    const b = new RedisPresence({ link: lb, node: "B", leaseMs: 300 });
    try {
      await b.join("r", bob, "b1"); // Bob stays: Ann's comings and goings are told
      await a.connect(ann, "c1");
      await a.join("r", ann, "c1");
      assert.deepEqual((await b.members("r")).map((m) => m.id), ["ann", "bob"]);
      proxy.cut();
      await until(() => la.state === "down", 5000, "A's link down");
      // Ann's socket closes meanwhile: the hub's leave and disconnect fail.
      await assert.rejects(a.leave("r", ann, "c1"));
      await assert.rejects(a.disconnect(ann, "c1"));
      proxy.restore();
      await until(() => la.state === "up", 5000, "A's link up");
      // Both let go once Redis is back (the leave, then the disconnect).
      await until(
        async () => (await b.members("r")).length === 1 && await b.connections("ann") === 0,
        5000,
        "Ann no longer listed, and a direct to her counting no connection",
      );
      await until(() => heard.events.length >= 2, 5000, "her leave told");
      assert.deepEqual(heard.events, ["join r/ann", "leave r/ann"], "her leave is told once it took effect");
    } finally {
      await Promise.all([a.close(), b.close(), heard.close()]);
      await Promise.all([la.close(), lb.close()]);
      proxy.close();
    }
  },
);

redisTest(
  "Redis presence: a leave while a node writes its presence again after a reconnect stays a leave",
  async (redis) => {
    const [la, lb, admin] = [await upLink(redis.url), await upLink(redis.url), await upLink(redis.url)];
    const a = new RedisPresence({ link: la, node: "A", leaseMs: 300 });
    const b = new RedisPresence({ link: lb, node: "B", leaseMs: 300 });
    try {
      const n = 1000;
      await Promise.all(Array.from({ length: n }, (_, i) => a.join(`r${i}`, { id: `u${i}`, name: "U" }, `c${i}`)));
      // The connection is cut; when it is back A writes its 1,000 entries again, one after another,
      // and 30 ms into that, u999's socket closes.
      const left: boolean[] = [];
      const back = Promise.withResolvers<void>();
      la.onBack(() => {
        setTimeout(() => void a.leave("r999", { id: "u999", name: "U" }, "c999").then((c) => left.push(c.changed)), 30);
        back.resolve();
      });
      const id = await la.command<number>(["CLIENT", "ID"]);
      await admin.command(["CLIENT", "KILL", "ID", String(id)]);
      await back.promise;
      await until(() => left.length === 1, 5000, "the leave answered");
      await quiet(1500, "A's rewrite ends and leases lapse: u999 must not be written back");
      assert.deepEqual((await b.members("r999")).map((m) => m.id), [], "u999 left r999");
      assert.deepEqual((await b.members("r998")).map((m) => m.id), ["u998"], "the others are still there");
    } finally {
      await Promise.all([a.close(), b.close()]);
      await Promise.all([la.close(), lb.close(), admin.close()]);
    }
  },
);

redisTest(
  "Redis presence: a node cut off (no reset) past its lease is taken for dead, then comes back, its members' joins told",
  async (redis) => {
    const proxy = startTcpProxy(redis.port);
    const la = new RedisLink({ url: proxy.url });
    await la.open();
    const lb = await upLink(redis.url);
    const heard = await observe(lb, "r");
    const a = new RedisPresence({ link: la, node: "A", leaseMs: 300 });
    const b = new RedisPresence({ link: lb, node: "B", leaseMs: 300 });
    try {
      await b.join("r", bob, "b1");
      await a.join("r", ann, "c1");
      proxy.freeze(); // a network stall of a second: the connection stays up, commands wait
      await quiet(1000, "the stall outlasts A's 300 ms lease");
      proxy.thaw();
      await until(
        async () => (await b.members("r")).length === 2 && heard.events.length >= 3,
        5000,
        () => `Ann listed again, and told (heard ${heard.events})`,
      );
      assert.deepEqual(
        heard.events,
        ["join r/ann", "leave r/ann", "join r/ann"],
        "taken for dead (leave), then back (join)",
      );
      await quiet(1000, "several of A's leases: Ann stays listed");
      assert.deepEqual((await b.members("r")).map((m) => m.id), ["ann", "bob"], "and she stays");
    } finally {
      await Promise.all([a.close(), b.close(), heard.close()]);
      await Promise.all([la.close(), lb.close()]);
      proxy.close();
    }
  },
);

redisTest(
  "Redis presence: a leave on one node crossing a join on another keeps the room in the rooms list",
  async (redis) => {
    const [la, lb] = [await upLink(redis.url), await upLink(redis.url)];
    const a = new RedisPresence({ link: la, node: "A", leaseMs: 10_000 });
    const b = new RedisPresence({ link: lb, node: "B", leaseMs: 10_000 });
    try {
      for (let i = 0; i < 300; i++) {
        await b.join(`q${i}`, bob, "b");
        await Promise.all([b.leave(`q${i}`, bob, "b"), a.join(`q${i}`, ann, "a")]);
      }
      const listed = new Set((await a.rooms()).map((r) => r.room));
      const missing = Array.from({ length: 300 }, (_, i) => `q${i}`).filter((room) => !listed.has(room));
      assert.deepEqual(missing, [], "every room Ann is in is listed");
    } finally {
      await Promise.all([a.close(), b.close()]);
      await Promise.all([la.close(), lb.close()]);
    }
  },
);

Deno.test("Redis keys: two user ids never share a key (escapes escaped too); room names are kept as they are", () => {
  const ids = ["a{b", "a%7Bb", "a%257Bb", "a}b", "a%7Db", "%", "%25", "{", "}"];
  assert.equal(new Set(ids.map(hashTag)).size, ids.length);
  assert.equal(hashTag("room-1.a:b@c_d"), "{room-1.a:b@c_d}");
});
