/**
 * Issue "hardening", items 5 and 7, in real Chromium with pages on a second origin
 * (http://localhost:<port>, a different site from the server's http://127.0.0.1:<port>):
 * - a page on another site can't write to a server that has no API key (it used to store messages
 *   with a forged `from` through a `no-cors` text/plain fetch and a text/plain form);
 * - a site listed in ROOMCAST_ORIGINS can use `EventSource` and `fetch` across origins (CORS),
 *   and a site not listed can't.
 */
import assert from "node:assert/strict";
import type { Browser, Page } from "playwright-core";
import { browserTest } from "../_browser.ts";
import { isType } from "../_client.ts";
import { postJson, startTestServer } from "../_server.ts";
import { quiet } from "../_wait.ts";

/** A blank page served on `http://localhost:<port>`: another site, from which a test's scripts
 * run (`page.evaluate`). */
async function otherSite(
  browser: Browser,
): Promise<{ page: Page; origin: string; [Symbol.asyncDispose](): Promise<void> }> {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () =>
      new Response("<!doctype html><title>elsewhere</title><body></body>", {
        headers: { "content-type": "text/html" },
      }),
  );
  const origin = `http://localhost:${server.addr.port}`;
  const page = await browser.newPage();
  await page.goto(`${origin}/`);
  return {
    page,
    origin,
    async [Symbol.asyncDispose]() {
      await page.close();
      await server.shutdown();
    },
  };
}

browserTest(
  "a page on another site can't write to a keyless server: no-cors fetch, text/plain form",
  async (browser) => {
    await using server = await startTestServer();
    const watcher = await server.joined("lobby");
    await using site = await otherSite(browser);
    const target = server.url;
    const outcomes = await site.page.evaluate(async (target) => {
      const forged = JSON.stringify({ data: "forged", from: { id: "admin", name: "Admin" } });
      const tries: string[] = [];
      for (const path of ["/api/rooms/lobby/messages", "/api/broadcast", "/api/users/anyone/messages"]) {
        const response = await fetch(target + path, {
          method: "POST",
          mode: "no-cors",
          headers: { "content-type": "text/plain" },
          body: forged,
        });
        tries.push(`${path}: ${response.type}`);
      }
      // A form can't send JSON's content type either, but it can send text that parses as JSON.
      const frame = document.createElement("iframe");
      frame.name = "sink";
      document.body.append(frame);
      const form = document.createElement("form");
      form.method = "POST";
      form.action = target + "/api/rooms/lobby/messages";
      form.enctype = "text/plain";
      form.target = "sink";
      const input = document.createElement("input");
      input.name = '{"data":"form","from":{"id":"admin","name":"Admin"},"x":"';
      input.value = '"}';
      form.append(input);
      document.body.append(form);
      const loaded = new Promise((resolve) => frame.onload = resolve);
      form.submit();
      await loaded;
      return tries;
    }, target);
    assert.equal(outcomes.length, 3, "the page really sent its requests (opaque responses)");
    const page = await (await server.fetch("/api/rooms/lobby/messages")).json();
    assert.deepEqual(page.messages, [], "nothing was stored");
    assert.deepEqual(watcher.unread.filter((f) => f.type !== "ping"), [], "no message, broadcast or direct arrived");
    assert.equal(server.metrics.messagesIn.value, 0);
    await watcher.close();
  },
);

