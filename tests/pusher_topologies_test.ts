/**
 * Pusher clients across topologies: two processes on Redis, two Deno Deploy instances on one KV,
 * and two Workers of one process. Clients on different nodes share presence (with user_info),
 * client events, triggers, the HTTP API's channel queries and terminate_connections, as on one.
 */
import assert from "node:assert/strict";
import { client, connected, nextEvent, type Pusher, PUSHER_APP, sdk, subscribed } from "./_pusher.ts";
import { redisTest } from "./_redis.ts";
import { type TestServer, twoServers, twoWorkers } from "./_server.ts";
import { until } from "./_wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

type Node = { url: string };

/** Ann on `one`, Bob on `two`: what a pair of Pusher users does works across them. */
async function acrossNodes(one: Node, two: Node): Promise<void> {
  const ann = client(one as TestServer, { user: { user_id: "ann", user_info: { name: "Ann" } } });
  const bob = client(two as TestServer, { user: { user_id: "bob", user_info: { name: "Bob", team: "red" } } });
  const clients: Pusher[] = [ann, bob];
  try {
    const a = await subscribed(ann, "presence-team");
    const added = nextEvent<{ id: string; info: unknown }>(a, "pusher:member_added");
    const b = await subscribed(bob, "presence-team");
    // Bob's subscription lists Ann, with her info, and Ann hears Bob arrive.
    const seen: Record<string, unknown> = {};
    (b as unknown as { members: { each(f: (m: { id: string; info: unknown }) => void): void } }).members.each((m) =>
      seen[m.id] = m.info
    );
    assert.deepEqual(seen, { ann: { name: "Ann" }, bob: { name: "Bob", team: "red" } });
    assert.deepEqual(await added, { id: "bob", info: { name: "Bob", team: "red" } });

    // A client event crosses; a trigger through either node reaches both.
    const whisper = nextEvent(a, "client-hi");
    b.trigger("client-hi", { from: "bob" });
    assert.deepEqual(await whisper, { from: "bob" });
    const atAnn = nextEvent(a, "news");
    const atBob = nextEvent(b, "news");
    await sdk(one as TestServer).trigger("presence-team", "news", { n: 1 });
    assert.deepEqual([await atAnn, await atBob], [{ n: 1 }, { n: 1 }]);

    // The channel queries of either node see both.
    for (const node of [one, two]) {
      const info = await (await sdk(node as TestServer).get({
        path: "/channels/presence-team",
        params: { info: "user_count,subscription_count" },
      })).json();
      assert.deepEqual(info, { occupied: true, user_count: 2, subscription_count: 2 });
    }

    // terminate_connections through one node ends Bob's connection on the other.
    const closed = new Promise<void>((resolve) =>
      bob.connection.bind("state_change", (s: { current: string }) => {
        if (s.current === "disconnected" || s.current === "failed") resolve();
      })
    );
    // Listening first: Ann can hear Bob leave before Bob's client says it is disconnected.
    const removed = nextEvent<{ id: string }>(a, "pusher:member_removed");
    await sdk(one as TestServer).terminateUserConnections("bob");
    await closed;
    assert.equal((await removed).id, "bob");
  } finally {
    for (const c of clients) c.disconnect();
  }
}

redisTest("Pusher across two processes on one Redis", async (redis) => {
  await using pair = await twoServers({ redisUrl: redis.url }, { pusherApps: [PUSHER_APP] });
  await acrossNodes(...pair.servers);
});

Deno.test({ name: "Pusher across two Deno Deploy instances on one KV", ...opts }, async () => {
  await using pair = await twoServers("kv", { pusherApps: [PUSHER_APP] });
  await acrossNodes(...pair.servers);
});

Deno.test({ name: "Pusher across the two Workers of one process", ...opts }, async () => {
  const cluster = await twoWorkers({ pusherApps: [PUSHER_APP] });
  try {
    await acrossNodes(cluster, cluster);
    // Several clients land on both isolates: presence counts every one.
    const many = Array.from(
      { length: 6 },
      (_, i) => client(cluster as unknown as TestServer, { user: { user_id: `u${i}` } }),
    );
    try {
      await Promise.all(many.map((c) => connected(c)));
      await Promise.all(many.map((c) => subscribed(c, "presence-many")));
      await until(
        async () => {
          const info = await (await sdk(cluster as unknown as TestServer).get({
            path: "/channels/presence-many",
            params: { info: "user_count" },
          })).json();
          return info.user_count === 6;
        },
        3000,
        "six users",
      );
    } finally {
      for (const c of many) c.disconnect();
    }
  } finally {
    await cluster.drain();
  }
});
