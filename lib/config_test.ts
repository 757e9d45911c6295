import assert from "node:assert/strict";
import { ConfigError, loadConfig, parseDuration } from "./config.ts";

Deno.test("config defaults match the documented ones", () => {
  const config = loadConfig({});
  assert.equal(config.port, 8000);
  assert.equal(config.hostname, "127.0.0.1", "loopback: keyless writes are for this machine");
  assert.equal(config.kvPath, "./data/roomcast.kv");
  assert.equal(config.workers, 1);
  assert.equal(config.sequencer, "local", "one process numbers the messages of its own KV file");
  assert.equal(config.heartbeatMs, 25_000);
  assert.equal(config.historyLimit, 1000);
  assert.equal(config.historyTtlMs, undefined);
  assert.equal(config.bodyTimeoutMs, 10_000);
  assert.deepEqual(config.limits, {
    maxFrameBytes: 65_536,
    maxJsonDepth: 32,
    maxJsonValues: 10_000,
    publishBurst: 50,
    publishWindowMs: 10_000,
    signalBurst: 200,
    userPublishBurst: 100,
    userSignalBurst: 400,
    userWindowMs: 10_000,
    joinBurst: 200,
    joinWindowMs: 10_000,
    maxRooms: 100,
    memberEventsMax: 100,
    floodStrikes: 20,
    sendQueueBytes: 131_072,
  });
  assert.equal(config.apiKey, undefined);
  assert.equal(config.authSecret, undefined);
  assert.equal(config.origins, undefined);
  assert.equal(config.maxConnections, undefined, "derived from the descriptor limit at start-up");
  assert.equal(config.maxConnectionsPerIp, 256);
  assert.deepEqual([config.connectBurst, config.connectWindowMs], [60, 10_000]);
  assert.deepEqual(config.trustedProxies, []);
  assert.deepEqual(config.hosts, ["localhost", "127.0.0.1", "::1"]);
  assert.equal(config.metricsKey, undefined);
});

Deno.test("config reads the environment", () => {
  const config = loadConfig({
    PORT: "9000",
    ROOMCAST_KV_PATH: ":memory:",
    ROOMCAST_API_KEY: " k ",
    ROOMCAST_ORIGINS: "https://a.example, https://b.example/",
    ROOMCAST_PUBLISH_RATE: "10/1s",
    ROOMCAST_HISTORY_TTL: "7d",
    ROOMCAST_HEARTBEAT: "500ms",
    ROOMCAST_HOSTS: "Chat.Example.com., [::1]:8000, *",
    ROOMCAST_CONNECT_RATE: "off",
    ROOMCAST_USER_PUBLISH_RATE: "30/1m",
    ROOMCAST_TRUSTED_PROXIES: "10.0.0.1, ::1",
    ROOMCAST_MAX_CONNECTIONS: "500",
  });
  assert.deepEqual(config.hosts, ["chat.example.com", "::1", "*"]);
  assert.equal(config.connectBurst, 0, "off");
  assert.deepEqual([config.limits.userPublishBurst, config.limits.userWindowMs], [30, 60_000]);
  assert.deepEqual(config.trustedProxies, ["10.0.0.1", "::1"]);
  assert.equal(config.maxConnections, 500);
  assert.deepEqual(loadConfig({ DENO_DEPLOYMENT_ID: "x" }).hosts, ["*"], "no loopback on Deno Deploy to guard");
  assert.equal(config.port, 9000);
  assert.equal(config.kvPath, ":memory:");
  assert.equal(config.apiKey, "k");
  assert.deepEqual(config.origins, ["https://a.example", "https://b.example"]);
  assert.equal(config.limits.publishBurst, 10);
  assert.equal(config.limits.publishWindowMs, 1000);
  assert.equal(config.historyTtlMs, 7 * 86_400_000);
  assert.equal(config.heartbeatMs, 500);
  assert.equal(loadConfig({ DENO_DEPLOYMENT_ID: "x" }).kvPath, undefined, "Deno Deploy uses its own KV");
  assert.equal(loadConfig({ DENO_DEPLOYMENT_ID: "x" }).sequencer, "kv", "many isolates share Deno Deploy's KV");
  assert.equal(loadConfig({ DENO_DEPLOYMENT_ID: "x" }).hostname, "0.0.0.0", "Deno Deploy ignores it");
  assert.equal(loadConfig({ HOSTNAME: "0.0.0.0" }).hostname, "0.0.0.0");
  assert.equal(
    loadConfig({ DENO_DEPLOYMENT_ID: "x" }).kvPollMs,
    2000,
    "there the watch brings news; the poll is a net",
  );
  assert.equal(loadConfig({ ROOMCAST_SEQUENCER: "kv" }).kvPollMs, 200, "processes on a local file have only the poll");
  assert.equal(loadConfig({ DENO_DEPLOYMENT_ID: "x", ROOMCAST_KV_POLL: "500ms" }).kvPollMs, 500);
  assert.equal(loadConfig({ ROOMCAST_SEQUENCER: "kv" }).sequencer, "kv");
});