browserTest(
  "CORS: a listed site's EventSource and fetch work across origins; an unlisted site's don't",
  async (browser) => {
    await using listed = await otherSite(browser);
    await using unlisted = await otherSite(browser);
    await using server = await startTestServer({ origins: [listed.origin], authSecret: "cors-secret" });
    const minted = await postJson(server, "/api/tokens", { sub: "u-cors", name: "Cora" });
    const { token } = await minted.json();
    const tryFrom = (page: Page) =>
      page.evaluate(async ({ target, token }) => {
        const result: Record<string, unknown> = {};
        const events = new EventSource(`${target}/events?room=cors&token=${token}`);
        const got = new Promise<string>((resolve) => {
          events.addEventListener("message", (e) => resolve(JSON.parse((e as MessageEvent).data).data));
          events.onerror = () => resolve("error");
        });
        const opened = await new Promise<string>((resolve) => {
          events.addEventListener("welcome", () => resolve("open"));
          events.onerror = () => resolve("error");
          setTimeout(() => resolve("timeout"), 3000);
        });
        result.events = opened;
        try {
          const response = await fetch(`${target}/api/rooms/cors/messages`, {
            method: "POST",
            headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
            body: JSON.stringify({ data: "across origins" }),
          });
          result.status = response.status;
          result.offset = (await response.json()).offset;
        } catch (error) {
          result.fetch = String(error);
        }
        result.received = opened === "open"
          ? await Promise.race([got, new Promise((r) => setTimeout(() => r("timeout"), 3000))])
          : "n/a";
        events.close();
        return result;
      }, { target: server.url, token });

    const fromListed = await tryFrom(listed.page);
    assert.deepEqual(fromListed, { events: "open", status: 201, offset: 1, received: "across origins" });

    const fromUnlisted = await tryFrom(unlisted.page);
    assert.equal(fromUnlisted.events, "error", "its EventSource is refused");
    assert.match(String(fromUnlisted.fetch), /Failed to fetch/, "its fetch is blocked");
    const history = await (await server.fetch("/api/rooms/cors/messages", {
      headers: { authorization: `Bearer ${token}` },
    })).json();
    assert.deepEqual(history.messages.map((m: { data: string }) => m.data), ["across origins"]);
  },
);

Deno.test("loopback trust is refused to proxied, rebound and cross-site requests", async (t) => {
  await using server = await startTestServer();
  const loopback = { remoteAddr: { transport: "tcp" as const, hostname: "127.0.0.1", port: 5555 } };
  const post = (path: string, headers: Record<string, string>, host = "localhost:8000") =>
    server.app.fetch(
      new Request(`http://${host}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({ data: "x", from: { id: "admin", name: "Admin" } }),
      }),
      loopback,
    );
  const refusals: [string, string, Record<string, string>, string?][] = [
    ["another site's page (Origin)", "/api/rooms/r/messages", { origin: "https://evil.example" }],
    ["a browser's cross-site mark", "/api/rooms/r/messages", { "sec-fetch-site": "cross-site" }],
    ["a same-site page on another port", "/api/broadcast", {
      origin: "http://localhost:3000",
      "sec-fetch-site": "same-site",
    }],
    ["a reverse proxy (X-Forwarded-For)", "/api/broadcast", { "x-forwarded-for": "203.0.113.9" }],
    ["a reverse proxy (Forwarded)", "/api/rooms/r/messages", { forwarded: "for=203.0.113.9" }],
    ["a rebound DNS name (Host)", "/api/rooms/r/messages", {}, "evil.example:8000"],
  ];
  for (const [what, path, headers, host] of refusals) {
    await t.step(`${what} → 403`, async () => {
      const response = await post(path, headers, host);
      assert.equal(response.status, 403);
      assert.equal((await response.json()).error.code, "forbidden");
    });
  }
  await t.step("a proxied DELETE of history → 403", async () => {
    const response = await server.app.fetch(
      new Request("http://localhost/api/rooms/r/messages", { method: "DELETE", headers: { "x-real-ip": "1.2.3.4" } }),
      loopback,
    );
    assert.equal(response.status, 403);
    await response.body?.cancel();
  });
  await t.step("a backend on this machine, and the server's own page, are served", async () => {
    const curl = await post("/api/rooms/r/messages", {});
    assert.equal(curl.status, 201);
    await curl.body?.cancel();
    const own = await post("/api/rooms/r/messages", {
      origin: "http://localhost:8000",
      "sec-fetch-site": "same-origin",
    });
    assert.equal(own.status, 201);
    await own.body?.cancel();
  });
  await t.step("WebSocket and SSE: an Origin equal to a rebound Host is not 'same origin'", async () => {
    const upgrade = (host: string) =>
      server.app.fetch(
        new Request(`http://${host}/events?room=r`, { headers: { origin: `http://${host}` } }),
        loopback,
      );
    const rebound = await upgrade("evil.example:8000");
    assert.equal(rebound.status, 403);
    await rebound.body?.cancel();
    const own = await upgrade("localhost:8000");
    assert.equal(own.status, 200);
    await own.body?.cancel();
  });
  assert.equal((await server.hub.history("r", { limit: 10 })).messages.length, 2);
});

