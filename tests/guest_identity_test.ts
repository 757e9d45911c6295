/**
 * A guest keeps one identity (issue 24, item 3): `welcome.guest` is a signed token that, sent back
 * as `?guest=`, makes the connection the same guest (id and name); a forged, foreign, expired or
 * oversized one gets a new guest. A user back in a room within the leave grace is told to no one
 * as a leave and a join. An SSE reader is no member unless it asks (`?presence=1`).
 */
import assert from "node:assert/strict";
import { isType } from "./_client.ts";
import { startTestServer, type TestServer } from "./_server.ts";
import { ManualClock, systemClock } from "../lib/clock.ts";
import { signGuest } from "../lib/auth.ts";
import { stallProbe } from "./_stall.ts";
import { until } from "./_wait.ts";

async function welcome(server: TestServer, query = "") {
  const c = await server.client(query);
  return { c, w: c.welcome as { user: { id: string; name: string }; guest?: string } };
}

Deno.test("guest token: the same guest again with it; a new one without, or with a bad one", async (t) => {
  await using server = await startTestServer();
  const { c: plain, w: none } = await welcome(server, "?name=Ann");
  assert.equal(none.guest, undefined, "no token for a client that keeps none (it did not ask with ?guest=)");
  await plain.close();
  const { c: first, w } = await welcome(server, "?name=Ann&guest=");
  assert.match(w.user.id, /^guest-/);
  assert.equal(typeof w.guest, "string");
  await first.close();

  await t.step("back with its token: same id and name, and a fresh token", async () => {
    const { c, w: again } = await welcome(server, `?guest=${encodeURIComponent(w.guest ?? "")}`);
    assert.deepEqual(again.user, w.user);
    assert.equal(typeof again.guest, "string");
    await c.close();
  });

  await t.step("?name= renames it, the id stays", async () => {
    const { c, w: renamed } = await welcome(server, `?name=Annie&guest=${encodeURIComponent(w.guest ?? "")}`);
    assert.deepEqual(renamed.user, { id: w.user.id, name: "Annie" });
    await c.close();
  });

  await t.step("forged, another server's, expired, oversized or garbage: a new guest, no error", async () => {
    const forged = `${(w.guest ?? "").slice(0, -4)}AAAA`;
    const foreign = signGuest(w.user, "another-servers-secret", systemClock);
    const clock = new ManualClock(Date.now() - 31 * 86_400_000);
    const expired = signGuest(w.user, server.config.guestSecret, clock);
    const notGuest = signGuest({ id: "admin", name: "Admin" }, server.config.guestSecret, systemClock);
    for (const token of [forged, foreign, expired, notGuest, "x".repeat(5000), "not.a.jwt", ""]) {
      const { c, w: fresh } = await welcome(server, `?guest=${encodeURIComponent(token)}`);
      assert.notEqual(fresh.user.id, w.user.id, token.slice(0, 20));
      assert.notEqual(fresh.user.id, "admin");
      await c.close();
    }
  });
});

Deno.test("with auth on there are no guests: no guest token", async () => {
  const { signToken } = await import("../lib/auth.ts");
  await using server = await startTestServer({ authSecret: "s" });
  const { c, w } = await welcome(server, `?token=${await signToken({ sub: "u1" }, "s")}`);
  assert.equal(w.guest, undefined);
  await c.close();
});

