/**
 * Webhooks (lib/webhooks.ts) against a receiver on 127.0.0.1, validated by the `pusher` server
 * SDK's own `webhook(req).isValid()`: what one process sends, and that each presence change is
 * sent once however many nodes serve the room (two processes on Redis, two Workers).
 */
import assert from "node:assert/strict";
import { loadConfig } from "../lib/config.ts";
import { client, type Pusher, PUSHER_APP, sdk, subscribed } from "./_pusher.ts";
import { redisTest } from "./_redis.ts";
import { startTestServer, type TestServer, twoServers, twoWorkers } from "./_server.ts";
import { TestClient } from "./_client.ts";
import { quiet, until } from "./_wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

interface Received {
  name: string;
  channel: string;
  user_id?: string;
  event?: string;
  data?: string;
  socket_id?: string;
}

/** A webhook receiver: what it was sent (bodies that the SDK says are valid), and a switch to fail. */
function startReceiver() {
  const events: Received[] = [];
  const invalid: string[] = [];
  let failing = false;
  let attempts = 0;
  const validator = sdk({ url: "http://127.0.0.1:1" } as TestServer);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    attempts++;
    const rawBody = await request.text();
    if (failing) return new Response("down", { status: 503 });
    const headers = Object.fromEntries(request.headers);
    const webhook = validator.webhook({ headers, rawBody });
    if (!webhook.isValid()) invalid.push(rawBody);
    else events.push(...(webhook.getEvents() as Received[]));
    return new Response(null, { status: 200 });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/hooks`,
    events,
    invalid,
    get attempts() {
      return attempts;
    },
    fail(on: boolean) {
      failing = on;
    },
    of: (channel: string) =>
      events.filter((e) => e.channel === channel).map((e) => `${e.name}${e.user_id ? `:${e.user_id}` : ""}`),
    close: () => server.shutdown(),
  };
}

const presenceClient = (server: { url: string }, user: string) =>
  client(server as TestServer, { user: { user_id: user, user_info: { name: user } } });

Deno.test(
  { name: "webhooks: presence, client events and cache misses, valid for the Pusher SDK", ...opts },
  async () => {
    const receiver = startReceiver();
    const server = await startTestServer({ pusherApps: [PUSHER_APP], webhookUrls: [receiver.url] });
    const clients: Pusher[] = [];
    try {
      const ann = presenceClient(server, "ann");
      const ann2 = presenceClient(server, "ann");
      const bob = presenceClient(server, "bob");
      clients.push(ann, ann2, bob);
      const a = await subscribed(ann, "presence-room");
      await subscribed(ann2, "presence-room");
      await subscribed(bob, "presence-room");
      a.trigger("client-hello", { x: 1 });
      await new Promise<void>((resolve) => bob.subscribe("cache-empty").bind("pusher:cache_miss", () => resolve()));
      await until(() => receiver.events.some((e) => e.name === "cache_miss"), 3000, "the cache miss webhook");
      ann.disconnect();
      ann2.disconnect();
      bob.disconnect();
      await until(() => receiver.of("presence-room").includes("channel_vacated"), 3000, "the room vacated");
      assert.deepEqual(receiver.invalid, []);
      assert.deepEqual(receiver.of("presence-room"), [
        "channel_occupied",
        "member_added:ann",
        "member_added:bob",
        "client_event:ann",
        "member_removed:ann",
        "member_removed:bob",
        "channel_vacated",
      ]);
      const clientEvent = receiver.events.find((e) => e.name === "client_event");
      assert.deepEqual(
        [clientEvent?.event, JSON.parse(clientEvent?.data ?? "null"), clientEvent?.user_id],
        ["client-hello", { x: 1 }, "ann"],
      );
      assert.match(clientEvent?.socket_id ?? "", /^\d+\.\d+$/);
    } finally {
      for (const c of clients) c.disconnect();
      await server.drain();
      await receiver.close();
    }
  },
);

Deno.test(
  { name: "webhooks: a receiver that is down gets every event once it is back, in order", ...opts },
  async () => {
    const receiver = startReceiver();
    const server = await startTestServer({ pusherApps: [PUSHER_APP], webhookUrls: [receiver.url] });
    const ws = await server.client();
    try {
      receiver.fail(true);
      await ws.request({ type: "join", room: "outage" });
      await until(() => receiver.attempts >= 1, 3000, "a first attempt");
      await ws.request({ type: "leave", room: "outage" });
      await quiet(500, "still down");
      receiver.fail(false);
      await until(() => receiver.of("outage").length === 4, 8000, "the four events after the backoff");
      const user = ws.welcome?.user.id;
      assert.deepEqual(receiver.of("outage"), [
        "channel_occupied",
        `member_added:${user}`,
        `member_removed:${user}`,
        "channel_vacated",
      ]);
      assert.ok((server.metrics.webhooks.get("retried") ?? 0) >= 1);
    } finally {
      await ws.close();
      await server.drain();
      await receiver.close();
    }
  },
);

/** Ann on both nodes and Bob on one, in and out in an order that tries every case: each change is
 * sent once. */
async function onceAcross(nodes: { url: string }[], receiver: ReturnType<typeof startReceiver>) {
  const [one, two] = [nodes[0] as { url: string }, nodes[1] ?? nodes[0] as { url: string }];
  const annOne = presenceClient(one, "ann");
  const annTwo = presenceClient(two, "ann");
  const bob = presenceClient(two, "bob");
  try {
    await subscribed(annOne, "presence-x");
    await subscribed(annTwo, "presence-x");
    await subscribed(bob, "presence-x");
    await until(() => receiver.of("presence-x").length >= 3, 5000, "three join events");
    annOne.disconnect();
    await quiet(500, "ann is still there on the other node");
    assert.deepEqual(receiver.of("presence-x"), ["channel_occupied", "member_added:ann", "member_added:bob"]);
    annTwo.disconnect();
    bob.disconnect();
    await until(() => receiver.of("presence-x").includes("channel_vacated"), 5000, "the room vacated");
    await quiet(500, "nothing sent twice, late");
    // Ann and Bob leave at the same moment: their leaves and the room's vacating come once each, in
    // an order that concurrent changes don't fix.
    const sent = receiver.of("presence-x");
    assert.deepEqual(sent.slice(0, 3), ["channel_occupied", "member_added:ann", "member_added:bob"]);
    assert.deepEqual(sent.slice(3).sort(), ["channel_vacated", "member_removed:ann", "member_removed:bob"]);
    assert.deepEqual(receiver.invalid, []);
  } finally {
    for (const c of [annOne, annTwo, bob]) c.disconnect();
  }
}

/** `body` with a receiver and two servers sending it webhooks (`shared`: see `twoServers`). */
async function withPair(
  shared: { redisUrl: string } | "kv",
  body: (servers: [TestServer, TestServer], receiver: ReturnType<typeof startReceiver>) => Promise<void>,
): Promise<void> {
  const receiver = startReceiver();
  try {
    await using pair = await twoServers(shared, { pusherApps: [PUSHER_APP], webhookUrls: [receiver.url] });
    await body(pair.servers, receiver);
  } finally {
    await receiver.close();
  }
}

redisTest(
  "webhooks: two processes on one Redis send each presence change once",
  (redis) => withPair({ redisUrl: redis.url }, (servers, receiver) => onceAcross(servers, receiver)),
);

Deno.test(
  { name: "webhooks: two instances sharing one KV (Deploy mode) send each presence change once", ...opts },
  () => withPair("kv", (servers, receiver) => onceAcross(servers, receiver)),
);

Deno.test({ name: "webhooks: two Workers send each presence change once", ...opts }, async () => {
  const receiver = startReceiver();
  const cluster = await twoWorkers({ pusherApps: [PUSHER_APP], webhookUrls: [receiver.url] });
  try {
    // Connections land on either isolate; several of each user make both likely.
    await onceAcross([cluster, cluster], receiver);
  } finally {
    await cluster.drain();
    await receiver.close();
  }
});

Deno.test("webhooks: ROOMCAST_WEBHOOK_URL without Pusher apps, or not http(s), stops start-up", () => {
  assert.throws(() => loadConfig({ ROOMCAST_WEBHOOK_URL: "http://127.0.0.1:9/h" }), /needs ROOMCAST_PUSHER_APPS/);
  assert.throws(
    () => loadConfig({ ROOMCAST_WEBHOOK_URL: "ftp://user:pw@x", ROOMCAST_PUSHER_APPS: "a:k:secret-one" }),
    (error: Error) => /must be an http/.test(error.message) && !error.message.includes("pw@"),
  );
});

/** Rounds of `users` connections (users of their own, spread over the nodes) that join one room at
 * once and then leave at once: each round must send one channel_occupied, one member_added and one
 * member_removed per user, and one channel_vacated, whatever the interleaving. */
async function churn(
  urls: string[],
  receiver: ReturnType<typeof startReceiver>,
  rounds: number,
  users: number,
) {
  for (let round = 0; round < rounds; round++) {
    const clients = await Promise.all(
      Array.from({ length: users }, (_, i) => TestClient.json(`${urls[i % urls.length]!.replace(/^http/, "ws")}/ws`)),
    );
    await Promise.all(clients.map((c) => c.request({ type: "join", room: "churn" })));
    await Promise.all(clients.map((c) => c.close()));
    await until(
      () => receiver.of("churn").filter((e) => e === "channel_vacated").length === round + 1,
      8000,
      () => `round ${round + 1}: ${receiver.of("churn").length} events`,
    );
  }
  await quiet(500, "nothing sent twice, late");
  const sent = receiver.of("churn");
  const count = (name: string) => sent.filter((e) => e.startsWith(name)).length;
  assert.equal(count("channel_occupied"), rounds);
  assert.equal(count("channel_vacated"), rounds);
  assert.equal(count("member_added"), rounds * users);
  assert.equal(count("member_removed"), rounds * users);
  // (Their order at the receiver is each node's own: a node's batch can arrive after a later one
  // of another node, as with Pusher's own webhooks.)
  assert.deepEqual(receiver.invalid, []);
  console.log(
    `churn over ${urls.length} node(s): ${rounds} rounds × ${users} users, ${sent.length} webhook events, none twice`,
  );
}

redisTest(
  "webhooks under churn: two processes on Redis, 10 rounds of 8 users joining and leaving at once",
  (redis) => withPair({ redisUrl: redis.url }, ([one, two], receiver) => churn([one.url, two.url], receiver, 10, 8)),
);

Deno.test(
  { name: "webhooks under churn: two instances on one KV (Deploy mode), 10 rounds of 8 users", ...opts },
  () => withPair("kv", ([one, two], receiver) => churn([one.url, two.url], receiver, 10, 8)),
);
