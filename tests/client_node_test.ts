/**
 * static/roomcast.js under Node 22 (its global WebSocket), against the real server: subscribe,
 * publish both ways, history, presence, unsubscribe. Node 22 comes from the npm registry
 * (`npx -y node@22`) unless the `node` on PATH is 22 or newer.
 */
import assert from "node:assert/strict";
import { startTestServer } from "./_server.ts";

async function nodeCommand(): Promise<string[]> {
  try {
    const out = await new Deno.Command("node", { args: ["--version"], stdout: "piped", stderr: "null" }).output();
    const major = Number(/^v(\d+)/.exec(new TextDecoder().decode(out.stdout))?.[1]);
    if (major >= 22) return ["node"];
  } catch { /* no node on PATH */ }
  return ["npx", "-y", "node@22"];
}

Deno.test({
  name: "roomcast.js in Node 22: subscribe, publish, history, presence, unsubscribe",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  await using server = await startTestServer();
  const [command, ...args] = await nodeCommand();
  const script = new URL("./_node_client.mjs", import.meta.url).pathname;
  const out = await new Deno.Command(command!, {
    args: [...args, script, server.ws("/ws")],
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
  assert.match(result.node, /^v(2[2-9]|[3-9]\d)\./);
  assert.deepEqual(result.joined, { room: "node", recovered: false });
  assert.deepEqual(result.ack, { offset: 1 });
  assert.deepEqual(result.message, { offset: 1, from: "Bob", data: { text: "from bob" } });
  assert.deepEqual(result.own, { offset: 2 });
  assert.deepEqual(result.history, ["from bob", "from ann"]);
  assert.deepEqual(result.presence, ["Ann", "Bob"]);
  assert.equal(result.position.offset, 2);
  assert.equal(result.after, null, "an unsubscribed room has no position");
  assert.deepEqual(result.states.slice(0, 2), ["connecting", "open"]);
  assert.doesNotMatch(stderr, /Error|Warning/, stderr);
});
