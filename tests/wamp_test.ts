/**
 * WAMP v2 against roomcast with autobahn 26 (under Deno) and wampy 8 (under Node): publish and
 * subscribe in rooms shared with /ws, exclude_me, acknowledge, recovery with `since`, RPC between
 * clients (errors, a callee gone, a procedure registered twice, a call to nobody), WAMP-Ticket auth
 * with the rooms claim, and realms.
 */
import assert from "node:assert/strict";
import { signToken } from "../lib/auth.ts";
import { isType } from "./_client.ts";
import { postJson, startTestServer } from "./_server.ts";
import { autobahnSession, closeSession, RawWamp, type Session } from "./_wamp.ts";
import { quiet, until } from "./_wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  { name: "WAMP: publish and subscribe in rooms shared with /ws; exclude_me; acknowledge", ...opts },
  async (t) => {
    await using server = await startTestServer();
    const a: Session = await autobahnSession(server);
    const b: Session = await autobahnSession(server);
    const ws = await server.joined("chat");
    try {
      const atA: unknown[][] = [];
      const atB: unknown[][] = [];
      await a.subscribe("chat", (args: unknown[]) => atA.push(args));
      await b.subscribe("chat", (args: unknown[]) => atB.push(args));

      await t.step("a PUBLISH is stored and reaches the others, not the publisher; PUBLISHED when asked", async () => {
        const published = await b.publish("chat", ["hello"], {}, { acknowledge: true });
        assert.equal(typeof published.id, "number");
        await until(() => atA.length === 1, 3000, "a's event");
        assert.deepEqual(atA[0], ["hello"]);
        const m = await ws.next(isType("message"));
        assert.deepEqual([m.data, m.offset], ["hello", 1]);
        await quiet(200, "b must not get its own event");
        assert.deepEqual(atB, []);
      });

      await t.step("exclude_me: false gives the publisher its own event", async () => {
        await b.publish("chat", ["mine too"], {}, { acknowledge: true, exclude_me: false });
        await until(() => atB.length === 1, 3000, "b's own event");
        assert.deepEqual(atB[0], ["mine too"]);
        await ws.next(isType("message"));
        await until(() => atA.length === 2, 3000, "a's second event");
      });

      await t.step("a /ws publish and an HTTP publish reach WAMP as args[0]; kwargs round-trip", async () => {
        await ws.request({ type: "publish", room: "chat", data: { n: 3 } });
        await (await postJson(server, "/api/rooms/chat/messages", { data: "four" })).body?.cancel();
        await until(() => atA.length === 4, 3000, "two more");
        assert.deepEqual(atA.slice(2), [[{ n: 3 }], ["four"]]);
        const kw: unknown[] = [];
        await a.subscribe("kw", (args: unknown[], kwargs: unknown) => kw.push([args, kwargs]));
        await b.publish("kw", [1, 2], { x: true }, { acknowledge: true });
        await until(() => kw.length === 1, 3000, "the kwargs event");
        assert.deepEqual(kw[0], [[1, 2], { x: true }]);
      });

      await t.step("EVENT details carry the room position", async () => {
        const raw = new RawWamp(server);
        await raw.hello();
        raw.send([32, 1, {}, "chat"]);
        const [, , subscription] = await raw.next(33);
        await ws.request({ type: "publish", room: "chat", data: "positioned" });
        const event = await raw.next(36);
        assert.equal(event[1], subscription);
        const details = event[3] as { offset: number; epoch: string; topic: string };
        assert.equal(details.offset, 5);
        assert.equal(details.topic, "chat");
        assert.ok(details.epoch);
        raw.socket.close();
      });
    } finally {
      closeSession(a);
      closeSession(b);
      await ws.close();
    }
  },
);

Deno.test({ name: "WAMP: SUBSCRIBE with options.since recovers what was missed", ...opts }, async () => {
  await using server = await startTestServer();
  const first = await (await postJson(server, "/api/rooms/news/messages", { data: "m1" })).json();
  for (const data of ["m2", "m3"]) await (await postJson(server, "/api/rooms/news/messages", { data })).body?.cancel();
  const raw = new RawWamp(server);
  await raw.hello();
  raw.send([32, 7, { since: `${first.epoch}:1` }, "news"]);
  await raw.next(33);
  const events = [await raw.next(36), await raw.next(36)];
  assert.deepEqual(events.map((e) => (e[4] as unknown[])[0]), ["m2", "m3"]);
  raw.socket.close();
});

Deno.test(
  { name: "WAMP: RPC between clients: results, errors, duplicates, nobody, a callee gone", ...opts },
  async (t) => {
    await using server = await startTestServer();
    const callee: Session = await autobahnSession(server);
    const caller: Session = await autobahnSession(server);
    try {
      await callee.register("add", (args: number[]) => (args[0] ?? 0) + (args[1] ?? 0));
      await callee.register("fail", () => {
        throw new Error("boom");
      });
      await t.step("CALL → INVOCATION → YIELD → RESULT", async () => {
        assert.equal(await caller.call("add", [2, 3]), 5);
      });
      await t.step("a callee's error reaches the caller", async () => {
        await assert.rejects(caller.call("fail", []), (e: { error: string }) => /runtime_error|error/.test(e.error));
      });
      await t.step("a second REGISTER of a procedure is procedure_already_exists", async () => {
        await assert.rejects(caller.register("add", () => 0), (e: { error: string }) => {
          assert.equal(e.error, "wamp.error.procedure_already_exists");
          return true;
        });
      });
      await t.step("a call to nobody is no_such_procedure", async () => {
        await assert.rejects(caller.call("nobody.here", []), (e: { error: string }) => {
          assert.equal(e.error, "wamp.error.no_such_procedure");
          return true;
        });
      });
      await t.step("a callee that goes: its pending call fails at once, its procedures are gone", async () => {
        await callee.register("slow", () => new Promise(() => {}));
        const pending = caller.call("slow", []);
        await quiet(100, "the invocation reaches the callee");
        closeSession(callee);
        await assert.rejects(pending, (e: { error: string }) => {
          assert.equal(e.error, "wamp.error.canceled");
          return true;
        });
        await until(
          async () => {
            try {
              await caller.call("add", [1, 1]);
              return false;
            } catch (e) {
              return (e as { error: string }).error === "wamp.error.no_such_procedure";
            }
          },
          3000,
          "add unregistered",
        );
      });
    } finally {
      closeSession(caller);
      closeSession(callee);
    }
  },
);

