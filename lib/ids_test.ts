import assert from "node:assert/strict";
import { connectionId, guestId, guestName, messageId, randomId, sessionId } from "./ids.ts";

Deno.test("ids: forms, and no repeats across many refills of the random pool", () => {
  const sessions = new Set<string>();
  const randoms = new Set<string>();
  // 15 bytes a session id, 12 a random id: about 80 refills of the 4 KiB pool.
  for (let i = 0; i < 12_000; i++) {
    const s = sessionId();
    assert.match(s, /^[A-Za-z0-9_-]{20}$/);
    sessions.add(s);
    const r = randomId();
    assert.match(r, /^[0-9a-z]{12}$/);
    randoms.add(r);
  }
  assert.equal(sessions.size, 12_000);
  assert.equal(randoms.size, 12_000);
  assert.match(randomId(3), /^[0-9a-z]{3}$/);
  assert.match(connectionId(), /^c-[0-9a-z]{12}$/);
  assert.match(guestId(), /^guest-[0-9a-z]{10}$/);
  assert.match(guestName(), /^[A-Z][a-z]+ [A-Z][a-z]+$/);
  assert.match(messageId(), /^[0-9a-z]{20}$/);
  // Every base64url character turns up: the encoding uses all 64.
  const seen = new Set([...sessions].join(""));
  assert.equal(seen.size, 64);
});