Deno.test("leave grace: a guest back within it is told to no one; gone for good, its leave comes after it", async () => {
  await using server = await startTestServer({ leaveGraceMs: 400 });
  const watcher = await server.joined("grace");
  const { c: ann, w } = await welcome(server, "?name=Ann&guest=");
  await ann.request({ type: "join", room: "grace" });
  const joined = await watcher.next(isType("member"));
  assert.deepEqual([joined.event, joined.user.id], ["join", w.user.id]);
  // A reload: the socket goes, a new one comes back with the token and joins again.
  await ann.close();
  const { c: back } = await welcome(server, `?guest=${encodeURIComponent(w.guest ?? "")}`);
  await back.request({ type: "join", room: "grace" });
  const nothing = await watcher.next(isType("member"), 900).catch(() => undefined);
  assert.equal(nothing, undefined, "no leave and join pair");
  const members = await server.hub.presence("grace");
  assert.equal(members.filter((m) => m.id === w.user.id).length, 1, "listed once");
  // Gone for good: the leave is told once the grace has passed.
  const closedAt = Date.now();
  await back.close();
  const left = await watcher.next(isType("member"), 3000);
  assert.deepEqual([left.event, left.user.id], ["leave", w.user.id]);
  assert.ok(Date.now() - closedAt >= 350, `after the grace (${Date.now() - closedAt} ms)`);
  await watcher.close();
});

Deno.test("an explicit leave is told at once, grace or not; a stopping server makes the waiting leaves", async () => {
  await using server = await startTestServer({ leaveGraceMs: 60_000 });
  const watcher = await server.joined("now");
  const bob = await server.joined("now", "?name=Bob");
  const join = await watcher.next(isType("member"));
  assert.equal(join.event, "join");
  await bob.request({ type: "leave", room: "now" });
  const left = await watcher.next(isType("member"), 1000);
  assert.equal(left.event, "leave");
  const cy = await server.joined("now", "?name=Cy");
  await watcher.next(isType("member"));
  await cy.close();
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal((await server.hub.presence("now")).length, 2, "Cy is still a member during the grace");
  server.hub.close();
  await server.hub.presenceWritten();
  assert.deepEqual(await server.hub.presence("now"), [], "closing made the waiting leave");
  await watcher.close();
  await bob.close();
});

Deno.test("SSE readers are not members unless they ask with ?presence=1", async () => {
  await using server = await startTestServer();
  const watcher = await server.joined("readers");
  const silent = await server.fetch("/events?room=readers&name=Reader");
  const reader = silent.body!.getReader();
  await reader.read();
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.deepEqual((await server.hub.presence("readers")).map((m) => m.name).sort(), [watcher.welcome?.user.name]);
  const none = await watcher.next(isType("member"), 300).catch(() => undefined);
  assert.equal(none, undefined, "no member event for a reader");
  const member = await server.fetch("/events?room=readers&name=Listed&presence=1");
  const listed = member.body!.getReader();
  const event = await watcher.next(isType("member"), 2000);
  assert.deepEqual([event.event, event.user.name], ["join", "Listed"]);
  await reader.cancel();
  await listed.cancel();
  await watcher.close();
});

Deno.test("a flood of connects with forged or oversized guest tokens: new guests, the loop never held", async () => {
  await using server = await startTestServer({ connectBurst: 10_000, maxConnectionsPerIp: 10_000 });
  using probe = stallProbe();
  const tokens = ["x".repeat(1024), "y".repeat(5000), `${"a".repeat(40)}.${"b".repeat(400)}.${"c".repeat(43)}`, ""];
  const welcomes = await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      new Promise<{ id: string; guest?: string }>((resolve, reject) => {
        const ws = new WebSocket(server.ws(`/ws?guest=${encodeURIComponent(tokens[i % tokens.length] ?? "")}`));
        ws.onmessage = (e) => {
          const frame = JSON.parse(e.data as string);
          ws.close();
          resolve({ id: frame.user.id, guest: frame.guest });
        };
        ws.onerror = () => reject(new Error("socket failed"));
      })),
  );
  assert.ok(probe.stop() < 200, `the loop was held ${Math.round(probe.worst)} ms`);
  assert.equal(new Set(welcomes.map((w) => w.id)).size, 200, "each a new guest");
  assert.ok(welcomes.every((w) => typeof w.guest === "string"), "each given a real token");
  await until(() => server.admission.open === 0, 3000, "every slot back");
});
