/**
 * Pusher Channels against roomcast with the real libraries: pusher-js 8 as the client, the `pusher`
 * server SDK for triggers, channel authorization and the HTTP API; raw sockets for what the
 * libraries won't send. Rooms are shared: a Pusher channel is the roomcast room of its name.
 */
import assert from "node:assert/strict";
import { isType } from "./_client.ts";
import {
  client,
  collect,
  connected,
  nextEvent,
  type Pusher,
  PUSHER_APP,
  RawPusher,
  sdk,
  subscribed,
} from "./_pusher.ts";
import { postJson, startTestServer, type TestServer } from "./_server.ts";
import { quiet, until } from "./_wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const apps = [PUSHER_APP];

async function withPusher(body: (server: TestServer, clients: Pusher[]) => Promise<void>, options = {}) {
  const server = await startTestServer({ pusherApps: apps, ...options });
  const clients: Pusher[] = [];
  try {
    await body(server, clients);
  } finally {
    for (const c of clients) c.disconnect();
    await server.drain();
  }
}

Deno.test({ name: "pusher-js: public channels share rooms with every other client", ...opts }, async (t) => {
  await withPusher(async (server, clients) => {
    const api = sdk(server);
    const alice = client(server);
    clients.push(alice);
    await connected(alice);
    assert.match(alice.connection.socket_id, /^\d+\.\d+$/);
    const news = await subscribed(alice, "news");
    const ws = await server.joined("news");

    await t.step("a trigger is stored with an offset and reaches pusher-js and /ws", async () => {
      const got = nextEvent(news, "breaking");
      const response = await api.trigger("news", "breaking", { headline: "hi" });
      assert.equal(response.status, 200);
      assert.deepEqual(await response.json(), {});
      assert.deepEqual(await got, { headline: "hi" });
      const m = await ws.next(isType("message"));
      assert.deepEqual([m.offset, m.data], [1, { event: "breaking", data: { headline: "hi" } }]);
      const stored = await server.hub.history("news", { limit: 5 });
      assert.deepEqual(stored.messages.map((s) => s.offset), [1]);
    });

    await t.step("a /ws publish and an HTTP API publish reach pusher-js as `message`", async () => {
      const seen = collect(news, "message");
      assert.equal((await ws.request({ type: "publish", room: "news", data: { text: "from ws" } })).type, "ack");
      await (await postJson(server, "/api/rooms/news/messages", { data: "plain text" })).body?.cancel();
      await until(() => seen.length === 2, 3000, "two messages");
      assert.deepEqual(seen, [{ text: "from ws" }, "plain text"]);
    });

    await t.step("a trigger's data that is not JSON stays a string", async () => {
      const got = nextEvent(news, "raw");
      await api.trigger("news", "raw", "not json {");
      assert.equal(await got, "not json {");
    });

    await t.step("socket_id excludes the triggering connection only", async () => {
      const bob = client(server);
      clients.push(bob);
      await connected(bob);
      const bobNews = await subscribed(bob, "news");
      const atAlice = collect(news, "excluded");
      const atBob = nextEvent(bobNews, "excluded");
      await api.trigger("news", "excluded", { n: 1 }, { socket_id: alice.connection.socket_id });
      assert.deepEqual(await atBob, { n: 1 });
      await quiet(200, "alice must not get it");
      assert.deepEqual(atAlice, []);
    });

    await t.step("batch_events and info=subscription_count", async () => {
      const got = collect(news, "b");
      const response = await api.triggerBatch([
        { channel: "news", name: "b", data: "1" },
        { channel: "news", name: "b", data: "2", info: "subscription_count" },
      ]);
      assert.equal(response.status, 200);
      const body = await response.json();
      assert.equal(body.batch[1].subscription_count, 3, "alice, bob and the /ws client");
      await until(() => got.length === 2, 3000, "both batch events");
      assert.deepEqual(got, [1, 2]);
    });
    await ws.close();
  });
});

