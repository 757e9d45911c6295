/**
 * roomcast: `deno task start`. Reads the environment, serves, and on SIGINT/SIGTERM drains
 * (healthz 503, sockets closed with 1001, history flushed) and exits within 5 s.
 */
import { ConfigError, loadConfig, redisHost } from "./lib/config.ts";
import { startCluster } from "./routes/serve/cluster.ts";
import { startServer } from "./routes/serve/server.ts";
import { listensOnLoopback } from "./routes/trust.ts";
import { VERSION } from "./lib/version.ts";

// Before the first socket: Deno then writes each WebSocket frame with writev, instead of copying it
// into a buffer of the socket's own that keeps the size of the largest frame it ever sent for as long
// as the socket lives (one 30 KB message to 2,000 sockets: 44 KiB of RSS each left behind, 14 with
// writev; a Socket.IO connection idle: 35 → 30 KiB). `DENO_USE_WRITEV=` (empty) turns it off.
if (Deno.env.get("DENO_USE_WRITEV") === undefined) {
  try {
    Deno.env.set("DENO_USE_WRITEV", "1");
  } catch { /* a runtime that won't set it (no --allow-env for it) */ }
}

let config;
try {
  config = loadConfig(Deno.env.toObject(), undefined, (warning) => console.warn(warning));
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`roomcast: bad configuration: ${error.message}`);
  Deno.exit(2);
}

const onListen = ({ hostname, port }: Deno.NetAddr) => {
  const shown = hostname === "0.0.0.0" || hostname === "::" ? "localhost" : hostname;
  const workers = config.workers > 1 ? `, ${config.workers} isolates` : "";
  // The Redis URL may carry a password: only its host is shown.
  const where = config.redisUrl
    ? `history: redis at ${redisHost(config.redisUrl)}`
    : `history: ${config.kvPath ?? "platform default"}, sequencer: ${config.sequencer}`;
  console.log(`roomcast ${VERSION} listening on http://${shown}:${port} (${where}${workers})`);
  if (!listensOnLoopback(config) && !config.apiKey) {
    console.warn(
      `roomcast: listening on ${hostname} without ROOMCAST_API_KEY: the HTTP API's writes are closed ` +
        "(and /metrics without ROOMCAST_METRICS_KEY) until it is set",
    );
  }
};
// One isolate, or N: a coordinator that serves too, and its Workers (ROOMCAST_WORKERS).
const server = await (config.workers > 1 ? startCluster({ config, onListen }) : startServer({ config, onListen }))
  .catch((error) => {
    const why = error instanceof Deno.errors.AddrInUse
      ? `port ${config.port} on ${config.hostname} is already in use (another roomcast?): stop it, or set PORT to another port`
      : error instanceof Error
      ? error.message
      : error;
    console.error(`roomcast: could not start: ${why}`);
    Deno.exit(1);
  });

// Last resort: an error no code path handled is a bug. It is logged and counted, and the process
// goes on serving its other connections instead of dropping them all.
const unexpected = (what: string) => (event: Event) => {
  event.preventDefault();
  const error = event instanceof PromiseRejectionEvent ? event.reason : (event as ErrorEvent).error;
  server.metrics.unexpected.inc();
  console.error(`roomcast: ${what} (a bug: please report it):`, error);
};
addEventListener("unhandledrejection", unexpected("unhandled rejection"));
addEventListener("error", unexpected("uncaught exception"));

let stopping = false;
function stop(signal: string): void {
  if (stopping) return;
  stopping = true;
  console.log(`roomcast: ${signal}, draining`);
  const deadline = setTimeout(() => Deno.exit(0), 5000);
  server.drain(4000).finally(() => {
    clearTimeout(deadline);
    Deno.exit(0);
  });
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  try {
    Deno.addSignalListener(signal, () => stop(signal));
  } catch {
    // Platforms without signals (Deno Deploy) stop isolates themselves.
  }
}
