/** Raw rooms: seed-tutorial clients on `/` and `/raw/:room`, and their interplay with JSON clients. */
import assert from "node:assert/strict";
import { isType, TestClient } from "./_client.ts";
import { startTestServer } from "./_server.ts";
import { until } from "./_wait.ts";

Deno.test("raw rooms", async (t) => {
  await using server = await startTestServer();

  await t.step("the seed client: new WebSocket(root), send(text), others get e.data as-is", async () => {
    const alice = await TestClient.raw(server.ws("/"));
    const bob = await TestClient.raw(server.ws("/"));
    const carol = await TestClient.raw(server.ws(""));
    await until(async () => (await server.hub.presence("lobby")).length === 3, 3000, "three raw members in lobby");
    alice.send("hello from alice");
    assert.equal(await bob.next(), "hello from alice");
    assert.equal(await carol.next(), "hello from alice");
    bob.send("  spaces and <b>html</b> stay as they are  ");
    assert.equal(await alice.next(), "  spaces and <b>html</b> stay as they are  ");
    assert.equal(await carol.next(), "  spaces and <b>html</b> stay as they are  ");
    assert.deepEqual(alice.unread, [], "the sender does not get its own text back");
    await Promise.all([alice.close(), bob.close(), carol.close()]);
  });

  await t.step("raw text is stored: JSON clients see it as a message with string data", async (t) => {
    const json = await server.joined("mixed", "?name=Json");
    const raw = await TestClient.raw(server.ws("/raw/mixed"));
    await json.next((f) => f.type === "member" && f.event === "join");
    raw.send("plain text");
    const m = await json.next(isType("message"));
    assert.equal(m.data, "plain text");
    assert.equal(m.room, "mixed");
    assert.equal(m.offset, 1);
    assert.match(m.from.id, /^guest-/);
    const history = await json.request({ type: "history", room: "mixed" });
    assert.deepEqual(history.messages.map((x: { data: unknown }) => x.data), ["plain text"]);

    await t.step("JSON messages reach raw clients as the string, or as JSON", async () => {
      await json.request({ type: "publish", room: "mixed", data: "a string" });
      assert.equal(await raw.next(), "a string");
      await json.request({ type: "publish", room: "mixed", data: { text: "hi", n: 1 } });
      assert.deepEqual(JSON.parse(await raw.next()), { text: "hi", n: 1 });
    });

    await t.step("raw clients get no JSON-protocol chatter (member events, signals, acks)", async () => {
      const other = await server.joined("mixed", "?name=Other");
      other.send({ type: "signal", room: "mixed", event: "typing" });
      await other.request({ type: "publish", room: "mixed", data: "marker" });
      assert.equal(await raw.next(), "marker", "the next frame after chatter is the message");
      await other.close();
    });

    await t.step("a broadcast reaches raw clients as its data text", async () => {
      const response = await server.fetch("/api/broadcast", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ data: "all hands" }),
      });
      assert.equal(response.status, 202);
      await response.body?.cancel();
      assert.equal(await raw.next(), "all hands");
      assert.equal((await json.next(isType("broadcast"))).data, "all hands");
    });
    await Promise.all([json.close(), raw.close()]);
  });

  await t.step("oversize raw text gets a too_large error as JSON text; the socket stays", async () => {
    const raw = await TestClient.raw(server.ws("/raw/big"));
    raw.send("x".repeat(70_000));
    const error = JSON.parse(await raw.next());
    assert.equal(error.type, "error");
    assert.equal(error.code, "too_large");
    const peer = await TestClient.raw(server.ws("/raw/big"));
    await until(async () => (await server.hub.presence("big")).length === 2, 3000, "two raw members in big");
    raw.send("small");
    assert.equal(await peer.next(), "small");
    await Promise.all([raw.close(), peer.close()]);
  });

  await t.step("a bad raw room name is refused before the upgrade", async () => {
    const response = await server.fetch("/raw/bad%20room", { headers: { upgrade: "websocket" } });
    assert.equal(response.status, 400);
    assert.equal((await response.json()).error.code, "bad_request");
  });
});
