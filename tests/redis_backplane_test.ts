/**
 * The Redis backplane's subscriptions against a real redis-server that goes away and comes back:
 * what is asked for while Redis is away is made once it is back (everybody's channel included),
 * and a subscription made twice hands each event over once. A publish Redis answers too late is told
 * apart from one never sent.
 */
import assert from "node:assert/strict";
import { redisTest } from "./_redis.ts";
import { RedisLink } from "../lib/engine/redis/link.ts";
import { RedisBackplane } from "../lib/engine/redis/backplane.ts";
import type { BackplaneEvent } from "../lib/engine/backplane.ts";
import { RedisStore } from "../lib/engine/redis/store.ts";
import { EngineUnavailable } from "../lib/engine/store.ts";
import { systemClock } from "../lib/clock.ts";
import { quiet, until } from "./_wait.ts";

const signal = (room: string, n: number): BackplaneEvent => ({
  kind: "signal",
  room,
  from: { id: "u", name: "U" },
  event: "typing",
  data: n,
  origin: "x",
});

async function upLink(url: string): Promise<RedisLink> {
  const link = new RedisLink({ url });
  await link.open();
  return link;
}

/** The data of the events the test sent (probes still in flight, data -1, may come too). */
const sent = (events: BackplaneEvent[]) => events.map((e) => (e as { data: number }).data).filter((n) => n >= 0);

/** A backplane whose events from other nodes land in `got`. */
function listening(link: RedisLink, node: string) {
  const backplane = new RedisBackplane(link, node);
  const got: BackplaneEvent[] = [];
  backplane.onEvent((event, from) => {
    if (from !== node) got.push(event);
  });
  backplane.onTrouble(() => {});
  return { backplane, got };
}

/** Two processes' links and backplanes on one Redis, and how to end them. */
async function pair(url: string) {
  const [la, lb] = [await upLink(url), await upLink(url)];
  const a = listening(la, "A");
  const b = listening(lb, "B");
  return {
    la,
    lb,
    a,
    b,
    async [Symbol.asyncDispose]() {
      await a.backplane.close();
      await b.backplane.close();
      await la.close();
      await lb.close();
    },
  };
}

redisTest(
  "Redis backplane: a room subscribed while Redis is away gets its channel once Redis is back",
  async (redis) => {
    await using both = await pair(redis.url);
    const { la, lb, a, b } = both;
    await a.backplane.subscribed();
    await redis.stop();
    await until(() => la.state === "down" && lb.state === "down", 5000, "both links to see Redis gone");
    a.backplane.subscribe("r"); // a member joins room r on A while Redis is away
    await a.backplane.subscribed();
    await redis.start();
    await until(() => la.state === "up" && lb.state === "up", 5000, "both links back");
    await until(
      () => {
        b.backplane.publish(signal("r", -1));
        return a.got.length > 0;
      },
      8000,
      "A's subscription made again",
    );
    a.got.length = 0;
    for (let i = 0; i < 5; i++) b.backplane.publish(signal("r", i));
    await until(() => sent(a.got).length >= 5, 5000, "every signal");
    await quiet(200, "no signal is handed over twice");
    assert.deepEqual(sent(a.got), [0, 1, 2, 3, 4]);
  },
);

redisTest(
  "Redis backplane: a process started while Redis is down hears directs and broadcasts once it is up",
  async (redis) => {
    await redis.stop();
    const la = new RedisLink({ url: redis.url });
    await la.open(300); // main.ts goes on after open's wait
    const a = listening(la, "A");
    try {
      await a.backplane.subscribed(); // its subscription to everybody's channel failed: Redis is down
      await redis.start();
      await until(() => la.state === "up", 5000, "A's link up");
      const lb = await upLink(redis.url);
      const b = listening(lb, "B");
      try {
        await b.backplane.subscribed();
        await until(
          () => {
            b.backplane.publish({ kind: "broadcast", id: "probe", data: -1, ts: 0 });
            return a.got.length > 0;
          },
          8000,
          "A to hear everybody's channel",
        );
        a.got.length = 0;
        for (let i = 0; i < 3; i++) b.backplane.publish({ kind: "broadcast", id: `x${i}`, data: i, ts: 0 });
        await until(() => sent(a.got).length >= 3, 5000, "every broadcast");
        await quiet(200, "no broadcast is handed over twice");
        assert.deepEqual(sent(a.got), [0, 1, 2]);
      } finally {
        await b.backplane.close();
        await lb.close();
      }
    } finally {
      await a.backplane.close();
      await la.close();
    }
  },
);

redisTest(
  "Redis backplane: a room left and joined again before the change ran hands each event over once",
  async (redis) => {
    await using both = await pair(redis.url);
    const { a, b } = both;
    a.backplane.subscribe("r");
    await a.backplane.subscribed();
    a.backplane.unsubscribe("r");
    a.backplane.subscribe("r");
    await a.backplane.subscribed();
    b.backplane.publish(signal("r", 1));
    await until(() => a.got.length > 0, 5000, "the signal");
    await quiet(300, "a second copy of the signal would come by now");
    assert.equal(a.got.length, 1, "one signal published, one handed over");
  },
);

redisTest(
  "Redis: a publish Redis answers too late is refused as unanswered (it may still be stored, and then is, once)",
  async (redis) => {
    const la = new RedisLink({ url: redis.url, commandTimeoutMs: 300 });
    await la.open();
    const store = new RedisStore({
      link: la,
      node: "A",
      clock: systemClock,
      historyLimit: 100,
      historyTtlMs: undefined,
    });
    const message = (id: string) => ({
      type: "message" as const,
      room: "r",
      id,
      from: { id: "u", name: "U" },
      data: id,
      ts: 0,
    });
    try {
      await store.append(message("m1"));
      // Redis stalls for a second (its process stopped); the connection stays up.
      Deno.kill(redis.pid as number, "SIGSTOP");
      const refused = await store.append(message("m2")).then(() => undefined, (error) => error);
      Deno.kill(redis.pid as number, "SIGCONT");
      assert.ok(refused instanceof EngineUnavailable);
      assert.equal(refused.unanswered, true, "sent and not answered: it may still be stored");
      const read = () => store.read("r", { after: 0, limit: 10 }).catch(() => undefined);
      await until(async () => ((await read())?.messages.length ?? 0) >= 2, 3000, "Redis to catch up and store m2");
      const page = await store.read("r", { after: 0, limit: 10 });
      assert.deepEqual(page.messages.map((m) => m.id), ["m1", "m2"], "stored once Redis caught up, once");
      // Redis unreachable: never sent, so nothing was done.
      await redis.stop();
      await until(() => la.state === "down", 5000, "the link to see Redis gone");
      const down = await store.append(message("m3")).then(() => undefined, (error) => error);
      assert.ok(down instanceof EngineUnavailable);
      assert.equal(down.unanswered, false);
    } finally {
      try {
        Deno.kill(redis.pid as number, "SIGCONT");
      } catch {
        // stopped already
      }
      await la.close();
    }
  },
);
