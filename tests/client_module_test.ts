/**
 * static/roomcast.js, the browser client module, against the real server (from Deno, which has
 * WebSocket): a token that expires is refreshed on the reconnect when `token` is a function, and a
 * publish too large for the server is rejected with `too_large`, matched by its ref, at once.
 */
import assert from "node:assert/strict";
import { RoomcastClient, RoomcastError } from "../static/roomcast.js";
import { postJson, startTestServer } from "./_server.ts";
import { signToken } from "../lib/auth.ts";
import { until } from "./_wait.ts";
import { startTcpProxy } from "./_tcp_proxy.ts";

Deno.test("roomcast.js: an expired token is refreshed on the reconnect when token is a function", async () => {
  await using server = await startTestServer({ authSecret: "s3cret-s3cret-s3cret-s3cret-s3cret" });
  let minted = 0;
  const token = async () => {
    minted++;
    const response = await postJson(server, "/api/tokens", { sub: "ann", name: "Ann", ttl: 1 });
    return (await response.json()).token as string;
  };
  const client = new RoomcastClient({ url: server.ws("/ws"), token, minDelay: 50, maxDelay: 100 });
  try {
    client.connect();
    await client.join("r");
    // The first token expires within 1-2 s: the client comes back open with a second one.
    await until(() => minted >= 2 && client.state === "open", 4000, "a reconnect with a fresh token");
  } finally {
    client.close();
  }
});

Deno.test("roomcast.js: a token that is a string and expires closes the client for good (nothing to refresh it with)", async () => {
  await using server = await startTestServer({ authSecret: "s3cret-s3cret-s3cret-s3cret-s3cret" });
  const response = await postJson(server, "/api/tokens", { sub: "bob", name: "Bob", ttl: 1 });
  const client = new RoomcastClient({ url: server.ws("/ws"), token: (await response.json()).token, minDelay: 50 });
  try {
    client.connect();
    // A token of ttl 1 can expire before the join is answered (its exp is whole seconds): the join
    // then fails as the client closes; either way the client ends closed, with the reason.
    const closed = new Promise<{ code?: number; reason?: string }>((resolve) =>
      client.addEventListener("state", (e) => {
        const detail = (e as CustomEvent).detail;
        if (detail.state === "closed") resolve(detail);
      })
    );
    const joined = await client.join("r").then(() => "joined", (error) => error.code);
    assert.ok(["joined", "closed"].includes(joined), `join: ${joined}`);
    await until(() => client.state === "closed", 4000, "closed once the token expired");
    assert.deepEqual(await closed, { state: "closed", code: 1008, reason: "Token expired" });
  } finally {
    client.close();
  }
});

Deno.test("a publish over the frame limit is refused with too_large and its ref; roomcast.js rejects at once", async () => {
  await using server = await startTestServer();
  const raw = await server.joined("big");
  const reply = await raw.request({ type: "publish", room: "big", data: "x".repeat(70_000) });
  await raw.close();
  assert.deepEqual([reply.type, reply.code], ["error", "too_large"]);
  const client = new RoomcastClient({ url: server.ws("/ws"), requestTimeout: 5000 });
  try {
    client.connect();
    await client.join("big");
    const started = Date.now();
    const error = await client.publish("big", "x".repeat(70_000)).then(() => null, (e) => e);
    assert.ok(error instanceof RoomcastError);
    assert.equal(error.code, "too_large");
    assert.ok(Date.now() - started < 2000, "not after the request timeout");
  } finally {
    client.close();
  }
});

Deno.test({
  name:
    "roomcast.js notices a dead network by itself: within probeAfter + probeTimeout idle, probeTimeout at a publish",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  await using server = await startTestServer();
  // A stalled network: the proxy stops forwarding and the connection stays open (no close, no reset).
  const proxy = startTcpProxy(Number(new URL(server.url).port), "ws");
  const client = new RoomcastClient({ url: `${proxy.url}/ws`, probeAfter: 400, probeTimeout: 300, minDelay: 100 });
  try {
    client.connect();
    await client.join("live");
    proxy.freeze();
    let start = performance.now();
    await until(() => client.state === "reconnecting", 3000, "idle: noticed");
    const idle = performance.now() - start;
    assert.ok(idle < 400 + 300 + 400, `idle: noticed after ${Math.round(idle)} ms`);
    proxy.thaw();
    await until(() => client.state === "open", 5000, "back");
    await client.join("live").catch(() => {});
    proxy.freeze();
    start = performance.now();
    const publish = client.publish("live", "into the void").then(() => undefined, (error: unknown) => error);
    await until(() => client.state === "reconnecting", 3000, "publish: noticed");
    const atPublish = performance.now() - start;
    assert.ok(atPublish < 300 + 250, `at a publish: noticed after ${Math.round(atPublish)} ms`);
    proxy.thaw();
    await until(() => client.state === "open", 5000, "back again");
    // Kept and sent again once back (with its key: stored once, whichever copy got there).
    const ack = await publish;
    assert.ok(!(ack instanceof Error), String(ack));
    const history = await (await server.fetch("/api/rooms/live/messages")).json();
    assert.deepEqual(history.messages.map((m: { data: string }) => m.data), ["into the void"]);
  } finally {
    client.close();
    proxy.close();
  }
});

