/**
 * docs/DEPLOY.md's token recipes, run as written (issue 24, item 4): the Node snippet under Node
 * with `jose` from npm, the Python one with Debian's PyJWT (`apt-get install python3-jwt`: skipped
 * locally without it, failing in CI). Each token must make the real server say who the user is
 * and hold the `rooms` claim. No PHP package source is reachable here: the PHP snippet is not run.
 */
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./_server.ts";
import { skipping } from "./_skips.ts";

const root = new URL("../", import.meta.url).pathname;
const SECRET = "a-secret-the-recipes-sign-with";
const inCI = Deno.env.get("CI") === "true";

/** The fenced block of `lang` under the heading that starts with `heading`. */
async function snippet(heading: string, lang: string): Promise<string> {
  const doc = await Deno.readTextFile(`${root}docs/DEPLOY.md`);
  const at = doc.indexOf(`\n${heading}`);
  assert.ok(at >= 0, `DEPLOY.md has "${heading}"`);
  const start = doc.indexOf("```" + lang + "\n", at) + lang.length + 4;
  return doc.slice(start, doc.indexOf("\n```", start) + 1);
}

async function run(command: string, args: string[], cwd: string): Promise<string> {
  const out = await new Deno.Command(command, {
    args,
    cwd,
    env: { ROOMCAST_AUTH_SECRET: SECRET, PATH: Deno.env.get("PATH") ?? "" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return text;
}

/** Connects with the token: the user it names, and whether it may join rooms in and out of its claim. */
async function check(server: TestServer, token: string): Promise<void> {
  const client = await server.client(`?token=${token}`);
  assert.deepEqual(client.welcome?.user, { id: "u-42", name: "Ann" });
  assert.equal((await client.request({ type: "join", room: "team-red" })).type, "joined");
  const refused = await client.request({ type: "join", room: "elsewhere" });
  assert.deepEqual([refused.type, refused.code], ["error", "forbidden"]);
  await client.close();
}

/** Runs a recipe in a temporary folder (`mint` returns the token it printed) and checks the token. */
async function minted(mint: (dir: string) => Promise<string>): Promise<void> {
  await using server = await startTestServer({ authSecret: SECRET });
  const dir = await Deno.makeTempDir();
  try {
    await check(server, await mint(dir));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "DEPLOY.md's Node recipe (jose) mints a token the server takes",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  await minted(async (dir) => {
    await run("npm", ["install", "--no-audit", "--no-fund", "--silent", "jose@5"], dir);
    await Deno.writeTextFile(`${dir}/mint.mjs`, await snippet("### Node", "js"));
    return await run("node", ["mint.mjs"], dir);
  });
});

const PYTHON = "/usr/bin/python3";
async function havePyJwt(): Promise<boolean> {
  try {
    const out = await new Deno.Command(PYTHON, { args: ["-c", "import jwt"], stderr: "null" }).output();
    return out.success;
  } catch {
    return false;
  }
}
const pyJwt = await havePyJwt();
if (!pyJwt && !inCI) skipping("PyJWT", "apt-get install -y python3-jwt");

Deno.test({
  name: "DEPLOY.md's Python recipe (PyJWT) mints a token the server takes",
  ignore: !pyJwt && !inCI,
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  await minted(async (dir) => {
    await Deno.writeTextFile(`${dir}/mint.py`, await snippet("### Python", "python"));
    return await run(PYTHON, ["mint.py"], dir);
  });
});

Deno.test("DEPLOY.md's PHP recipe signs the same claims (read, not run: no package source here)", async () => {
  const php = await snippet("### PHP", "php");
  assert.match(php, /JWT::encode\(/);
  assert.match(php, /'sub' => 'u-42', 'name' => 'Ann', 'rooms' => \['team-\*'\], 'exp' => time\(\) \+ 3600/);
  assert.match(php, /'HS256'/);
});
