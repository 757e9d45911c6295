import assert from "node:assert/strict";
import { addressKey, Admission } from "./admission.ts";
import { ManualClock } from "./clock.ts";

Deno.test("addresses count as IPv4 or as their IPv6 /64", () => {
  assert.equal(addressKey("203.0.113.7"), "203.0.113.7");
  assert.equal(addressKey("::ffff:127.0.0.1"), "127.0.0.1");
  assert.equal(addressKey("[2001:db8:aa:bb:1:2:3:4]"), "2001:db8:aa:bb::/64");
  assert.equal(addressKey("2001:db8:aa:bb::99"), "2001:db8:aa:bb::/64", "one client's /64 is one address");
  assert.equal(addressKey("2001:0db8:0000:0001::1"), "2001:db8:0:1::/64");
  assert.equal(addressKey("2001:db8::1"), "2001:db8:0:0::/64");
  assert.equal(addressKey("::1"), "0:0:0:0::/64");
});

Deno.test("admission: caps, rate, and release", () => {
  const clock = new ManualClock();
  const admission = new Admission({
    maxConnections: 3,
    maxPerAddress: 2,
    connectBurst: 4,
    connectWindowMs: 4000,
    clock,
  });
  assert.equal(admission.admit("a"), undefined);
  assert.equal(admission.admit("a"), undefined);
  assert.equal(admission.admit("a"), "address");
  assert.equal(admission.admit("b"), undefined);
  assert.equal(admission.admit("c"), "full");
  assert.equal(admission.admit("a"), "full", "refused attempts count against the rate too");
  assert.equal(admission.admit("a"), "rate", "a fifth attempt from a within the window");
  admission.release("a");
  admission.release("zzz"); // never admitted: no effect
  assert.equal(admission.open, 2);
  clock.advance(1000);
  assert.equal(admission.admit("a"), undefined);
  assert.equal(admission.open, 3);
});