Deno.test("ROOMCAST_HOSTS names the public host: same origin there, and no loopback trust for it", async () => {
  await using server = await startTestServer({ hosts: ["chat.example.com"] });
  const loopback = { remoteAddr: { transport: "tcp" as const, hostname: "127.0.0.1", port: 5555 } };
  const sse = await server.app.fetch(
    new Request("http://chat.example.com/events?room=h", { headers: { origin: "https://chat.example.com" } }),
    loopback,
  );
  assert.equal(sse.status, 200, "a page of the public host streams (scheme aside: TLS ends at the proxy)");
  await sse.body?.cancel();
  const local = await server.app.fetch(
    new Request("http://localhost/api/broadcast", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"data":1}',
    }),
    loopback,
  );
  assert.equal(local.status, 403, "localhost is no longer one of its names");
  await local.body?.cancel();
});

Deno.test("CORS preflight: 204 with the allowed methods and headers for a listed origin, 403 for others", async () => {
  await using server = await startTestServer({ origins: ["https://app.example"] });
  const preflight = (origin: string, path = "/api/rooms/r/messages") =>
    server.fetch(path, {
      method: "OPTIONS",
      headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type" },
    });
  const ok = await preflight("https://app.example");
  assert.equal(ok.status, 204);
  assert.equal(ok.headers.get("access-control-allow-origin"), "https://app.example");
  assert.match(ok.headers.get("access-control-allow-methods") ?? "", /POST/);
  assert.match(ok.headers.get("access-control-allow-headers") ?? "", /authorization.*content-type/);
  await ok.body?.cancel();
  const events = await preflight("https://app.example", "/events?room=r");
  assert.equal(events.status, 204);
  await events.body?.cancel();
  const other = await preflight("https://evil.example");
  assert.equal(other.status, 403);
  assert.equal(other.headers.get("access-control-allow-origin"), null);
  await other.body?.cancel();
  const read = await server.fetch("/api/rooms/r/messages", { headers: { origin: "https://app.example" } });
  assert.equal(read.headers.get("access-control-allow-origin"), "https://app.example");
  assert.match(read.headers.get("vary") ?? "", /Origin/);
  await read.body?.cancel();
});

Deno.test("HEAD reports the GET's headers and length, and opens no stream", async () => {
  await using server = await startTestServer();
  for (const path of ["/", "/roomcast.js", "/healthz", "/api/rooms"]) {
    const get = await server.fetch(path);
    const body = await get.arrayBuffer();
    const head = await server.fetch(path, { method: "HEAD" });
    assert.equal(head.status, 200, path);
    assert.equal(head.headers.get("content-length"), String(body.byteLength), path);
    assert.equal(head.headers.get("content-type"), get.headers.get("content-type"), path);
    await head.body?.cancel();
  }
  const watcher = await server.joined("h");
  const events = await server.fetch("/events?room=h", { method: "HEAD" });
  assert.equal(events.status, 200);
  assert.match(events.headers.get("content-type") ?? "", /text\/event-stream/);
  await events.body?.cancel();
  assert.equal(server.hub.connectionCount, 1, "the HEAD opened no connection");
  await quiet(50, "no member event comes");
  assert.deepEqual(watcher.unread.filter(isType("member")), [], "and nobody joined the room");
  await watcher.close();
});
