/**
 * What a new user sees when roomcast starts (issue 24): the version on the start line and in
 * `/healthz`, a warning naming the nearest setting for a misspelled `ROOMCAST_*` variable, nothing
 * else on stderr through a normal run of every kind of client, and a busy port named with the
 * setting that moves it.
 */
import assert from "node:assert/strict";
import { startMain, stopMain } from "./_process.ts";
import { VERSION } from "../lib/version.ts";
import { eioHandshake } from "./_sio.ts";
import { redisTest } from "./_redis.ts";
import { until } from "./_wait.ts";

Deno.test({
  name: "start: version shown, a misspelled setting named, no other warning through a normal run",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    const main = await startMain({
      PORT: "0",
      ROOMCAST_KV_PATH: `${dir}/rc.kv`,
      ROOMCAST_HEARTBEET: "5s",
      PATH: Deno.env.get("PATH") ?? "",
    }, { stderr: "piped" });
    try {
      const health = await (await fetch(`${main.url}/healthz`)).json();
      assert.deepEqual(health, { status: "ok", version: VERSION });
      // Every kind of client, once: /ws, SSE, Socket.IO polling and WebSocket, the HTTP API.
      const ws = new WebSocket(`${main.url.replace("http", "ws")}/ws`);
      const welcome = await new Promise<string>((resolve, reject) => {
        ws.onmessage = (e) => resolve(e.data as string);
        ws.onerror = () => reject(new Error("ws failed"));
      });
      assert.match(welcome, /"type":"welcome"/);
      ws.send(JSON.stringify({ type: "join", room: "start" }));
      const published = await fetch(`${main.url}/api/rooms/start/messages`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ data: "hi" }),
      });
      assert.equal(published.status, 201);
      await published.body?.cancel();
      const sse = await fetch(`${main.url}/events?room=start&since=0`);
      const reader = sse.body!.pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      while (!text.includes('"data":"hi"')) text += (await reader.read()).value ?? "";
      await reader.cancel();
      const sid = await eioHandshake(main.url, 4);
      const sio = new WebSocket(`${main.url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket&sid=${sid}`);
      await new Promise((resolve) => sio.onopen = resolve);
      sio.close();
      ws.close();
      await new Promise((resolve) => setTimeout(resolve, 300));
    } finally {
      const status = await stopMain(main);
      await Deno.remove(dir, { recursive: true });
      assert.equal(status.code, 0);
    }
    const lines = main.stderr().trim().split("\n").filter((line) => line.trim());
    assert.deepEqual(lines, [
      "roomcast: unknown setting ROOMCAST_HEARTBEET is ignored (did you mean ROOMCAST_HEARTBEAT?); " +
      "docs/CONFIG.md lists them all",
    ], "no runtime warning, no stack trace in a normal run");
  },
});

Deno.test({
  name: "start: a port in use is named, with the setting that moves it",
  sanitizeResources: false,
  async fn() {
    using held = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (held.addr as Deno.NetAddr).port;
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--unstable-kv", "--unstable-net", "-A", new URL("../main.ts", import.meta.url).pathname],
      env: { PORT: String(port), ROOMCAST_KV_PATH: ":memory:" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(output.code, 1);
    const stderr = new TextDecoder().decode(output.stderr);
    assert.match(stderr, new RegExp(`could not start: port ${port} on 127\\.0\\.0\\.1 is already in use.*set PORT`));
    assert.doesNotMatch(stderr, /\n\s+at /, "no stack trace");
  },
});

redisTest(
  "Redis going away and coming back: one line each, no stack trace; publishes refused meanwhile",
  async (redis) => {
    const main = await startMain(
      { PORT: "0", ROOMCAST_REDIS_URL: redis.url, PATH: Deno.env.get("PATH") ?? "" },
      { stderr: "piped" },
    );
    const publish = () =>
      fetch(`${main.url}/api/rooms/a/messages`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: '{"data":1}',
      }).then(async (r) => {
        await r.body?.cancel();
        return r.status;
      });
    try {
      const ws = new WebSocket(`${main.url.replace("http", "ws")}/ws`);
      await new Promise((resolve) => ws.onopen = resolve);
      ws.send(JSON.stringify({ type: "join", room: "a" }));
      assert.equal(await publish(), 201);
      await redis.kill();
      await until(() => main.stderr().includes("went away"), 5000, "the down line");
      assert.equal(await publish(), 503);
      await redis.start();
      await until(() => main.stderr().includes("is back"), 10_000, "the back line");
      await until(async () => await publish() === 201, 5000, "publishes work again");
      ws.close();
    } finally {
      await stopMain(main);
    }
    const host = new URL(redis.url).host;
    const lines = main.stderr().trim().split("\n");
    assert.equal(lines.length, 2, main.stderr());
    assert.match(
      lines[0] ?? "",
      new RegExp(`^roomcast: Redis at ${host} went away \\(.+\\): publishes answer "unavailable"`),
    );
    assert.match(lines[1] ?? "", new RegExp(`^roomcast: Redis at ${host} is back after \\d+\\.\\d s`));
  },
);

Deno.test({
  name: "ROOMCAST_ACCESS_LOG=json: a line per request and upgrade, with no token, key or query in it",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const main = await startMain({
      PORT: "0",
      ROOMCAST_KV_PATH: ":memory:",
      ROOMCAST_ACCESS_LOG: "json",
      ROOMCAST_AUTH_SECRET: "a-secret-of-the-test",
      PATH: Deno.env.get("PATH") ?? "",
    });
    const lines: string[] = [];
    let buffer = "";
    const reading = (async () => {
      for (;;) {
        const { value, done } = await main.reader.read();
        if (done) return;
        buffer += value;
        const parts = buffer.split("\n");
        buffer = parts.pop() ?? "";
        lines.push(...parts.filter((line) => line.startsWith("{")));
      }
    })();
    try {
      const minted = await (await fetch(`${main.url}/api/tokens`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ sub: "ann", name: "Ann" }),
      })).json();
      const ws = new WebSocket(`${main.url.replace("http", "ws")}/ws?token=${minted.token}`);
      const first = await new Promise<string>((resolve) => {
        ws.onmessage = (e) => resolve(String(e.data));
        ws.onclose = (e) => resolve(`closed ${e.code}`);
      });
      assert.match(first, /"type":"welcome"/);
      ws.close();
      const read = await fetch(`${main.url}/api/rooms/a/messages?limit=1`, {
        headers: { authorization: `Bearer ${minted.token}` },
      });
      await read.body?.cancel();
      await until(() => lines.length >= 3, 5000, () => `3 access lines, got ${JSON.stringify(lines)}`);
      const entries = lines.map((line) => JSON.parse(line));
      assert.deepEqual(
        entries.map((e) => [e.method, e.path, e.status]),
        [["POST", "/api/tokens", 200], ["GET", "/ws", 101], ["GET", "/api/rooms/a/messages", 200]],
      );
      for (const e of entries) {
        assert.deepEqual(Object.keys(e).sort(), ["ip", "method", "ms", "path", "status", "ts"]);
        assert.equal(e.ip, "127.0.0.1");
      }
      const all = lines.join("\n");
      assert.ok(!all.includes(minted.token) && !all.includes(minted.token.split(".")[2]), "no token");
      assert.ok(!all.includes("?"), "no query string");
    } finally {
      await stopMain(main);
      await reading.catch(() => {});
    }
  },
});