async function stored(server: { fetch(path: string): Promise<Response> }, room: string): Promise<unknown[]> {
  const page = await (await server.fetch(`/api/rooms/${room}/messages`)).json();
  return page.messages.map((m: { data: unknown }) => m.data);
}

Deno.test({
  name:
    "roomcast.js: publishes made offline or in flight at a drop are sent once back, stored once (token user, guest)",
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  const secret = "outbox-secret";
  await using server = await startTestServer({ authSecret: secret });
  const port = Number(new URL(server.url).port);

  await t.step(
    "a token user's publish in flight when the network stalls: resent with its key, stored once",
    async () => {
      const proxy = startTcpProxy(port, "ws");
      const token = await signToken({ sub: "ann" }, secret);
      const client = new RoomcastClient({
        url: `${proxy.url}/ws`,
        token,
        probeAfter: 300,
        probeTimeout: 300,
        minDelay: 100,
      });
      try {
        client.connect();
        await client.join("out-a");
        proxy.freeze();
        const sent = client.publish("out-a", "in flight");
        await until(() => client.state === "reconnecting", 3000, "noticed");
        // Thawed, the stalled connection's bytes may still reach the server: then the resend is a repeat.
        proxy.thaw();
        const ack = await sent;
        assert.equal(ack.offset, 1);
        assert.deepEqual(await stored(server, "out-a"), ["in flight"]);
      } finally {
        client.close();
        proxy.close();
      }
    },
  );

  await t.step("made while reconnecting: kept, then sent once the room is joined again", async () => {
    const proxy = startTcpProxy(port, "ws");
    const token = await signToken({ sub: "bob" }, secret);
    const client = new RoomcastClient({ url: `${proxy.url}/ws`, token, minDelay: 300 });
    try {
      client.connect();
      await client.join("out-b");
      proxy.cut();
      await until(() => client.state === "reconnecting", 3000, "dropped");
      const queued = [client.publish("out-b", "one"), client.publish("out-b", "two")];
      proxy.restore();
      const acks = await Promise.all(queued);
      assert.deepEqual(acks.map((a) => a.offset), [1, 2], "in the order they were made");
      assert.deepEqual(await stored(server, "out-b"), ["one", "two"]);
    } finally {
      client.close();
      proxy.close();
    }
  });

  await t.step("close() rejects what waits, with closed", async () => {
    const proxy = startTcpProxy(port, "ws");
    const token = await signToken({ sub: "cy" }, secret);
    const client = new RoomcastClient({ url: `${proxy.url}/ws`, token, minDelay: 5000 });
    client.connect();
    await client.join("out-c");
    proxy.cut();
    await until(() => client.state === "reconnecting", 3000, "dropped");
    const waiting = client.publish("out-c", "never").then(() => undefined, (e: unknown) => e);
    client.close();
    const error = await waiting;
    assert.ok(error instanceof RoomcastError && error.code === "closed", String(error));
    proxy.close();
    assert.deepEqual(await stored(server, "out-c"), []);
  });
});

Deno.test({
  name: "roomcast.js: a guest's publish lost with its connection is sent again after the replay shows it missing",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  await using server = await startTestServer();
  const proxy = startTcpProxy(Number(new URL(server.url).port), "ws");
  const client = new RoomcastClient({ url: `${proxy.url}/ws`, minDelay: 200 });
  try {
    client.connect();
    await client.join("guest-out");
    await client.publish("guest-out", "before");
    const other = await postJson(server, "/api/rooms/guest-out/messages", { data: "meanwhile" });
    await other.body?.cancel();
    await until(async () => (await stored(server, "guest-out")).length === 2, 2000, "stored");
    // The connection is cut with the publish on its way: it never reaches the server.
    proxy.freeze();
    const lost = client.publish("guest-out", "lost on the way");
    proxy.cut();
    proxy.thaw();
    await until(() => client.state === "reconnecting", 3000, "dropped");
    proxy.restore();
    const ack = await lost;
    assert.equal(ack.offset, 3);
    assert.deepEqual(await stored(server, "guest-out"), ["before", "meanwhile", "lost on the way"]);
  } finally {
    client.close();
    proxy.close();
  }
});
