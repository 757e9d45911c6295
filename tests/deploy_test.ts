/**
 * Deno Deploy's shape, locally (`deno task deploy-check`): several instances of the app that share
 * nothing but one Deno KV, run as Deploy runs them (no Workers, no --unstable-* flags: deno.json
 * lists the unstable APIs; DENO_DEPLOYMENT_ID set, so the KV's commits number messages). Two real
 * processes on one KV file serve one room: delivery both ways within the poll interval, one offset
 * sequence, member events, presence, exact recovery on the other instance, and an instance that is
 * killed leaves presence within its lease, its members' leaves told by the other.
 */
import assert from "node:assert/strict";
import { type Frame, isType, TestClient } from "./_client.ts";
import { type MainProcess, startMain, stopMain } from "./_process.ts";
import { startTestServer } from "./_server.ts";
import { until } from "./_wait.ts";

async function client(instance: MainProcess, name: string): Promise<TestClient<Frame>> {
  const c = await TestClient.json(`${instance.url.replace("http", "ws")}/ws?name=${name}`);
  c.welcome = await c.next(isType("welcome"));
  return c;
}

const members = async (instance: MainProcess, room: string): Promise<string[]> =>
  (await (await fetch(`${instance.url}/api/rooms/${room}/presence`)).json()).members.map((m: { name: string }) =>
    m.name
  )
    .sort();

Deno.test("two instances on one KV, as on Deno Deploy, serve one room", async () => {
  const dir = await Deno.makeTempDir();
  const env = {
    DENO_DEPLOYMENT_ID: "local-check",
    PORT: "0",
    HOSTNAME: "127.0.0.1",
    ROOMCAST_KV_PATH: `${dir}/platform.kv`,
    ROOMCAST_KV_POLL: "100ms",
    ROOMCAST_KV_LEASE: "1500ms",
    ROOMCAST_CONNECT_RATE: "0",
    // Closes are checked in presence at once (the grace is tested in tests/guest_identity_test.ts).
    ROOMCAST_LEAVE_GRACE: "0",
  };
  const one = await startMain(env, { noFlags: true, stderr: "piped" });
  const two = await startMain(env, { noFlags: true, stderr: "piped" });
  try {
    const ann = await client(one, "Ann");
    const bob = await client(two, "Bob");
    assert.notEqual(ann.welcome?.node, bob.welcome?.node);
    const joinedAnn = await ann.request({ type: "join", room: "d" });
    await bob.request({ type: "join", room: "d" });
    assert.equal((await ann.next(isType("member"), 2000)).user.name, "Bob", "a member join crossed instances");

    // One offset sequence, both ways, each within about the poll interval.
    const started = performance.now();
    const acks = [];
    for (let i = 1; i <= 6; i++) acks.push(await (i % 2 ? ann : bob).request({ type: "publish", room: "d", data: i }));
    assert.deepEqual(acks.map((a) => a.offset), [1, 2, 3, 4, 5, 6]);
    const atBob = [];
    const atAnn = [];
    for (let i = 0; i < 3; i++) atBob.push((await bob.next(isType("message"), 3000)).offset);
    for (let i = 0; i < 3; i++) atAnn.push((await ann.next(isType("message"), 3000)).offset);
    assert.deepEqual(atBob, [1, 3, 5]);
    assert.deepEqual(atAnn, [2, 4, 6]);
    const took = performance.now() - started;
    assert.ok(took < 3000, `six publishes crossed in ${Math.round(took)} ms`);

    // Presence is the same on both instances.
    assert.deepEqual(await members(one, "d"), ["Ann", "Bob"]);
    assert.deepEqual(await members(two, "d"), ["Ann", "Bob"]);

    // Bob comes back on the other instance and recovers exactly what he missed.
    await bob.close();
    const http = await fetch(`${two.url}/api/rooms/d/messages`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ data: "missed" }),
    });
    assert.equal((await http.json()).offset, 7, "an HTTP publish on either instance joins the sequence");
    assert.equal((await ann.next(isType("message"), 3000)).data, "missed");
    const back = await client(one, "Bob");
    const rejoined = await back.request({ type: "join", room: "d", since: { epoch: joinedAnn.epoch, offset: 6 } });
    assert.equal(rejoined.recovered, true);
    assert.equal((await back.next(isType("message"))).data, "missed");
    await back.close();

    // An instance that is killed (evicted) leaves presence within its lease, and its member's leave is told.
    const carl = await client(two, "Carl");
    await carl.request({ type: "join", room: "d" });
    assert.deepEqual(await members(one, "d"), ["Ann", "Carl"]);
    await stopMain(two, "SIGKILL");
    await carl.closed;
    // Its member's leave is told by the instance that finds the lapsed lease.
    const left = await ann.next((f) => f.type === "member" && f.event === "leave" && f.user.name === "Carl", 6000);
    assert.equal(left.room, "d");
    let seen: string[] = [];
    await until(async () => (seen = await members(one, "d")).length === 1, 5000, () => `one member left (${seen})`);
    assert.deepEqual(seen, ["Ann"]);
    await ann.close();
    assert.doesNotMatch(one.stderr(), /Uncaught|bug/);
  } finally {
    await stopMain(one);
    await stopMain(two, "SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
});

