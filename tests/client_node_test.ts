/**
 * static/roomcast.js under Node against the real server: subscribe, publish both ways, history,
 * presence, unsubscribe. Node 22 with its global WebSocket; Node 20, which has none, with the `ws`
 * package injected as `WebSocketImpl` (as the README says). Node comes from the npm registry
 * (`npx -y node@22`, `node@20`) unless the `node` on PATH is that major; `ws` is installed from npm
 * into a temporary folder.
 */
import assert from "node:assert/strict";
import { startTestServer } from "./_server.ts";

async function nodeCommand(major: number): Promise<string[]> {
  try {
    const out = await new Deno.Command("node", { args: ["--version"], stdout: "piped", stderr: "null" }).output();
    const have = Number(/^v(\d+)/.exec(new TextDecoder().decode(out.stdout))?.[1]);
    if (have === major) return ["node"];
  } catch { /* no node on PATH */ }
  return ["npx", "-y", `node@${major}`];
}

async function runClient(major: number, extra: string[]): Promise<Record<string, unknown>> {
  await using server = await startTestServer();
  const [command, ...args] = await nodeCommand(major);
  const script = new URL("./_node_client.mjs", import.meta.url).pathname;
  const out = await new Deno.Command(command!, {
    args: [...args, script, server.ws("/ws"), ...extra],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(180_000),
  }).output();
  const stdout = new TextDecoder().decode(out.stdout).trim();
  const stderr = new TextDecoder().decode(out.stderr).trim();
  const line = stdout.split("\n").at(-1) ?? "";
  assert.ok(line.startsWith("{"), `no result from Node: ${stdout}\n${stderr}`);
  const result = JSON.parse(line);
  assert.equal(result.error, undefined, result.error);
  assert.equal(out.code, 0, stderr);
  assert.doesNotMatch(stderr, /Error|Warning/, stderr);
  return result;
}

function assertSession(result: Record<string, unknown>): void {
  assert.deepEqual(result.joined, { room: "node", recovered: false });
  assert.deepEqual(result.ack, { offset: 1 });
  assert.deepEqual(result.message, { offset: 1, from: "Bob", data: { text: "from bob" } });
  assert.deepEqual(result.own, { offset: 2 });
  assert.deepEqual(result.history, ["from bob", "from ann"]);
  assert.deepEqual(result.presence, ["Ann", "Bob"]);
  assert.equal((result.position as { offset: number }).offset, 2);
  assert.equal(result.after, null, "an unsubscribed room has no position");
  assert.deepEqual((result.states as string[]).slice(0, 2), ["connecting", "open"]);
}

Deno.test({
  name: "roomcast.js in Node 22: subscribe, publish, history, presence, unsubscribe",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const result = await runClient(22, []);
  assert.match(result.node as string, /^v22\./);
  assertSession(result);
});

Deno.test({
  name: "roomcast.js in Node 20 with the ws package injected as WebSocketImpl: the same session",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dir = await Deno.makeTempDir();
  try {
    const install = await new Deno.Command("npm", {
      args: ["install", "--prefix", dir, "--no-audit", "--no-fund", "--silent", "ws@8"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(install.code, 0, new TextDecoder().decode(install.stderr));
    const result = await runClient(20, [`${dir}/node_modules/ws/wrapper.mjs`]);
    assert.match(result.node as string, /^v20\./);
    assertSession(result);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
