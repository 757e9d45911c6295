import assert from "node:assert/strict";
import { ManualClock } from "./clock.ts";
import { FloodGuard, TokenBucket } from "./limits.ts";

Deno.test("token bucket: 50 per 10 s, refilled continuously", () => {
  const clock = new ManualClock();
  const bucket = new TokenBucket(50, 10_000, clock);
  for (let i = 0; i < 50; i++) assert.equal(bucket.take(), true, `take ${i}`);
  assert.equal(bucket.take(), false);
  clock.advance(199);
  assert.equal(bucket.take(), false, "one token takes 200 ms to refill");
  clock.advance(1);
  assert.equal(bucket.take(), true);
  assert.equal(bucket.take(), false);
  clock.advance(60_000);
  for (let i = 0; i < 50; i++) assert.equal(bucket.take(), true);
  assert.equal(bucket.take(), false, "never more than the capacity");
});

Deno.test("flood guard trips after the limit in a row, forgiven by a success", () => {
  const guard = new FloodGuard(3);
  assert.equal(guard.strike(), false);
  assert.equal(guard.strike(), false);
  guard.forgive();
  assert.equal(guard.strike(), false);
  assert.equal(guard.strike(), false);
  assert.equal(guard.strike(), true);
});
