/**
 * A cluster Worker (routes/serve/worker.ts) whose thread a test can hold up: when a test posts
 * `{ stall: ms }` (at most 2,000) on the BroadcastChannel "roomcast-test-stall", every Worker then
 * running busies its thread that long, as a long garbage collection or a burst of work would.
 *
 * Load this module in a Worker only.
 */
/// <reference lib="deno.worker" />
import "../routes/serve/worker.ts";

const channel = new BroadcastChannel("roomcast-test-stall");
channel.onmessage = (event: MessageEvent) => {
  const ms = Math.min(2000, Number(event.data?.stall) || 0);
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // held up
  }
};