Deno.test({ name: "pusher-js: private and encrypted channels need the app's signature", ...opts }, async (t) => {
  await withPusher(async (server, clients) => {
    const api = sdk(server, PUSHER_APP, { encryptionMasterKeyBase64: btoa("a".repeat(32)) });
    const alice = client(server, { api });
    const bob = client(server, { api });
    clients.push(alice, bob);

    await t.step("a signed subscription succeeds; client events reach the others, not the sender", async () => {
      const a = await subscribed(alice, "private-team");
      const b = await subscribed(bob, "private-team");
      const atAlice = collect(a, "client-typing");
      const atBob = nextEvent(b, "client-typing");
      assert.equal(a.trigger("client-typing", { who: "alice" }), true);
      assert.deepEqual(await atBob, { who: "alice" });
      await quiet(200, "the sender must not get its own client event");
      assert.deepEqual(atAlice, []);
    });

    await t.step("a forged signature is refused with a subscription error", async () => {
      const forger = client(server, { api: sdk(server, { ...PUSHER_APP, secret: "not-the-secret" }) });
      clients.push(forger);
      await assert.rejects(subscribed(forger, "private-team"), (e: { detail?: { status?: number } }) => {
        assert.equal(e.detail?.status, 401);
        return true;
      });
    });

    await t.step("an encrypted trigger reaches pusher-js, which decrypts it; the server never could", async () => {
      const a = await subscribed(alice, "private-encrypted-vault");
      const got = nextEvent(a, "secret");
      await api.trigger("private-encrypted-vault", "secret", { pin: 1234 });
      assert.deepEqual(await got, { pin: 1234 });
      const stored = await server.hub.history("private-encrypted-vault", { limit: 1 });
      const data = JSON.stringify(stored.messages[0]?.data);
      assert.match(data, /ciphertext/);
      assert.doesNotMatch(data, /1234/);
    });
  });
});

Deno.test(
  { name: "pusher-js: presence channels list members once per user, across their connections", ...opts },
  async (t) => {
    await withPusher(async (server, clients) => {
      const ann = client(server, { user: { user_id: "ann", user_info: { name: "Ann" } } });
      const ann2 = client(server, { user: { user_id: "ann", user_info: { name: "Ann" } } });
      const bob = client(server, { user: { user_id: "bob", user_info: { name: "Bob", role: "admin" } } });
      clients.push(ann, ann2, bob);
      const room = "presence-lobby";

      await t.step("subscription_succeeded lists the members with their user_info", async () => {
        const a = await subscribed(ann, room);
        const added = collect<{ id: string; info: unknown }>(a, "pusher:member_added");
        const b = await subscribed(bob, room);
        const members = (b as unknown as {
          members: { count: number; me: { id: string }; each(f: (m: { id: string; info: unknown }) => void): void };
        }).members;
        assert.equal(members.count, 2);
        assert.equal(members.me.id, "bob");
        const seen: Record<string, unknown> = {};
        members.each((m) => seen[m.id] = m.info);
        assert.deepEqual(seen, { ann: { name: "Ann" }, bob: { name: "Bob", role: "admin" } });
        await until(() => added.length === 1, 3000, "ann hears bob");
        assert.deepEqual(added, [{ id: "bob", info: { name: "Bob", role: "admin" } }]);
        // Ann's second connection: no member event, the count stays 2.
        const bobAdded = collect(b, "pusher:member_added");
        await subscribed(ann2, room);
        await quiet(300, "no member_added for a second connection of ann");
        assert.deepEqual(bobAdded, []);
        const users = await (await sdk(server).get({ path: `/channels/${room}/users` })).json();
        assert.deepEqual(users.users.map((u: { id: string }) => u.id).sort(), ["ann", "bob"]);
        const info = await (await sdk(server).get({
          path: `/channels/${room}`,
          params: { info: "user_count,subscription_count" },
        })).json();
        assert.deepEqual(info, { occupied: true, user_count: 2, subscription_count: 3 });
        const list = await (await sdk(server).get({
          path: "/channels",
          params: { filter_by_prefix: "presence-", info: "user_count" },
        })).json();
        assert.deepEqual(list, { channels: { [room]: { user_count: 2 } } });
        const refused = await sdk(server).get({ path: "/channels", params: { info: "user_count" } }).catch((e) => e);
        assert.equal(refused.status, 400, "user_count needs the presence- prefix");
      });

      await t.step("member_removed comes when a user's last connection goes, once", async () => {
        const b = bob.channel(room);
        const removed = collect<{ id: string }>(b, "pusher:member_removed");
        ann.disconnect();
        await quiet(300, "ann still has a connection");
        assert.equal(removed.length, 0);
        ann2.disconnect();
        await until(() => removed.length === 1, 3000, "ann's removal");
        assert.equal(removed[0]?.id, "ann");
      });

      await t.step("a presence client event carries the sender's user_id", async () => {
        const carl = client(server, { user: { user_id: "carl" } });
        clients.push(carl);
        const c = await subscribed(carl, room);
        const got = new Promise<{ data: unknown; meta: unknown }>((resolve) =>
          bob.channel(room).bind("client-wave", (data: unknown, meta: unknown) => resolve({ data, meta }))
        );
        c.trigger("client-wave", { hi: true });
        const { data, meta } = await got;
        assert.deepEqual(data, { hi: true });
        assert.deepEqual(meta, { user_id: "carl" });
      });
    });
  },
);

