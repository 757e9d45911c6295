/// <reference lib="deno.worker" />
import { handler } from "./handler.ts";
self.onmessage = (e: MessageEvent<{ port: number }>) => {
  Deno.serve({
    hostname: "127.0.0.1",
    port: e.data.port,
    reusePort: true,
    onListen: () => self.postMessage("listening"),
  }, handler);
};
