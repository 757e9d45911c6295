/**
 * One Worker of a cluster (routes/serve/cluster.ts): a serving isolate (routes/serve/isolate.ts)
 * whose coordinator is its parent, over `postMessage`. It starts when the coordinator says so, and
 * drains when told.
 */
/// <reference lib="deno.worker" />
import type { IsolateReport, IsolateStart } from "../../lib/engine/cluster/coordinator.ts";
import { portLink, startIsolate } from "./isolate.ts";
import type { RunningServer } from "./server.ts";

let server: RunningServer | undefined;

async function start(start: IsolateStart): Promise<void> {
  const { node } = start;
  try {
    server = await startIsolate(portLink(self, start), start);
    self.postMessage({ control: "listening", node, port: Number(new URL(server.url).port) } satisfies IsolateReport);
  } catch (error) {
    self.postMessage({ control: "failed", node, error: String(error) } satisfies IsolateReport);
  }
}

// An error no code path handled is a bug: logged, and this Worker goes on serving its connections
// (main.ts does the same for the coordinator).
for (const type of ["error", "unhandledrejection"] as const) {
  self.addEventListener(type, (event: Event) => {
    event.preventDefault();
    const error = event instanceof PromiseRejectionEvent ? event.reason : (event as ErrorEvent).error;
    server?.metrics.unexpected.inc();
    console.error(`roomcast: ${type === "error" ? "uncaught exception" : "unhandled rejection"} (a bug):`, error);
  });
}

self.addEventListener("message", (event: MessageEvent) => {
  const data = event.data as { control?: string };
  if (data?.control === "start") void start(event.data as IsolateStart);
  if (data?.control === "drain") {
    const node = (event.data as { node: string }).node;
    void (server?.drain(4000) ?? Promise.resolve()).finally(() =>
      self.postMessage({ control: "drained", node } satisfies IsolateReport)
    );
  }
});
