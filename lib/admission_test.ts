import assert from "node:assert/strict";
import { addressKey, Admission } from "./admission.ts";
import { SharedCounts } from "./shared_counts.ts";
import { ManualClock } from "./clock.ts";

Deno.test("addresses count as IPv4 or as their IPv6 /64", () => {
  assert.equal(addressKey("203.0.113.7"), "203.0.113.7");
  // Not plain IPv4 (too many digits or groups, empty groups): through the general path, never a false IPv4 key.
  assert.equal(addressKey("1.2.3"), "1.2.3");
  assert.equal(addressKey("1.2.3.4.5"), "1.2.3.4.5");
  assert.equal(addressKey("1..2.3"), "1..2.3");
  assert.equal(addressKey("1234.1.1.1"), "1234.1.1.1");
  assert.equal(addressKey("1.2.3.4."), "1.2.3.4.");
  assert.equal(addressKey("local"), "local");
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

/** Two Workers' views of one coordinator's counts (in one isolate here; the cluster test has real Workers). */
function twoWorkers(maxConnections: number, maxPerAddress: number, tableFor = maxConnections, connectBurst = 0) {
  const coordinator = new SharedCounts({ regions: 2, maxConnections: tableFor });
  const clock = new ManualClock(); // starts on a whole second
  const counts = [0, 1].map((region) => new SharedCounts(coordinator.share(region))) as [SharedCounts, SharedCounts];
  const [w0, w1] = counts.map((shared) =>
    new Admission({ maxConnections, maxPerAddress, connectBurst, connectWindowMs: 1000, clock, shared })
  ) as [Admission, Admission];
  return { coordinator, w0, w1, clock, counts };
}

Deno.test("shared admission: the caps count every Worker's connections; a dead Worker's region is cleared", () => {
  const { coordinator, w0, w1 } = twoWorkers(5, 3);
  assert.equal(w0.admit("a"), undefined);
  assert.equal(w1.admit("a"), undefined);
  assert.equal(w0.admit("a"), undefined);
  assert.equal(w1.admit("a"), "address", "three from a across both Workers");
  assert.equal(w0.admit("a"), "address");
  assert.equal(coordinator.count("a"), 3);
  assert.equal(w1.admit("b"), undefined);
  assert.equal(w0.admit("c"), undefined);
  assert.equal(w1.admit("d"), "full", "five in all across both Workers");
  w1.release("a");
  assert.equal(w0.admit("a"), undefined, "a slot given back on one Worker is free on the other");
  w1.release("never-admitted");
  assert.equal(coordinator.total, 5, "a release without its admit changes nothing");
  // Worker 1 dies with its connections (one of a's, and b's): its region is cleared.
  coordinator.clear(1);
  assert.equal(coordinator.total, 4);
  assert.equal(coordinator.count("b"), 0);
  assert.equal(coordinator.count("a"), 3, "a's three are all on Worker 0 now");
  assert.equal(w0.admit("b"), undefined);
});

Deno.test("shared admission: 50,000 addresses are each counted exactly; churn compacts the tables; all counts go back to zero", () => {
  const { coordinator, w0, w1 } = twoWorkers(100_000, 4);
  const addresses = Array.from({ length: 50_000 }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  for (const [i, address] of addresses.entries()) {
    assert.equal((i % 2 ? w1 : w0).admit(address), undefined);
  }
  assert.equal(coordinator.total, 50_000);
  assert.ok(addresses.every((a) => coordinator.count(a) === 1), "each address counted once, none high");
  // 300,000 more addresses come and go one at a time on Worker 0: its table (524,288 slots, the
  // most a table has) is compacted each time half of it is used.
  for (let i = 0; i < 300_000; i++) {
    const passing = `172.16.${(i >> 8) & 255}.${i & 255}:${i >> 16}`;
    assert.equal(w0.admit(passing), undefined);
    w0.release(passing);
  }
  assert.ok(addresses.every((a) => coordinator.count(a) === 1), "still each once after compactions");
  const fresh = "192.0.2.1";
  for (let i = 0; i < 2; i++) assert.equal(w0.admit(fresh), undefined);
  for (let i = 0; i < 2; i++) assert.equal(w1.admit(fresh), undefined);
  assert.equal(w0.admit(fresh), "address", "a fresh address gets its whole cap across Workers, and no more");
  for (let i = 0; i < 2; i++) [w0, w1].forEach((w) => w.release(fresh));
  for (const [i, address] of addresses.entries()) (i % 2 ? w1 : w0).release(address);
  assert.equal(coordinator.total, 0);
  assert.ok(addresses.every((a) => coordinator.count(a) === 0), "no count left behind");
});

Deno.test("shared admission: a Worker whose table is full of live addresses counts new ones alone, still capped there", () => {
  // A table for 100 connections (1,024 slots) under a cap of 10,000: 768 addresses fill it.
  const { coordinator, w0, w1 } = twoWorkers(10_000, 2, 100);
  for (let i = 0; i < 800; i++) assert.equal(w0.admit(`10.0.${i >> 8}.${i & 255}`), undefined);
  assert.equal(coordinator.total, 800);
  const late = "10.0.3.31"; // the 800th, open once on Worker 0 and counted there alone
  assert.equal(coordinator.count(late), 0);
  assert.equal(w0.admit(late), undefined);
  assert.equal(w0.admit(late), "address", "Worker 0's own count caps it");
  assert.equal(w1.admit(late), undefined, "the other Worker can't see it: the cap is per Worker for it");
  w0.release(late);
  w0.release(late);
  w1.release(late);
  assert.equal(coordinator.total, 800 - 1);
});

Deno.test("shared admission: a table more than half full of live addresses is not compacted at every new one", () => {
  const coordinator = new SharedCounts({ regions: 1, maxConnections: 100 }); // 1,024 slots
  const counts = new SharedCounts(coordinator.share(0));
  for (let i = 0; i < 600; i++) assert.equal(counts.take(`10.1.${i >> 8}.${i & 255}`, 100_000, 0), undefined);
  const before = counts.compactions;
  for (let i = 0; i < 1000; i++) {
    const passing = `10.2.${i >> 8}.${i & 255}`;
    assert.equal(counts.take(passing, 100_000, 0), undefined);
    counts.give(passing);
  }
  assert.ok(
    counts.compactions - before <= 10,
    `${counts.compactions - before} compactions for 1,000 passing addresses`,
  );
  assert.equal(coordinator.total, 600);
});

Deno.test("shared admission: the rate of new connections counts every Worker's, over a sliding window", () => {
  const { w0, w1, clock } = twoWorkers(100, 0, 100, 4); // 4 per second
  const take = (w: Admission, n: number) => Array.from({ length: n }, () => w.admit("a"));
  assert.deepEqual([...take(w0, 2), ...take(w1, 2)], [undefined, undefined, undefined, undefined]);
  assert.equal(w0.admit("a"), "rate", "four in this second across both Workers");
  assert.equal(w1.admit("a"), "rate");
  assert.equal(w1.admit("b"), undefined, "another address has its own");
  clock.advance(1000);
  assert.equal(w0.admit("a"), "rate", "at the start of the next second the last one still counts whole");
  clock.advance(500);
  assert.deepEqual([w0.admit("a"), w1.admit("a"), w0.admit("a")], [undefined, undefined, "rate"], "half of it by now");
  clock.advance(2000);
  assert.deepEqual(take(w1, 5), [undefined, undefined, undefined, undefined, "rate"], "a fresh window");
});

Deno.test("shared admission: an address's recent new connections outlive compactions, so churn can't reset its rate", () => {
  const { w0, w1, counts } = twoWorkers(10_000, 0, 100, 4); // tables of 1,024 slots
  for (let i = 0; i < 4; i++) assert.equal(w0.admit("a"), undefined);
  for (let i = 0; i < 4; i++) w0.release("a");
  // 700 other addresses come and go on the same Worker in the same second: its table is
  // compacted, and "a" (no connection open, four new ones this second) is kept.
  for (let i = 0; i < 700; i++) {
    assert.equal(w0.admit(`10.9.${i >> 8}.${i & 255}`), undefined);
    w0.release(`10.9.${i >> 8}.${i & 255}`);
  }
  assert.ok(counts[0].compactions > 0, "the table was compacted");
  assert.equal(w1.admit("a"), "rate", "a's four in this second still count");
});

Deno.test("admission: an address that keeps sending costly messages is shut out for a minute; others are not", () => {
  const clock = new ManualClock();
  const admission = new Admission({
    maxConnections: 100,
    maxPerAddress: 0,
    connectBurst: 0,
    connectWindowMs: 1,
    clock,
  });
  assert.equal(admission.offend("203.0.113.7"), false, "one is tolerated");
  assert.equal(admission.offend("203.0.113.7"), false, "two are tolerated");
  assert.equal(admission.admit("203.0.113.7"), undefined);
  assert.equal(admission.offend("203.0.113.7"), true, "the third within a minute shuts it out");
  assert.equal(admission.admit("203.0.113.7"), "rate");
  assert.equal(admission.again("203.0.113.7"), false, "nor may it connect again on a slot it holds");
  assert.equal(admission.admit("198.51.100.1"), undefined, "another address is not affected");
  clock.advance(59_000);
  assert.equal(admission.admit("203.0.113.7"), "rate");
  clock.advance(1_000);
  assert.equal(admission.admit("203.0.113.7"), undefined, "back after a minute");
});
