/**
 * Laravel Echo 2 with its Pusher broadcaster (over pusher-js 8) against roomcast: public channels
 * with `listen`, private channels, presence channels with `here`/`joining`/`leaving`, and whispers
 * (client events); the events triggered as a Laravel backend does, through the `pusher` SDK.
 */
import assert from "node:assert/strict";
import Echo from "laravel-echo";
import { client, connected, type Pusher, PUSHER_APP, sdk } from "./_pusher.ts";
import { startTestServer } from "./_server.ts";
import { until } from "./_wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  { name: "Laravel Echo: listen, private, presence (here, joining, leaving) and whispers", ...opts },
  async (t) => {
    await using server = await startTestServer({ pusherApps: [PUSHER_APP] });
    const api = sdk(server);
    const pushers: Pusher[] = [];
    const echoFor = (user: string) => {
      const pusher = client(server, { user: { user_id: user, user_info: { name: user.toUpperCase() } } });
      pushers.push(pusher);
      return new Echo({ broadcaster: "pusher", key: PUSHER_APP.key, client: pusher });
    };
    const ann = echoFor("ann");
    const bob = echoFor("bob");
    try {
      await connected(pushers[0] as Pusher);

      await t.step("a public channel's event, as a Laravel backend broadcasts it", async () => {
        const got = new Promise((resolve) => ann.channel("orders").listen(".OrderShipped", resolve));
        await until(() => (pushers[0] as Pusher).channel("orders")?.subscribed === true, 3000, "subscribed");
        await api.trigger("orders", "OrderShipped", { id: 42 });
        assert.deepEqual(await got, { id: 42 });
      });

      await t.step("Echo's namespaced event names (App\\Events\\…) on a private channel", async () => {
        const got = new Promise((resolve) => ann.private("orders.42").listen("OrderUpdated", resolve));
        await until(() => (pushers[0] as Pusher).channel("private-orders.42")?.subscribed === true, 3000, "subscribed");
        await api.trigger("private-orders.42", "App\\Events\\OrderUpdated", { status: "paid" });
        assert.deepEqual(await got, { status: "paid" });
      });

      await t.step("presence: here, joining, leaving, and a whisper", async () => {
        const here = new Promise<{ id: string; name: string }[]>((resolve) => ann.join("chat").here(resolve));
        assert.deepEqual((await here).map((u) => u.name), ["ANN"]);
        const joining = new Promise<{ name: string }>((resolve) => ann.join("chat").joining(resolve));
        const bobHere = new Promise<{ name: string }[]>((resolve) => bob.join("chat").here(resolve));
        assert.deepEqual((await bobHere).map((u) => u.name).sort(), ["ANN", "BOB"]);
        assert.equal((await joining).name, "BOB");
        const whisper = new Promise((resolve) => ann.join("chat").listenForWhisper("typing", resolve));
        bob.join("chat").whisper("typing", { typing: true });
        assert.deepEqual(await whisper, { typing: true });
        const leaving = new Promise<{ name: string }>((resolve) => ann.join("chat").leaving(resolve));
        bob.leave("chat");
        assert.equal((await leaving).name, "BOB");
      });
    } finally {
      ann.disconnect();
      bob.disconnect();
    }
  },
);
