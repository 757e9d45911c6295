/** The chat page's files (routes/static.ts): served by name from static/ and static/chat/, with
 * their types and the page's CSP; nothing else on disk is reachable, however the path is spelt. */
import assert from "node:assert/strict";
import { startTestServer } from "./_server.ts";

/** Sends `path` as written (no URL normalisation) and returns the status line and body. */
async function rawGet(port: number, path: string): Promise<{ status: number; body: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`));
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(16 * 1024);
    for (let total = 0; total < 1 << 20;) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
      total += n;
    }
    const text = new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
    return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]), body: text.slice(text.indexOf("\r\n\r\n") + 4) };
  } finally {
    try {
      conn.close();
    } catch { /* closed by the server */ }
  }
}

Deno.test("static files: the page, the client and the panels, and nothing else", async (t) => {
  await using server = await startTestServer();
  const port = Number(new URL(server.url).port);

  await t.step("/, /app.js, /roomcast.js, /style.css and /chat/<panel>.js with their types", async () => {
    const page = await server.fetch("/");
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    assert.match(page.headers.get("content-security-policy") ?? "", /script-src 'self'/);
    assert.match(await page.text(), /<script type="module" src="\/app.js">/);
    const app = await server.fetch("/app.js");
    assert.equal(app.headers.get("content-type"), "text/javascript; charset=utf-8");
    const source = await app.text();
    const panels = [...source.matchAll(/from "\.\/(chat\/[a-z_]+\.js)"/g)].map((m) => m[1] ?? "");
    assert.ok(panels.length >= 5, `app.js imports its panels: ${panels}`);
    for (const panel of [...panels, "roomcast.js", "style.css"]) {
      const res = await server.fetch(`/${panel}`);
      assert.equal(res.status, 200, panel);
      assert.equal(res.headers.get("x-content-type-options"), "nosniff");
      assert.equal(await res.text(), await Deno.readTextFile(new URL(`../static/${panel}`, import.meta.url)));
    }
  });

  await t.step("paths out of static/ or to unknown kinds are 404, spelt any way", async () => {
    for (
      const path of [
        "/deno.json",
        "/main.ts",
        "/chat/../deno.json",
        "/chat/%2e%2e/deno.json",
        "/chat/..%2fdeno.json",
        "/%2e%2e/deno.json",
        "/chat/chat/dom.js",
        "/chat/.hidden.js",
        "/.git/config",
        "/chat/",
        "/static/app.js",
        "/APP.JS",
      ]
    ) {
      const res = await rawGet(port, path);
      assert.equal(res.status, 404, path);
      assert.doesNotMatch(res.body, /"tasks"|compilerOptions|import /, path);
    }
  });
});