Deno.test({ name: "pusher-js: cache channels give the last event, or cache_miss", ...opts }, async () => {
  await withPusher(async (server, clients) => {
    const api = sdk(server);
    const alice = client(server);
    clients.push(alice);
    const missed = new Promise<void>((resolve) =>
      alice.subscribe("cache-empty").bind("pusher:cache_miss", () => resolve())
    );
    await missed;
    await api.trigger("cache-prices", "price", { eur: 1 });
    await api.trigger("cache-prices", "price", { eur: 2 });
    const channel = alice.subscribe("cache-prices");
    assert.deepEqual(await nextEvent(channel, "price"), { eur: 2 });
  });
});

Deno.test({ name: "pusher-js: sign-in, events to a user, terminate_connections", ...opts }, async () => {
  await withPusher(async (server, clients) => {
    const api = sdk(server);
    const dana = client(server, { user: { user_id: "dana", user_info: { name: "Dana" } } });
    clients.push(dana);
    await connected(dana);
    const signedIn = new Promise<void>((resolve) => dana.bind("pusher:signin_success", () => resolve()));
    dana.signin();
    await signedIn;
    const got = new Promise((resolve) => dana.user.bind("note", resolve));
    await until(
      async () => {
        const r = await api.sendToUser("dana", "note", { text: "for dana" });
        return r.status === 200;
      },
      3000,
      "sendToUser accepted",
    );
    assert.deepEqual(await got, { text: "for dana" });
    assert.deepEqual((await server.hub.presence("lobby")).length, 0);

    const states: string[] = [];
    dana.connection.bind("state_change", (s: { current: string }) => states.push(s.current));
    const response = await api.terminateUserConnections("dana");
    assert.equal(response.status, 200);
    await until(() => states.includes("disconnected") || states.includes("failed"), 3000, "dana disconnected");
    await quiet(1500, "pusher-js must not reconnect after 4009");
    assert.equal(states.includes("connected"), false, `states: ${states}`);
  });
});

Deno.test({ name: "Pusher protocol: refusals and errors with the spec's codes", ...opts }, async (t) => {
  await withPusher(async (server) => {
    await t.step("an unknown key is 4001, a missing protocol 4008, an unsupported one 4007", async () => {
      for (
        const [path, code] of [
          ["/app/nope?protocol=7", 4001],
          ["/app/key1", 4008],
          ["/app/key1?protocol=4", 4007],
        ] as const
      ) {
        const raw = new RawPusher(server, path);
        const error = await raw.next("pusher:error");
        assert.equal((error.data as { code: number }).code, code, path);
        assert.equal((await raw.closed).code, code);
      }
    });

    await t.step("ping is answered with pong; a bad frame with pusher:error", async () => {
      const raw = new RawPusher(server);
      await raw.socketId();
      raw.send({ event: "pusher:ping", data: {} });
      await raw.next("pusher:pong");
      raw.send("{not json");
      assert.match(JSON.stringify((await raw.next("pusher:error")).data), /not valid JSON/);
      raw.close();
    });

    await t.step("client events: refused on public channels and unsubscribed ones, 4301 past the rate", async () => {
      const raw = new RawPusher(server);
      await raw.socketId();
      raw.send({ event: "pusher:subscribe", data: { channel: "open" } });
      await raw.next("pusher_internal:subscription_succeeded");
      raw.send({ event: "client-x", channel: "open", data: {} });
      assert.match(JSON.stringify((await raw.next("pusher:error")).data), /private and presence/);
      raw.send({ event: "client-x", channel: "private-elsewhere", data: {} });
      assert.match(JSON.stringify((await raw.next("pusher:error")).data), /subscribed/);
      raw.close();
    });
  });
});
