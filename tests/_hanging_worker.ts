/**
 * A cluster Worker (routes/serve/worker.ts) that can be made to fall silent: when a test posts "hang" on
 * the BroadcastChannel "roomcast-test-hang", every Worker then running sends nothing more to the
 * coordinator (no reply, no lease renewal), which is how a Worker whose event loop is stuck looks
 * from there. (A Worker really stuck in a loop can't be used in a test: Deno does not terminate a
 * Worker whose thread is busy or blocked, and the process could not end.)
 *
 * Load this module in a Worker only.
 */
/// <reference lib="deno.worker" />
import "../routes/serve/worker.ts";

const channel = new BroadcastChannel("roomcast-test-hang");
channel.onmessage = (event: MessageEvent) => {
  if (event.data === "hang") self.postMessage = () => {};
};
