import assert from "node:assert/strict";
import { Budgets, guestPrincipal, userPrincipal } from "./budgets.ts";
import { ManualClock } from "./clock.ts";
import { SharedCounts } from "./shared_counts.ts";

Deno.test("budgets: one per principal, shared by its holders, forgotten once unheld and refilled", () => {
  const clock = new ManualClock();
  const budgets = new Budgets({ publishBurst: 2, signalBurst: 5, windowMs: 1000, clock });
  const held = budgets.hold(userPrincipal("u"));
  assert.equal(budgets.of(userPrincipal("u")), held, "every connection of a user shares it");
  assert.equal(guestPrincipal("2001:db8:1:2::9"), guestPrincipal("2001:db8:1:2::7"), "guests by /64");
  assert.ok(held.publishes.take() && held.publishes.take());
  assert.equal(held.publishes.take(), false);
  budgets.of(guestPrincipal("203.0.113.1")).signals.take();
  clock.advance(1000);
  budgets.of("touch"); // sweeps: the guest's refilled budget goes, the held one stays
  assert.equal(budgets.size, 2);
  budgets.release(held);
  clock.advance(1000);
  budgets.of("touch");
  assert.equal(budgets.size, 1, "only the one just asked for");
});

Deno.test("budgets with Workers: a principal's publishes count in every Worker; its signals and other principals apart", () => {
  const clock = new ManualClock(); // on a whole second
  const coordinator = new SharedCounts({ regions: 2, maxConnections: 100 });
  const [b0, b1] = [0, 1].map((region) =>
    new Budgets({
      publishBurst: 5,
      signalBurst: 2,
      windowMs: 10_000,
      clock,
      shared: new SharedCounts(coordinator.share(region)),
    })
  ) as [Budgets, Budgets];
  const u = userPrincipal("u");
  const takes = Array.from({ length: 8 }, (_, i) => (i % 2 ? b1 : b0).of(u).publishes.take());
  assert.deepEqual(takes, [true, true, true, true, true, false, false, false], "five in all, on either Worker");
  const wait = b0.of(u).publishes.waitMs;
  assert.ok(wait > 0 && wait <= 20_000, `a refused publisher is told when to come back: ${wait} ms`);
  assert.ok(b1.of(u).signals.take() && b0.of(u).signals.take(), "signals have their own budget");
  assert.equal(b1.of(u).signals.take(), false);
  assert.ok(b0.of(userPrincipal("v")).publishes.take(), "another user has their own");
  clock.advance(wait);
  assert.ok(b1.of(u).publishes.take(), "after the wait it said");
});
