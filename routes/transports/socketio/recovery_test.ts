import assert from "node:assert/strict";
import { storedMessage } from "../../../tests/_messages.ts";
import { LOG_BYTES, LOG_ENTRIES, SessionLog } from "./recovery.ts";

const message = (offset: number) => storedMessage("r", offset);

Deno.test("SessionLog: offsets, entries in order, the written position per room", () => {
  const log = new SessionLog();
  assert.equal(log.stamp(), "1");
  assert.equal(log.note(message(7), () => [], 0), "2");
  assert.equal(log.note(undefined, () => ["typing", { n: 1 }], 20), "3");
  assert.deepEqual(log.entries, [
    { seq: 2, message: message(7) },
    { seq: 3, args: ["typing", { n: 1 }], bytes: 20 },
  ]);
  assert.deepEqual(log.writtenIn("r"), { epoch: "e", offset: 7 });
  assert.equal(log.floor, 0);
});

Deno.test("SessionLog: bounded in entries and in bytes; the floor is the last entry dropped", () => {
  const log = new SessionLog(100);
  const n = LOG_ENTRIES * 10 + 3;
  for (let i = 1; i <= n; i++) log.note(i % 2 ? message(i) : undefined, () => [`e${i}`], 10);
  const entries = log.entries;
  assert.equal(entries.length, LOG_ENTRIES);
  assert.deepEqual(
    entries.map((e) => e.seq),
    Array.from({ length: LOG_ENTRIES }, (_, i) => 100 + n - LOG_ENTRIES + 1 + i),
  );
  assert.equal(log.floor, 100 + n - LOG_ENTRIES);
  assert.equal(log.seq, 100 + n);

  // Relayed events' bytes: the oldest go once the sum passes LOG_BYTES, whatever their count.
  const big = new SessionLog();
  const each = Math.floor(LOG_BYTES / 4) + 1;
  for (let i = 1; i <= 6; i++) big.note(undefined, () => [`big${i}`], each);
  assert.deepEqual(big.entries.map((e) => e.seq), [4, 5, 6]);
  assert.equal(big.floor, 3);
  // A message costs no bytes: it is replayed from its room's history.
  big.note(message(1), () => [], 0);
  assert.deepEqual(big.entries.map((e) => e.seq), [4, 5, 6, 7]);
});

Deno.test("SessionLog: an answered ping lets go of what was written before it, and raises the floor", () => {
  const log = new SessionLog();
  log.note(message(1), () => [], 0);
  log.note(undefined, () => ["typing"], 100);
  log.pinged();
  // Written after the ping went out: kept by its pong.
  log.note(undefined, () => ["late"], 50);
  log.ponged();
  assert.deepEqual(log.entries, [{ seq: 3, args: ["late"], bytes: 50 }]);
  assert.equal(log.floor, 2);
  // A pong with no ping out changes nothing; the bytes of what went are given back.
  log.ponged();
  assert.equal(log.floor, 2);
  log.pinged();
  log.ponged();
  assert.deepEqual(log.entries, []);
  assert.equal(log.floor, 3);
  const each = Math.floor(LOG_BYTES / 2);
  log.note(undefined, () => ["a"], each);
  log.note(undefined, () => ["b"], each);
  assert.equal(log.entries.length, 2, "the trimmed entries' bytes no longer count");
});
