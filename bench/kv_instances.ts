/**
 * Deno Deploy's shape where `kv.watch` works (bench target roomcast-kv2i): instances in Deploy mode
 * (`ROOMCAST_SEQUENCER=kv`, each with its own handle on one KV file, nothing else shared, no
 * BroadcastChannel between them) run as isolates of one process, where a watch sees the other
 * instances' writes as it does on Deploy's KV (between processes on a local file it does not: that
 * is roomcast-kv2, which has only the poll).
 *
 * Usage: deno run -A --unstable-kv --unstable-net bench/kv_instances.ts PORT [PORT…]
 * (one instance per port, on HOSTNAME; the rest of the configuration from the environment).
 * Prints "listening on URL" once every instance listens.
 */
/// <reference lib="deno.worker" />
import { loadConfig } from "../lib/config.ts";
import { startServer } from "../routes/serve/server.ts";

if (self.name?.startsWith("instance")) {
  self.onmessage = async (event: MessageEvent<{ port: number }>) => {
    const env = { ...Deno.env.toObject(), ROOMCAST_SEQUENCER: "kv", ROOMCAST_WORKERS: "1", PORT: `${event.data.port}` };
    const server = await startServer({ config: loadConfig(env) });
    self.postMessage(server.url);
  };
} else {
  const ports = Deno.args.map(Number);
  if (ports.length === 0 || !ports.every((p) => Number.isInteger(p) && p > 0)) {
    console.error("usage: kv_instances.ts PORT [PORT…]");
    Deno.exit(2);
  }
  const urls = await Promise.all(ports.map((port, i) =>
    new Promise<string>((resolve, reject) => {
      const worker = new Worker(import.meta.url, { type: "module", name: `instance-${i}` });
      worker.onmessage = (event: MessageEvent<string>) => resolve(event.data);
      worker.onerror = (event) => reject(event.error ?? new Error(event.message));
      worker.postMessage({ port });
    })
  ));
  console.log(`listening on ${urls[0]} (instances: ${urls.join(" ")})`);
  Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
}
