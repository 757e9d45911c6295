/**
 * docs/CONFIG.md documents every setting lib/config.ts reads, each once, and nothing it doesn't:
 * the names are read from the code's own calls (`read.int("…")`, `list("…")`), so neither can
 * drift from the other. Defaults that are plain values are checked against `loadConfig({})`.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../lib/config.ts";

const code = await Deno.readTextFile(new URL("../lib/config.ts", import.meta.url));
const doc = await Deno.readTextFile(new URL("../docs/CONFIG.md", import.meta.url));

/** The environment variables the configuration reads. */
const read = new Set([...code.matchAll(/\b(?:read\.\w+|list)\("([A-Z][A-Z0-9_]+)"/g)].map((m) => m[1] as string));
/** The table rows of the page: variable → default cell. */
const rows = [...doc.matchAll(/^\| `([A-Z][A-Z0-9_]+)`\s*\|\s*([^|]*?)\s*\|/gm)].map((m) => [m[1], m[2]] as const);

Deno.test("docs/CONFIG.md lists every setting lib/config.ts reads, once, and no other", () => {
  const documented = rows.map(([name]) => name as string);
  assert.ok(read.size >= 40, `the code reads ${read.size} settings`);
  assert.deepEqual(documented.filter((name, i) => documented.indexOf(name) !== i), [], "each once");
  assert.deepEqual([...read].filter((name) => !documented.includes(name)).sort(), [], "undocumented");
  assert.deepEqual(documented.filter((name) => !read.has(name)).sort(), [], "documented, not read");
});

Deno.test("docs/CONFIG.md's plain defaults are the code's", () => {
  const config = loadConfig({});
  const defaults = new Map(rows);
  const plain = (name: string) => /^`([^`]*)`/.exec(defaults.get(name) ?? "")?.[1];
  assert.equal(plain("PORT"), String(config.port));
  assert.equal(plain("HOSTNAME"), config.hostname);
  assert.equal(plain("ROOMCAST_KV_PATH"), config.kvPath);
  assert.equal(plain("ROOMCAST_SEQUENCER"), config.sequencer);
  assert.equal(plain("ROOMCAST_WORKERS"), String(config.workers));
  assert.equal(plain("ROOMCAST_HISTORY_LIMIT"), String(config.historyLimit));
  assert.equal(plain("ROOMCAST_MAX_FRAME_BYTES"), String(config.limits.maxFrameBytes));
  assert.equal(plain("ROOMCAST_MAX_JSON_DEPTH"), String(config.limits.maxJsonDepth));
  assert.equal(plain("ROOMCAST_MAX_JSON_VALUES"), String(config.limits.maxJsonValues));
  assert.equal(plain("ROOMCAST_SIGNAL_BURST"), String(config.limits.signalBurst));
  assert.equal(plain("ROOMCAST_USER_SIGNAL_BURST"), String(config.limits.userSignalBurst));
  assert.equal(plain("ROOMCAST_MAX_ROOMS"), String(config.limits.maxRooms));
  assert.equal(plain("ROOMCAST_MEMBER_EVENTS_MAX"), String(config.limits.memberEventsMax));
  assert.equal(plain("ROOMCAST_SEND_QUEUE_BYTES"), String(config.limits.sendQueueBytes));
  assert.equal(plain("ROOMCAST_MAX_CONNECTIONS_PER_IP"), String(config.maxConnectionsPerIp));
  assert.equal(plain("ROOMCAST_KV_WATCH_ROOMS"), String(config.kvWatchRooms));
  assert.equal(plain("ROOMCAST_SIO_MAX_PAYLOAD"), String(config.socketIo.maxPayload));
  assert.equal(plain("ROOMCAST_SIO_LAYER"), config.socketIo.layer);
  assert.equal(plain("ROOMCAST_HOSTS"), config.hosts.join(","));
  assert.equal(plain("ROOMCAST_PUSHER_MAX_EVENT_BYTES"), String(config.pusherMaxEventBytes));
  const seconds = (name: string) => Number(plain(name)?.replace(/s$/, "")) * 1000;
  assert.equal(seconds("ROOMCAST_HEARTBEAT"), config.heartbeatMs);
  assert.equal(seconds("ROOMCAST_SSE_KEEPALIVE"), config.sseKeepAliveMs);
  assert.equal(seconds("ROOMCAST_BODY_TIMEOUT"), config.bodyTimeoutMs);
  assert.equal(seconds("ROOMCAST_KV_LEASE"), config.kvLeaseMs);
  assert.equal(seconds("ROOMCAST_REDIS_LEASE"), config.redisLeaseMs);
  assert.equal(Number(plain("ROOMCAST_WEBHOOK_KEEP")?.replace(/m$/, "")) * 60_000, config.webhookKeepMs);
  assert.equal(seconds("ROOMCAST_SIO_PING_INTERVAL"), config.socketIo.pingIntervalMs);
  assert.equal(seconds("ROOMCAST_SIO_PING_TIMEOUT"), config.socketIo.pingTimeoutMs);
  assert.equal(seconds("ROOMCAST_SIO_CONNECT_TIMEOUT"), config.socketIo.connectTimeoutMs);
  const rate = (name: string) => plain(name)?.split("/").map((part) => Number(part.replace(/s$/, "")));
  assert.deepEqual(rate("ROOMCAST_PUBLISH_RATE"), [config.limits.publishBurst, config.limits.publishWindowMs / 1000]);
  assert.deepEqual(rate("ROOMCAST_CONNECT_RATE"), [config.connectBurst, config.connectWindowMs / 1000]);
  assert.deepEqual(rate("ROOMCAST_PUSHER_CLIENT_EVENT_RATE"), [
    config.pusherClientEventBurst,
    config.pusherClientEventWindowMs / 1000,
  ]);
  assert.deepEqual(rate("ROOMCAST_JOIN_RATE"), [config.limits.joinBurst, config.limits.joinWindowMs / 1000]);
  assert.deepEqual(rate("ROOMCAST_USER_PUBLISH_RATE"), [
    config.limits.userPublishBurst,
    config.limits.userWindowMs / 1000,
  ]);
});
