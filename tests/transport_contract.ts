/**
 * The transport contract (routes/transports/transport.ts), run against every transport
 * (tests/transports_test.ts) through its driver (tests/_transport_drivers.ts): what any client
 * protocol must do, and its hostile half, what no client of it may do. Steps a protocol can't take
 * (SSE doesn't publish, raw rooms don't ack) are left out for it, as its driver's `can` says.
 */
import assert from "node:assert/strict";
import { signToken } from "../lib/auth.ts";
import type { Position } from "../lib/protocol.ts";
import { postJson, startTestServer, type TestServer, type TestServerOptions } from "./_server.ts";
import { until } from "./_wait.ts";
import { stallProbe } from "./_stall.ts";
import { PUSHER_APP } from "./_pusher.ts";
import type { DriverClient, Seen, TransportDriver } from "./_transport_drivers.ts";
import { startBackend } from "./_backend.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const SECRET = "transport-contract-secret";

const isMessage = (room: string) => (s: Seen) => s.kind === "message" && s.room === room;
const isJoined = (room: string) => (s: Seen) => s.kind === "joined" && s.room === room;
const isClosed = (s: Seen) => s.kind === "closed";

/** A backend's publish over HTTP (loopback: no key needed). */
async function publish(server: TestServer, room: string, data: unknown): Promise<Position & { offset: number }> {
  const response = await postJson(server, `/api/rooms/${room}/messages`, { data });
  assert.equal(response.status, 201);
  return await response.json();
}

/** A client of `driver` that is in `room` (its `joined` read). */
async function inRoom(
  driver: TransportDriver,
  server: TestServer,
  room: string,
  options: { since?: Position; token?: string } = {},
): Promise<DriverClient> {
  const client = driver.connect(server, { room, ...options });
  assert.ok(await client.opened, `${driver.name} connected`);
  if (driver.can.joins) client.join(room, options.since);
  await client.next(isJoined(room));
  return client;
}

async function closeAll(clients: DriverClient[]): Promise<void> {
  for (const client of clients) client.close();
  await Promise.all(clients.map((client) => client.next(isClosed).catch(() => {})));
}