Deno.test(
  { name: "WAMP with auth: WAMP-Ticket, the rooms claim, ABORT without a ticket; realms", ...opts },
  async (t) => {
    const secret = "wamp-secret-wamp-secret-";
    await using server = await startTestServer({ authSecret: secret, wampRealms: ["realm1"] });
    const token = await signToken({ sub: "ann", name: "Ann", rooms: ["team-*"] }, secret);

    await t.step("no ticket: ABORT not_authorized", async () => {
      await assert.rejects(autobahnSession(server), /WAMP closed/);
    });
    await t.step("a ticket: welcomed as the token's user; a room outside the claim is an ERROR", async () => {
      const session: Session = await autobahnSession(server, { ticket: token });
      assert.equal(session.welcome.authid, "ann");
      await session.subscribe("team-a", () => {});
      assert.deepEqual((await server.hub.presence("team-a")).map((m) => m.id), ["ann"]);
      await assert.rejects(session.subscribe("secret", () => {}), (e: { error: string }) => {
        assert.equal(e.error, "wamp.error.not_authorized");
        return true;
      });
      closeSession(session);
    });
    await t.step("?token= is the identity: no ticket asked, even for a token that grants no room", async () => {
      const none = await signToken({ sub: "cy", name: "Cy", rooms: [] }, secret);
      const raw = new RawWamp(server, `?token=${none}`);
      const welcome = await raw.hello();
      assert.equal((welcome[2] as { authid: string }).authid, "cy");
      raw.send([32, 1, {}, "team-a"]);
      assert.equal((await raw.next(8))[4], "wamp.error.not_authorized");
      raw.socket.close();
    });
    await t.step("a bad ticket: ABORT authentication_failed", async () => {
      await assert.rejects(autobahnSession(server, { ticket: "not-a-jwt" }), /WAMP closed/);
    });
    await t.step("another realm: ABORT no_such_realm", async () => {
      const raw = new RawWamp(server, `?token=${token}`);
      await raw.opened;
      raw.send([1, "elsewhere", {}]);
      assert.equal((await raw.next(3))[2], "wamp.error.no_such_realm");
      await raw.closed;
    });
  },
);

Deno.test({ name: "wampy 8 in Node: publish, subscribe and RPC with autobahn", ...opts }, async () => {
  await using server = await startTestServer();
  const dir = `${Deno.env.get("HOME") ?? "/tmp"}/.cache/roomcast-test-npm/wampy8`;
  await Deno.mkdir(dir, { recursive: true });
  try {
    await Deno.stat(`${dir}/node_modules/wampy/package.json`);
  } catch {
    const install = await new Deno.Command("npm", {
      args: ["install", "--no-audit", "--no-fund", "--silent", "--prefix", dir, "wampy@8", "ws@8"],
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.equal(install.code, 0, new TextDecoder().decode(install.stderr));
  }
  await Deno.copyFile(new URL("./node/wampy_client.mjs", import.meta.url), `${dir}/client.mjs`);
  const helper: Session = await autobahnSession(server);
  await helper.register("sum", (args: number[]) => (args[0] ?? 0) + (args[1] ?? 0));
  const child = new Deno.Command("node", {
    args: [`${dir}/client.mjs`, server.ws("/wamp")],
    stdout: "piped",
    stderr: "piped",
  })
    .spawn();
  const lines: string[] = [];
  const reading = (async () => {
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      lines.push(...chunk.split("\n").filter(Boolean));
    }
  })();
  try {
    await until(
      () => lines.some((l) => l.includes('"ready"') || l.includes('"error"')),
      15_000,
      () => lines.join("\n"),
    );
    assert.ok(!lines.some((l) => l.includes('"error"')), lines.join("\n"));
    await (await postJson(server, "/api/rooms/wampy.room/messages", { data: "for wampy" })).body?.cancel();
    assert.deepEqual(await helper.call("echo", ["ping"]), "ping");
    const { code } = await child.status;
    await reading;
    assert.equal(code, 0, lines.join("\n"));
    const result = JSON.parse(lines.at(-1) ?? "{}");
    assert.deepEqual(result.sum, [5]);
    assert.equal(result.events[0].args[0], "for wampy");
    assert.equal(typeof result.events[0].details.offset, "number");
    assert.deepEqual(result.echoed, ["ping"]);
    const stored = await server.hub.history("wampy.room", { limit: 10 });
    assert.deepEqual(stored.messages.map((m) => m.data), ["from wampy", "for wampy"]);
  } finally {
    closeSession(helper);
    try {
      child.kill();
    } catch { /* ended */ }
  }
});
