/** lib/webhooks.ts with a fake receiver (its `post`) and a manual clock: batches, signatures,
 * order, retries with backoff, and what is dropped when. */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { ManualClock } from "./clock.ts";
import { Metrics } from "./metrics.ts";
import { type Post, Webhooks } from "./webhooks.ts";
import { until } from "../tests/_wait.ts";

const signer = { key: "key1", secret: "secret-one" };

function receiver(answer: () => number) {
  const bodies: { body: Record<string, unknown>; headers: Record<string, string>; raw: string }[] = [];
  const post: Post = (_url, raw, headers) => {
    const status = answer();
    if (status >= 200 && status < 300) bodies.push({ body: JSON.parse(raw), headers, raw });
    return Promise.resolve(status);
  };
  return { bodies, post };
}

const names = (bodies: { body: Record<string, unknown> }[]) =>
  bodies.flatMap((b) => (b.body.events as { name: string; channel: string }[]).map((e) => `${e.name}:${e.channel}`));

Deno.test("webhooks: one signed batch per tick, in order, occupied before the first member and vacated after the last", async () => {
  const clock = new ManualClock();
  const metrics = new Metrics();
  const { bodies, post } = receiver(() => 200);
  const hooks = new Webhooks({ urls: ["http://r/"], signer, clock, metrics, post, batchMs: 10 });
  const ann = { id: "ann", name: "Ann" };
  hooks.memberChange({ room: "r", user: ann, event: "join", members: 1, occupancy: "occupied" });
  hooks.memberChange({ room: "r", user: { id: "bob", name: "Bob" }, event: "join", members: 2, occupancy: "none" });
  hooks.clientEvent({ channel: "private-r", event: "client-x", data: '{"a":1}', socketId: "1.2" });
  hooks.cacheMiss("cache-r");
  hooks.memberChange({ room: "r", user: ann, event: "leave", members: 1, occupancy: "none" });
  hooks.memberChange({ room: "r", user: { id: "bob", name: "Bob" }, event: "leave", members: 0, occupancy: "vacated" });
  await until(() => names(bodies).length === 8, 2000, "eight events");
  assert.equal(bodies.length, 1, "one POST for what came within a tick");
  assert.deepEqual(names(bodies), [
    "channel_occupied:r",
    "member_added:r",
    "member_added:r",
    "client_event:private-r",
    "cache_miss:cache-r",
    "member_removed:r",
    "member_removed:r",
    "channel_vacated:r",
  ]);
  const [first] = bodies;
  assert.equal(first?.headers["content-type"], "application/json");
  assert.equal(first?.headers["x-pusher-key"], "key1");
  assert.equal(
    first?.headers["x-pusher-signature"],
    createHmac("sha256", "secret-one").update(first?.raw ?? "").digest("hex"),
  );
  assert.equal(first?.body.time_ms, clock.now());
  const clientEvent = (first?.body.events as Record<string, unknown>[])[3];
  assert.deepEqual(clientEvent, {
    name: "client_event",
    channel: "private-r",
    event: "client-x",
    data: '{"a":1}',
    socket_id: "1.2",
  });
  assert.equal(metrics.webhooks.get("sent"), 8);
  await hooks.close();
});

Deno.test("webhooks: a failing receiver gets the same events again after a backoff, then the rest, in order", async () => {
  const clock = new ManualClock();
  const metrics = new Metrics();
  let up = false;
  let attempts = 0;
  const { bodies, post } = receiver(() => {
    attempts++;
    return up ? 204 : 503;
  });
  const hooks = new Webhooks({ urls: ["http://r/"], signer, clock, metrics, post, batchMs: 5 });
  hooks.cacheMiss("a");
  await until(() => attempts === 1, 2000, "the first attempt");
  hooks.cacheMiss("b");
  // Backing off (1 s on the manual clock): no new attempt however many ticks pass.
  await until(() => hooks.pending() === 2, 2000, "both waiting");
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(attempts, 1, "no retry before the backoff");
  clock.advance(1000);
  await until(() => attempts === 2, 2000, "the retry");
  clock.advance(2000);
  up = true;
  await until(() => bodies.length === 1, 2000, "delivery once the receiver is back");
  assert.deepEqual(names(bodies), ["cache_miss:a", "cache_miss:b"]);
  assert.equal(metrics.webhooks.get("retried"), 1 + 2);
  await hooks.close();
});

Deno.test("webhooks: events kept past keepMs, or past the cap, are dropped and counted; other receivers unaffected", async () => {
  const clock = new ManualClock();
  const metrics = new Metrics();
  const down = receiver(() => 500);
  const fine = receiver(() => 200);
  const post: Post = (url, body, headers) => (url === "http://down/" ? down.post : fine.post)(url, body, headers);
  const hooks = new Webhooks({
    urls: ["http://down/", "http://fine/"],
    signer,
    clock,
    metrics,
    post,
    batchMs: 5,
    keepMs: 60_000,
    maxPending: 50,
    maxBatch: 10,
  });
  for (let i = 0; i < 40; i++) hooks.cacheMiss(`c${i}`);
  await until(() => names(fine.bodies).length === 40, 3000, "the fine receiver gets the first 40");
  for (let i = 40; i < 80; i++) hooks.cacheMiss(`c${i}`);
  await until(() => names(fine.bodies).length === 80, 3000, "the fine receiver gets all 80");
  assert.equal(hooks.pending("http://down/"), 50, "the cap holds for the one that is down");
  clock.advance(61_000);
  hooks.cacheMiss("late");
  await until(() => hooks.pending("http://down/") <= 11, 2000, "stale events dropped");
  assert.ok((metrics.webhooks.get("dropped") ?? 0) >= 30 + 39, `${metrics.webhooks.get("dropped")} dropped`);
  await hooks.close(100);
});
