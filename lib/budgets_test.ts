import assert from "node:assert/strict";
import { Budgets, guestPrincipal, userPrincipal } from "./budgets.ts";
import { ManualClock } from "./clock.ts";

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