Deno.test("config refuses bad values, naming each variable", () => {
  assert.throws(
    () =>
      loadConfig({
        PORT: "http",
        ROOMCAST_HISTORY_TTL: "soon",
        ROOMCAST_PUBLISH_RATE: "fast",
        ROOMCAST_SEQUENCER: "redis",
      }),
    (error: unknown) =>
      error instanceof ConfigError && /PORT/.test(error.message) && /ROOMCAST_HISTORY_TTL/.test(error.message) &&
      /ROOMCAST_PUBLISH_RATE/.test(error.message) && /ROOMCAST_SEQUENCER must be one of local, kv/.test(error.message),
  );
  assert.equal(parseDuration("30"), 30_000);
  assert.equal(parseDuration("2m"), 120_000);
  assert.equal(parseDuration("-1s"), undefined);
});

Deno.test("ROOMCAST_PUSHER_APPS: app_id:key:secret items; a bad one stops start-up without quoting its secret", () => {
  const config = loadConfig({ ROOMCAST_PUSHER_APPS: "app1:key1:secret-one, app2:key2:secret-two" });
  assert.deepEqual(config.pusherApps, [
    { id: "app1", key: "key1", secret: "secret-one" },
    { id: "app2", key: "key2", secret: "secret-two" },
  ]);
  assert.deepEqual(loadConfig({}).pusherApps, []);
  for (
    const bad of [
      "app1:key1",
      "app1:key1:short",
      "app 1:key1:secret-one",
      "a:b:secret-one:extra",
      "a:k:secret-one,b:k:secret-two",
    ]
  ) {
    assert.throws(
      () => loadConfig({ ROOMCAST_PUSHER_APPS: bad }),
      (error: unknown) =>
        error instanceof ConfigError && /ROOMCAST_PUSHER_APPS item/.test(error.message) &&
        !/secret-one|secret-two|short/.test(error.message.replace("a secret of 8", "")),
      bad,
    );
  }
});

Deno.test("an unknown ROOMCAST_* variable warns at start, naming the nearest known one", () => {
  const warnings: string[] = [];
  const config = loadConfig(
    { ROOMCAST_HEARTBEET: "5s", ROOMCAST_API_KEY: "k", ROOMCAST_ZZZ: "1", ROOMCAST_TEST_X: "1", HOME: "/root" },
    1,
    (w) => warnings.push(w),
  );
  assert.equal(config.heartbeatMs, 25_000, "the misspelled one changed nothing");
  assert.equal(warnings.length, 2, warnings.join("\n"));
  assert.match(
    warnings[0] ?? "",
    /unknown setting ROOMCAST_HEARTBEET is ignored \(did you mean ROOMCAST_HEARTBEAT\?\)/,
  );
  assert.match(warnings[1] ?? "", /unknown setting ROOMCAST_ZZZ is ignored; docs\/CONFIG.md/);
  const quiet: string[] = [];
  loadConfig({ ROOMCAST_WORKERS: "2", DENO_DEPLOYMENT_ID: "x" }, 1, (w) => quiet.push(w));
  assert.deepEqual(quiet, [], "known settings, read or not where they don't apply, are not unknown");
});

Deno.test("durations that can be off take 0 or off; a bad one is still named", () => {
  for (const off of ["0", "off"]) {
    const config = loadConfig({ ROOMCAST_LEAVE_GRACE: off, ROOMCAST_SIO_RECOVERY: off });
    assert.deepEqual([config.leaveGraceMs, config.socketIo.recoveryMs], [0, 0], off);
  }
  const set = loadConfig({ ROOMCAST_LEAVE_GRACE: "500ms", ROOMCAST_SIO_RECOVERY: "30s" });
  assert.deepEqual([set.leaveGraceMs, set.socketIo.recoveryMs], [500, 30_000]);
  const unset = loadConfig({});
  assert.deepEqual([unset.leaveGraceMs, unset.socketIo.recoveryMs], [2000, 120_000]);
  assert.throws(() => loadConfig({ ROOMCAST_LEAVE_GRACE: "soon" }), /ROOMCAST_LEAVE_GRACE must be a duration/);
});
