/**
 * Calls between isolates over a MessageChannel (as a Worker and its parent): replies, notices and
 * pushes arrive in the order they were sent, and what one side sends in one turn crosses at once.
 */
import assert from "node:assert/strict";
import { DirectCaller, RpcClient, serveRpc } from "./rpc.ts";

function pair(handlers: Parameters<typeof serveRpc>[1]) {
  const { port1, port2 } = new MessageChannel();
  let crossings = 0;
  port2.addEventListener("message", () => crossings++);
  const server = serveRpc(port1, handlers);
  port1.start();
  port2.start();
  const client = new RpcClient(port2);
  return {
    server,
    client,
    crossings: () => crossings,
    close() {
      client.close();
      server.stop();
      port1.close();
      port2.close();
    },
  };
}

Deno.test("rpc: pushes ride with the replies of their turn, in the order they were sent", async () => {
  const seen: string[] = [];
  const rpc = pair({
    // Pushes something about a call before answering it, as the coordinator pushes a stored message.
    echo: ([value]) => {
      rpc.server.push(`before ${value}`);
      return value;
    },
  });
  try {
    rpc.client.onPush((value) => seen.push(`push ${value}`));
    const replies = [1, 2, 3].map((n) => rpc.client.call<number>("echo", [n]).then((v) => seen.push(`reply ${v}`)));
    await Promise.all(replies);
    assert.deepEqual(seen, [
      "push before 1",
      "push before 2",
      "push before 3",
      "reply 1",
      "reply 2",
      "reply 3",
    ]);
    assert.equal(rpc.crossings(), 1, "three replies and three pushes crossed as one message");
  } finally {
    rpc.close();
  }
});

Deno.test("rpc: a push with no receiver, or after the client closed, is dropped; an unknown operation fails", async () => {
  const rpc = pair({ ping: () => "pong" });
  try {
    rpc.server.push("nobody listens");
    assert.equal(await rpc.client.call("ping", []), "pong");
    await assert.rejects(rpc.client.call("nope", []), /no operation nope/);
    const seen: unknown[] = [];
    rpc.client.onPush((value) => seen.push(value));
    rpc.server.push("heard");
    assert.equal(await rpc.client.call("ping", []), "pong");
    assert.deepEqual(seen, ["heard"]);
    rpc.client.close();
    rpc.server.push("too late");
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(seen, ["heard"]);
    await assert.rejects(rpc.client.call("ping", []), /closed/);
  } finally {
    rpc.close();
  }
});

Deno.test("DirectCaller: the same answers as over a port, with nothing cloned; closed, it refuses", async () => {
  const direct = new DirectCaller();
  const shared = { n: 1 };
  const notices: unknown[] = [];
  direct.serve({
    same: ([value]) => value,
    later: ([value]) => Promise.resolve(value),
    throws: () => {
      throw new Error("bad call");
    },
    rejects: () => Promise.reject(new Error("bad later")),
    notifies: (_args, notify) => {
      queueMicrotask(() => notify("done"));
      return "started";
    },
  });
  assert.equal(await direct.call("same", [shared]), shared, "the very object, not a copy");
  assert.equal(await direct.call("later", [2]), 2);
  await assert.rejects(
    direct.call("throws", []),
    (error: Error) => error.name === "RpcError" && /bad call/.test(error.message),
  );
  await assert.rejects(direct.call("rejects", []), /bad later/);
  await assert.rejects(direct.call("nope", []), /no operation nope/);
  assert.equal(await direct.call("notifies", [], (value) => notices.push(value)), "started");
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(notices, ["done"]);
  const pushed: unknown[] = [];
  direct.onPush((value) => pushed.push(value));
  direct.push("a");
  direct.close();
  direct.push("b");
  assert.deepEqual(pushed, ["a"]);
  await assert.rejects(direct.call("same", [1]), /closed/);
});

Deno.test("rpc: a call that failed is forgotten, notices and all (a failed append's durability notice waits for nothing)", async () => {
  let late: (() => void) | undefined;
  const rpc = pair({
    // Fails, and would still say something about the call later.
    fails: (_args, notify) => {
      late = () => notify("late");
      throw new Error("refused");
    },
    ping: () => "pong",
  });
  try {
    const notices: unknown[] = [];
    await assert.rejects(rpc.client.call("fails", [], (value) => notices.push(value)), /refused/);
    late?.();
    assert.equal(await rpc.client.call("ping", []), "pong", "the late notice crossed before this reply");
    assert.deepEqual(notices, []);
  } finally {
    rpc.close();
  }
});
