/**
 * Issue "hardening, round two", finding 3: `join R`, `leave R`, `join R` back to back, then close:
 * the second join ran after the disconnect's cleanup and added a closed connection to presence, for
 * good (14 of 20 tries; one client made 153 phantoms in 35 s, and the room then passed
 * `ROOMCAST_MEMBER_EVENTS_MAX`, so real users got no member events). Now a closed connection joins
 * nothing, on every engine. Hammered here on one isolate, two isolates, and two processes on Redis.
 */
import assert from "node:assert/strict";
import { configWith } from "../../lib/config.ts";
import { startCluster } from "../../routes/serve/cluster.ts";
import { TestClient } from "../_client.ts";
import { startTestServer } from "../_server.ts";
import { quiet, until } from "../_wait.ts";
import { redisTest } from "../_redis.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const TRIES = 30;

/** Each try: a client joins, leaves and joins `room` without waiting, and closes at once. */
async function hammer(urls: string[], room: string): Promise<void> {
  await Promise.all(Array.from({ length: TRIES }, async (_, i) => {
    const client = await TestClient.json(`${urls[i % urls.length]?.replace("http", "ws")}/ws?name=Hammer${i}`);
    client.send({ type: "join", room });
    client.send({ type: "leave", room });
    client.send({ type: "join", room });
    await client.close();
  }));
}

async function members(url: string, room: string): Promise<number> {
  const body = await (await fetch(`${url}/api/rooms/${room}/presence`)).json();
  return body.members.length;
}

Deno.test({
  name: "join, leave, join, close at once leaves no member behind: one isolate (default engine)",
  ...opts,
  async fn() {
    await using server = await startTestServer({ kv: true });
    await hammer([server.url], "r");
    await until(() => server.hub.connectionCount === 0, 3000, "every connection to go");
    await server.hub.presenceWritten();
    assert.equal(await members(server.url, "r"), 0);
    // A real user still hears member events in that room.
    const watcher = await server.joined("r");
    const other = await server.joined("r");
    const event = await watcher.next((f) => f.type === "member");
    assert.equal(event.event, "join");
    await Promise.all([watcher.close(), other.close()]);
  },
});

Deno.test({
  name: "join, leave, join, close at once leaves no member behind: two isolates",
  ...opts,
  async fn() {
    const config = configWith({ port: 0, hostname: "127.0.0.1", kvPath: ":memory:", workers: 2 });
    await using cluster = await startCluster({ config, memory: true });
    await hammer([cluster.url], "r");
    await until(async () => await members(cluster.url, "r") === 0, 5000, "the room to be empty");
    // And it stays empty: nothing was left to come in late.
    await quiet(300, "nothing comes in late");
    assert.equal(await members(cluster.url, "r"), 0);
  },
});

redisTest("join, leave, join, close at once leaves no member behind: two processes on Redis", async (redis) => {
  await using one = await startTestServer({ kv: true, redisUrl: redis.url });
  await using two = await startTestServer({ kv: true, redisUrl: redis.url });
  await hammer([one.url, two.url], "r");
  await until(() => one.hub.connectionCount === 0 && two.hub.connectionCount === 0, 3000, "every connection to go");
  await Promise.all([one.hub.presenceWritten(), two.hub.presenceWritten()]);
  assert.equal(await members(one.url, "r"), 0);
  assert.equal(await members(two.url, "r"), 0);
});
