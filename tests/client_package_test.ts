/**
 * static/roomcast.js as a package (issue 24, item 6): its types (roomcast.d.ts) are what
 * TypeScript makes of it today, package.json and jsr.json are ready to publish with the project's
 * version, and a page of a site `ROOMCAST_ORIGINS` lists imports it across origins in Chromium and
 * talks to the server, while an unlisted site's import is blocked by the browser.
 */
import assert from "node:assert/strict";
import { startTestServer } from "./_server.ts";
import { browserTest } from "./_browser.ts";
import { VERSION } from "../lib/version.ts";

const root = new URL("../", import.meta.url).pathname;
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

Deno.test("static/roomcast.d.ts is what `deno task client:types` makes of roomcast.js today", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const task: string = JSON.parse(await Deno.readTextFile(`${root}deno.json`)).tasks["client:types"];
    const args = task.split(" ").slice(1).map((arg) => arg === "static" ? dir : arg);
    const out = await new Deno.Command("npx", { args, cwd: root, stdout: "piped", stderr: "piped" }).output();
    assert.equal(out.code, 0, decode(out.stdout) + decode(out.stderr));
    const fresh = await Deno.readTextFile(`${dir}/roomcast.d.ts`);
    const committed = await Deno.readTextFile(`${root}static/roomcast.d.ts`);
    assert.ok(fresh === committed, "static/roomcast.d.ts is stale: run `deno task client:types`");
    assert.match(await Deno.readTextFile(`${root}static/roomcast.js`), /^\/\/ @ts-self-types="\.\/roomcast\.d\.ts"$/m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("package.json and jsr.json: the project's version, the module and its types, nothing else", async () => {
  const pkg = JSON.parse(await Deno.readTextFile(`${root}static/package.json`));
  const jsr = JSON.parse(await Deno.readTextFile(`${root}static/jsr.json`));
  assert.equal(pkg.version, VERSION);
  assert.equal(jsr.version, VERSION);
  assert.deepEqual(pkg.exports, { ".": { types: "./roomcast.d.ts", default: "./roomcast.js" } });
  assert.equal(jsr.exports, "./roomcast.js");
  const pack = await new Deno.Command("npm", {
    args: ["pack", "--dry-run", "--json"],
    cwd: `${root}static`,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(pack.code, 0, decode(pack.stderr));
  const files = JSON.parse(decode(pack.stdout))[0].files.map((f: { path: string }) => f.path).sort();
  assert.deepEqual(files, ["package.json", "roomcast.d.ts", "roomcast.js"]);
});

Deno.test("GET /roomcast.js carries CORS for the listed sites only", async () => {
  await using server = await startTestServer({ origins: ["https://app.example"] });
  const listed = await server.fetch("/roomcast.js", { headers: { origin: "https://app.example" } });
  assert.equal(listed.headers.get("access-control-allow-origin"), "https://app.example");
  assert.match(listed.headers.get("content-type") ?? "", /^text\/javascript/);
  await listed.body?.cancel();
  const other = await server.fetch("/roomcast.js", { headers: { origin: "https://evil.example" } });
  assert.equal(other.headers.get("access-control-allow-origin"), null);
  await other.body?.cancel();
});

browserTest(
  "a listed site's page imports /roomcast.js across origins and publishes; an unlisted one can't",
  async (browser) => {
    // Two pages' origins: one that ROOMCAST_ORIGINS lists, one it doesn't.
    const page = (port: number) =>
      `<!doctype html><meta charset="utf-8"><title>app</title><script type="module">
      import { RoomcastClient } from "http://127.0.0.1:${port}/roomcast.js";
      const client = new RoomcastClient({ url: "ws://127.0.0.1:${port}/ws", name: "Away" });
      client.connect();
      await client.join("cors");
      const ack = await client.publish("cors", "from another origin");
      document.title = "published " + ack.offset;
    </script>`;
    let roomcastPort = 0;
    const sites = [0, 1].map(() =>
      Deno.serve(
        { hostname: "127.0.0.1", port: 0, onListen: () => {} },
        () => new Response(page(roomcastPort), { headers: { "content-type": "text/html; charset=utf-8" } }),
      )
    );
    const [listed, unlisted] = sites.map((s) => `http://127.0.0.1:${s.addr.port}`) as [string, string];
    try {
      await using server = await startTestServer({ origins: [listed] });
      roomcastPort = Number(new URL(server.url).port);
      const good = await browser.newPage();
      const problems: string[] = [];
      good.on("pageerror", (error) => problems.push(error.message));
      await good.goto(listed);
      await good.waitForFunction(() => document.title.startsWith("published"), null, { timeout: 10_000 });
      assert.equal(await good.title(), "published 1");
      assert.deepEqual(problems, []);
      const history = await (await server.fetch("/api/rooms/cors/messages")).json();
      assert.deepEqual(history.messages.map((m: { data: string }) => m.data), ["from another origin"]);

      const bad = await browser.newPage();
      const blocked: string[] = [];
      bad.on("console", (message) => blocked.push(message.text()));
      await bad.goto(unlisted);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.equal(await bad.title(), "app", "the module never ran");
      assert.ok(blocked.some((text) => /CORS/.test(text)), blocked.join("\n"));
    } finally {
      await Promise.all(sites.map((s) => s.shutdown()));
    }
  },
);
