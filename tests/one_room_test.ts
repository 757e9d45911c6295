/**
 * One room, every protocol: a /ws client, an HTTP publisher, Socket.IO, Pusher, STOMP and WAMP
 * clients each publish into the same room and each receives what the others publish, in its own
 * framing, with one offset sequence; presence counts them all.
 */
import assert from "node:assert/strict";
import { isType } from "./_client.ts";
import { client as pusherClient, collect, PUSHER_APP, subscribed } from "./_pusher.ts";
import { postJson, startTestServer } from "./_server.ts";
import { sio4 } from "./_sio.ts";
import { collectMessages, receiptOf, stompClient } from "./_stomp.ts";
import { autobahnSession, closeSession, type Session } from "./_wamp.ts";
import { until } from "./_wait.ts";

Deno.test({
  name: "one room: /ws, HTTP, Socket.IO, Pusher, STOMP and WAMP publish and receive with one offset sequence",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  await using server = await startTestServer({ pusherApps: [PUSHER_APP] });
  const ws = await server.joined("agora");
  const io = await sio4(server.url, { transports: ["websocket"] });
  await new Promise<void>((resolve) => io.socket.emit("join", "agora", () => resolve()));
  const pusher = pusherClient(server);
  const channel = await subscribed(pusher, "agora");
  const atPusher = collect<unknown>(channel, "message");
  const stomp = await stompClient(server);
  const atStomp = collectMessages(stomp, "/topic/agora", { receipt: "in" });
  await receiptOf(stomp, "in");
  const wamp: Session = await autobahnSession(server);
  const atWamp: unknown[] = [];
  await wamp.subscribe("agora", (args: unknown[]) => atWamp.push(args[0]));
  try {
    assert.equal((await server.hub.presence("agora")).length, 5, "ws, socket.io, pusher, stomp and wamp clients");

    await ws.request({ type: "publish", room: "agora", data: "ws" });
    await (await postJson(server, "/api/rooms/agora/messages", { data: "http" })).body?.cancel();
    io.socket.emit("message", { room: "agora", data: "socketio" });
    await until(async () => (await server.hub.history("agora", { limit: 10 })).messages.length === 3, 3000, "3 stored");
    stomp.publish({ destination: "/topic/agora", body: "stomp" });
    await until(async () => (await server.hub.history("agora", { limit: 10 })).messages.length === 4, 3000, "4 stored");
    await wamp.publish("agora", ["wamp"], {}, { acknowledge: true });

    const all = ["ws", "http", "socketio", "stomp", "wamp"];
    const stored = (await server.hub.history("agora", { limit: 10 })).messages;
    assert.deepEqual(stored.map((m) => [m.offset, m.data]), all.map((d, i) => [i + 1, d]), "one offset sequence");
    // Each gets every message but its own (Pusher's clients publish none here: they get all five).
    await until(() => atPusher.length === 5 && atStomp.length === 4 && atWamp.length === 4, 5000, "every delivery");
    assert.deepEqual(atPusher, all);
    assert.deepEqual(atStomp.map((m) => m.body), all.filter((d) => d !== "stomp"));
    assert.deepEqual(atStomp.map((m) => Number(m.headers.offset)), [1, 2, 3, 5]);
    assert.deepEqual(atWamp, all.filter((d) => d !== "wamp"));
    const atWs = [];
    for (let i = 0; i < 4; i++) atWs.push((await ws.next(isType("message"))).data);
    assert.deepEqual(atWs, all.filter((d) => d !== "ws"));
    const atIo: unknown[] = [];
    for (let i = 0; i < 4; i++) atIo.push(((await io.next("message"))[0] as { data: unknown }).data);
    assert.deepEqual(atIo, all.filter((d) => d !== "socketio"));
  } finally {
    pusher.disconnect();
    await stomp.deactivate();
    closeSession(wamp);
    io.close();
    await ws.close();
  }
});