/** Two Deploy-mode instances in this process, each with its own handle on one KV file: there, as
 * on Deno Deploy's KV, `kv.watch` sees the other's writes (between processes on a local file it
 * does not). The poll is set to a minute, so what crosses within the test crossed by the watch. */
async function watchingPair(dir: string, kvWatchRooms: number) {
  const options = {
    kv: true,
    kvPath: `${dir}/platform.kv`,
    sequencer: "kv" as const,
    kvPollMs: 60_000,
    kvWatchRooms,
  };
  const one = await startTestServer(options);
  const two = await startTestServer(options);
  return {
    one,
    two,
    async [Symbol.asyncDispose]() {
      await one[Symbol.asyncDispose]();
      await two[Symbol.asyncDispose]();
    },
  };
}

Deno.test("instances watch the KV: messages, member events and directs cross at once, not at the next poll", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    await t.step("with watch", async () => {
      await using pair = await watchingPair(dir, 1000);
      const ann = await pair.one.joined("w", "?name=Ann");
      const bob = await pair.two.client("?name=Bob");
      await bob.request({ type: "join", room: "w" });
      assert.equal((await ann.next(isType("member"), 2000)).user.name, "Bob", "Bob's join crossed by the watch");

      const took: number[] = [];
      for (let i = 1; i <= 5; i++) {
        const sent = performance.now();
        const ack = await ann.request({ type: "publish", room: "w", data: i });
        const got = await bob.next(isType("message"), 2000);
        took.push(performance.now() - sent);
        assert.deepEqual([got.offset, got.data], [ack.offset, i]);
      }
      assert.ok(
        Math.max(...took) < 1000,
        `each crossed within a second, not the minute's poll: ${took.map(Math.round)}`,
      );

      const direct = await bob.request({ type: "direct", to: ann.welcome?.user.id, data: "psst" });
      assert.equal((await ann.next(isType("direct"), 2000)).id, direct.id, "a direct crossed by everybody's list");
      await Promise.all([ann.close(), bob.close()]);
    });

    await t.step("control: with watch off (ROOMCAST_KV_WATCH_ROOMS=0), nothing crosses before the poll", async () => {
      await using pair = await watchingPair(dir, 0);
      const ann = await pair.one.joined("c", "?name=Ann");
      const bob = await pair.two.joined("c", "?name=Bob");
      await ann.request({ type: "publish", room: "c", data: "slow" });
      await assert.rejects(bob.next(isType("message"), 1000));
      await Promise.all([ann.close(), bob.close()]);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Deploy mode refuses to start on a KV only this instance sees (no database assigned to the app)", async () => {
  // No ROOMCAST_KV_PATH: the platform's KV, which here is a SQLite file of this process's own, as
  // Deno Deploy silently hands an app with no database assigned.
  const main = new URL("../main.ts", import.meta.url).pathname;
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", main],
    env: { DENO_DEPLOYMENT_ID: "local-check", PORT: "0", HOSTNAME: "127.0.0.1" },
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(code, 1);
  assert.match(new TextDecoder().decode(stderr), /only this instance sees .*assign one in the Deno Deploy console/);
});

Deno.test("versionstamps tell a shared KV (Deno Deploy's commit versions) from an instance's own SQLite KV", async () => {
  const { sharedVersionstamp } = await import("../lib/engine/kv/open.ts");
  assert.equal(sharedVersionstamp("00000000000000020000"), false, "a fresh SQLite KV");
  assert.equal(sharedVersionstamp("000000000098967f0000"), false, "ten million commits of its own");
  assert.equal(sharedVersionstamp("0005f1a2b3c4d5e60000"), true, "a distributed KV's commit version");
  assert.equal(sharedVersionstamp("not-a-versionstamp"), false);
});
