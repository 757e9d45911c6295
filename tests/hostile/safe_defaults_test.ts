/**
 * Issue "hardening, round two", finding 4: behind a proxy that adds no forwarding header (nginx's
 * bare `proxy_pass`, a TCP relay) every caller looked local, so publishes, broadcasts, `/metrics`
 * and DELETE of a room's history were open to other machines. Now keyless writes are for a server
 * that listens on loopback only (the default, `HOSTNAME=127.0.0.1`); listening on any other address
 * closes them until `ROOMCAST_API_KEY` is set. (The server under test listens on 127.0.0.1, as every
 * test does; the app is asked as one configured for 0.0.0.0 would be, by a relay on this machine.)
 */
import assert from "node:assert/strict";
import { createApp } from "../../routes/app.ts";
import type { Config } from "../../lib/config.ts";
import { startTestServer, type TestServer } from "../_server.ts";
import { listensOnLoopback } from "../../routes/trust.ts";

/** What a relay on this machine looks like: a loopback caller with no forwarding header. */
const relayed = { remoteAddr: { transport: "tcp" as const, hostname: "127.0.0.1", port: 40_000 } };

function appListeningOn(server: TestServer, overrides: Partial<Config>) {
  const app = createApp({
    hub: server.hub,
    admission: server.admission,
    config: { ...server.config, ...overrides },
    metrics: server.metrics,
    clock: { now: () => Date.now() },
    state: server.state,
  });
  return (path: string, init: RequestInit = {}) => app.fetch(new Request(`http://localhost${path}`, init), relayed);
}

const publish = {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ data: "hi" }),
};

Deno.test("listening on 0.0.0.0 without an API key: writes, broadcasts, DELETE and /metrics are closed to everybody", async () => {
  await using server = await startTestServer();
  const ask = appListeningOn(server, { hostname: "0.0.0.0" });
  for (
    const [path, init] of [
      ["/api/rooms/a/messages", publish],
      ["/api/broadcast", publish],
      ["/api/rooms/a/messages", { method: "DELETE" }],
      ["/metrics", {}],
    ] as const
  ) {
    const response = await ask(path, init);
    const body = await response.json();
    assert.equal(response.status, 403, `${init.method ?? "GET"} ${path}`);
    assert.match(body.error.message, /listens on 0\.0\.0\.0/);
  }
  assert.deepEqual((await server.hub.history("a", { limit: 10 })).messages, []);
  // Reads stay open, and the same request to the loopback-only server is a backend's.
  assert.equal((await ask("/api/rooms/a/messages")).status, 200);
  const local = await server.app.fetch(new Request("http://localhost/api/rooms/a/messages", publish), relayed);
  assert.equal(local.status, 201);
});

Deno.test("listening on 0.0.0.0 with an API key: the key opens writes, nothing else does", async () => {
  await using server = await startTestServer();
  const ask = appListeningOn(server, { hostname: "0.0.0.0", apiKey: "k-0123456789" });
  assert.equal((await ask("/api/rooms/a/messages", publish)).status, 401);
  const keyed = await ask("/api/rooms/a/messages", {
    ...publish,
    headers: { ...publish.headers, authorization: "Bearer k-0123456789" },
  });
  assert.equal(keyed.status, 201);
});

Deno.test("loopback only: 127.0.0.1, any 127/8 address, ::1 and localhost; nothing else", () => {
  for (const hostname of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"]) {
    assert.ok(listensOnLoopback({ hostname }), hostname);
  }
  for (const hostname of ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.com"]) {
    assert.ok(!listensOnLoopback({ hostname }), hostname);
  }
});