export function transportContract(driver: TransportDriver): void {
  const { name, can } = driver;
  const withServer = async (options: TestServerOptions, body: (server: TestServer) => Promise<void>) => {
    const server = await startTestServer({ pusherApps: [PUSHER_APP], ...options });
    try {
      await body(server);
    } finally {
      await server.drain();
    }
  };

  Deno.test({
    name: `${name}: transport contract`,
    ...opts,
    async fn(t) {
      await t.step(
        "in a room, it gets what is published there, each once, in order",
        () =>
          withServer({}, async (server) => {
            const client = await inRoom(driver, server, "c1");
            for (let i = 1; i <= 3; i++) await publish(server, "c1", `m${i}`);
            const got = [];
            for (let i = 1; i <= 3; i++) got.push(await client.next(isMessage("c1")));
            assert.deepEqual(got.map((s) => s.kind === "message" && s.data), ["m1", "m2", "m3"]);
            await closeAll([client]);
          }),
      );

      if (can.publish) {
        await t.step(
          `its publishes are stored and reach the room${can.acks ? ", acked with their offset" : ""}`,
          () =>
            withServer({}, async (server) => {
              const watcher = await inRoom(driver, server, "c2");
              const client = await inRoom(driver, server, "c2");
              client.publish("c2", "hello");
              if (can.acks) assert.deepEqual(await client.next((s) => s.kind === "ack"), { kind: "ack", offset: 1 });
              const got = await watcher.next(isMessage("c2"));
              assert.equal(got.kind === "message" && got.data, "hello");
              const stored = await server.hub.history("c2", { limit: 10 });
              assert.deepEqual(stored.messages.map((m) => [m.offset, m.data]), [[1, "hello"]]);
              await closeAll([client, watcher]);
            }),
        );
      }

      if (can.recovers) {
        await t.step(
          "back with its last position, it gets exactly what it missed, in order",
          () =>
            withServer({}, async (server) => {
              const first = await publish(server, "c3", "seen");
              const client = await inRoom(driver, server, "c3");
              await closeAll([client]);
              for (const data of ["a", "b", "c"]) await publish(server, "c3", data);
              const back = await inRoom(driver, server, "c3", { since: { epoch: first.epoch, offset: first.offset } });
              const got = [];
              for (let i = 0; i < 3; i++) got.push(await back.next(isMessage("c3")));
              assert.deepEqual(got.map((s) => s.kind === "message" && [s.data, s.offset]), [["a", 2], ["b", 3], [
                "c",
                4,
              ]]);
              await closeAll([back]);
            }),
        );
      }

      await t.step(
        "admission: one slot per client connection, the per-address cap holds, a slot comes back",
        () =>
          withServer({ maxConnectionsPerIp: 2 }, async (server) => {
            const a = await inRoom(driver, server, "c4");
            const b = await inRoom(driver, server, "c4");
            assert.equal(server.admission.open, 2, "exactly one slot each");
            assert.equal(server.hub.connectionCount, 2, "exactly one hub connection each");
            assert.equal(server.metrics.transportConnections.get(name), 2, "counted under its transport in /metrics");
            const c = driver.connect(server, { room: "c4" });
            assert.equal(await c.opened, false, "the third is refused");
            assert.equal((await c.next((s) => s.kind === "error")).kind === "error", true);
            await closeAll([a]);
            await until(() => server.admission.open === 1, 3000, "the slot to come back");
            const d = await inRoom(driver, server, "c4");
            assert.equal(server.admission.open, 2);
            await closeAll([b, c, d]);
            await until(() => server.admission.open === 0 && server.hub.connectionCount === 0, 3000, "every slot back");
          }),
      );

      await t.step(
        "the connect rate holds",
        () =>
          withServer({ connectBurst: 2, connectWindowMs: 60_000 }, async (server) => {
            const clients = [await inRoom(driver, server, "c5"), await inRoom(driver, server, "c5")];
            const refused = driver.connect(server, { room: "c5" });
            assert.equal(await refused.opened, false);
            assert.equal(server.metrics.refused.get("rate"), 1);
            await closeAll([...clients, refused]);
          }),
      );

      await t.step(
        "a flood of connects is refused past the rate, never holds the loop, and leaves no slot behind",
        () =>
          withServer({ connectBurst: 20, connectWindowMs: 60_000 }, async (server) => {
            using probe = stallProbe();
            const clients = Array.from({ length: 200 }, () => driver.connect(server, { room: "c5b" }));
            const opened = await Promise.all(clients.map((client) => client.opened));
            assert.ok(probe.stop() < 200, `the loop was held ${Math.round(probe.worst)} ms`);
            assert.equal(opened.filter(Boolean).length, 20, "the burst is let in, no more");
            assert.ok(server.admission.open <= 20, `${server.admission.open} slots taken`);
            assert.equal(server.metrics.refused.get("rate"), 180);
            await closeAll(clients);
            await until(() => server.admission.open === 0 && server.hub.connectionCount === 0, 5000, "every slot back");
          }),
      );

      if (can.tokens) {
        await t.step(
          "with auth on, no token opens nothing; a token's user is who connects",
          () =>
            withServer({ authSecret: SECRET }, async (server) => {
              const anonymous = driver.connect(server, { room: "c6" });
              assert.equal(await anonymous.opened, false);
              assert.equal((await anonymous.next((s) => s.kind === "error")).kind, "error");
              await until(() => server.admission.open === 0, 3000, "the refused client's slot back");
              assert.equal(server.hub.connectionCount, 0);
              const token = await signToken({ sub: "ana", name: "Ana" }, SECRET);
              const ana = await inRoom(driver, server, "c6", { token });
              assert.deepEqual((await server.hub.presence("c6")).map((m) => m.id), ["ana"]);
              await closeAll([ana, anonymous]);
            }),
        );
      }

      await t.step(
        "no closed connection stays a member, however its last frames and its close cross",
        () =>
          withServer({}, async (server) => {
            const clients = Array.from({ length: 10 }, () => driver.connect(server, { room: "c7" }));
            for (const client of clients) {
              await client.opened;
              client.join("c7");
              if (can.leave) client.leave("c7");
              client.join("c7");
              client.close();
            }
            await until(() => server.hub.connectionCount === 0, 3000, "every connection to go");
            await server.hub.presenceWritten();
            assert.deepEqual(await server.hub.presence("c7"), []);
          }),
      );

      if (can.floods) {
        await t.step(
          "a flood of frames never holds the event loop, and the server serves on",
          () =>
            withServer({}, async (server) => {
              const flooder = await inRoom(driver, server, "c8");
              using probe = stallProbe();
              flooder.flood(3000);
              // The flood guard ends it (rate_limited answers, then a close).
              assert.equal((await flooder.next(isClosed, 5000)).kind, "closed");
              assert.ok(probe.stop() < 200, `the loop was held ${Math.round(probe.worst)} ms`);
              const other = await inRoom(driver, server, "c8b");
              await publish(server, "c8b", "still");
              assert.ok(await other.next(isMessage("c8b")));
              await closeAll([other]);
            }),
        );
      }

      await t.step(
        "the app's backend decides its connect, its joins (implicit ones too) and its publishes",
        async () => {
          let users = 0;
          await using backend = startBackend({
            connect: () => ({ result: { user: `vetted-${++users}`, info: { name: "Vetted", plan: "pro" } } }),
            subscribe: (b) =>
              b.channel === "p-secret"
                ? { error: { code: 1403, message: "Not for you" } }
                : { result: { info: { role: "reader" } } },
            publish: (b) =>
              b.data === "bad" ? { error: { code: 1400, message: "No" } } : { result: { data: `clean:${b.data}` } },
          });
          await withServer({ proxy: backend.config() }, async (server) => {
            const client = await inRoom(driver, server, "p-open");
            const [connect] = backend.calledFor("connect");
            assert.equal(connect?.body.transport, name, "asked with its transport");
            const asked = backend.calledFor("subscribe").filter((call) => call.body.channel === "p-open");
            assert.equal(asked.length, 1, "its join asked once");
            if (name !== "sse") {
              const members = await server.hub.presence("p-open");
              assert.deepEqual(members.map((m) => [m.id, m.name, m.info]), [["vetted-1", "Vetted", {
                role: "reader",
              }]]);
            }
            const denied = driver.connect(server, { room: "p-secret" });
            if (can.joins) {
              assert.ok(await denied.opened);
              denied.join("p-secret");
            }
            // Refused in its own protocol (the code is the protocol's: forbidden, wamp.error.not_authorized…).
            assert.equal((await denied.next((s) => s.kind === "error")).kind, "error");
            assert.deepEqual(await server.hub.presence("p-secret"), []);
            if (can.publish) {
              const watcher = await inRoom(driver, server, "p-open");
              client.publish("p-open", "hello");
              const got = await watcher.next(isMessage("p-open"));
              assert.equal(got.kind === "message" && got.data, "clean:hello", "the backend's data, not the client's");
              client.publish("p-open", "bad");
              assert.equal((await client.next((s) => s.kind === "error")).kind, "error");
              const stored = await server.hub.history("p-open", { limit: 10 });
              assert.deepEqual(stored.messages.map((m) => m.data), ["clean:hello"]);
              await closeAll([watcher]);
            }
            backend.answers.connect = () => ({ disconnect: { code: 4403, reason: "Banned" } });
            const banned = driver.connect(server, { room: "p-open" });
            assert.equal(await banned.opened, false, "a connect the backend refuses is refused");
            await until(() => server.admission.open === 2 || server.admission.open === 1, 3000, "its slot back");
            await closeAll([client, denied, banned]);
            await until(() => server.admission.open === 0, 3000, "every slot back");
          });
        },
      );

      await t.step("a draining server closes it, saying it is going away", async () => {
        const server = await startTestServer({ pusherApps: [PUSHER_APP] });
        const client = await inRoom(driver, server, "c9");
        const drained = server.drain();
        const closed = await client.next(isClosed);
        await drained;
        if (closed.kind === "closed" && closed.code !== undefined) assert.equal(closed.code, driver.goingAway ?? 1001);
      });
    },
  });
}
