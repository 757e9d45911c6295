/**
 * A cluster Worker (routes/serve/worker.ts) that refuses to start while the process's environment
 * variable ROOMCAST_TEST_FAILED_STARTS is above 0, counting it down each time (Workers share the
 * process's environment): how a replacement looks that can't start (a port taken, a broken
 * deployment).
 *
 * Load this module in a Worker only.
 */
/// <reference lib="deno.worker" />

const left = Number(Deno.env.get("ROOMCAST_TEST_FAILED_STARTS") ?? 0);
if (left > 0) {
  Deno.env.set("ROOMCAST_TEST_FAILED_STARTS", String(left - 1));
  self.onmessage = (event: MessageEvent) => {
    if (event.data?.control === "start") {
      self.postMessage({ control: "failed", node: event.data.node, error: "refused by the test" });
    }
  };
} else {
  await import("../routes/serve/worker.ts");
}
