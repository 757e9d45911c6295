/**
 * `deno task socketio-fixture`: the server the official Engine.IO v3, Engine.IO v4 and Socket.IO
 * v5 protocol test suites (socketio/socket.io, docs/…-test-suite/) expect on localhost:3000, on the
 * stack roomcast serves `/socket.io/` with (Hono, routes/eio's Engine.IO server, the official
 * `socket.io` Server bound to it):
 *
 * - `/engine.io/`: a bare Engine.IO echo server for EIO=3 and EIO=4;
 * - `/socket.io/`: a Socket.IO server: on connect it emits `auth` with the handshake's auth (on `/`
 *   and `/custom`), echoes `message` as `message-back`, acks `message-with-ack` with its arguments;
 *   other namespaces are refused ("Invalid namespace").
 *
 * Both with ping interval 300 ms, ping timeout 200 ms, max payload 1e6, CORS `*`. Run a suite with
 * `npm ci && npm test` in its directory while this runs. Options: `--port=N` (default 3000).
 */
import { Hono } from "hono";
import { Server } from "socket.io";
import { EngineServer } from "../routes/transports/socketio/eio/server.ts";
import { mountEngine } from "../routes/transports/socketio/eio/mount.ts";
import type { AppContext, AppEnv } from "../routes/deps.ts";
import { remoteHost } from "../routes/deps.ts";

const port = Number(Deno.args.find((a) => a.startsWith("--port="))?.slice(7) ?? 3000);
const settings = { pingInterval: 300, pingTimeout: 200, maxPayload: 1_000_000, upgradeTimeout: 10_000 };

/** CORS `*`, as the `cors` middleware answers `{origin: "*"}`. */
function cors(request: Request): Headers {
  const headers = new Headers({ "access-control-allow-origin": "*" });
  if (request.method === "OPTIONS") {
    headers.set("access-control-allow-methods", "GET,HEAD,PUT,PATCH,POST,DELETE");
    const asked = request.headers.get("access-control-request-headers");
    if (asked) headers.set("access-control-allow-headers", asked);
    headers.set("vary", "Access-Control-Request-Headers");
  }
  return headers;
}

const echo = new EngineServer({ ...settings, protocols: [3, 4], headers: cors });
echo.on("connection", (socket) => socket.on("data", (data: string | ArrayBuffer) => socket.write(data)));

const engine = new EngineServer({ ...settings, protocols: [3, 4], headers: cors });
const io = new Server({ connectTimeout: 1000, serveClient: false });
io.bind(engine);
io.on("connection", (socket) => {
  socket.emit("auth", socket.handshake.auth);
  socket.on("message", (...args: unknown[]) => socket.emit("message-back", ...args));
  socket.on("message-with-ack", (...args: unknown[]) => {
    const ack = args.pop() as (...values: unknown[]) => void;
    ack(...args);
  });
});
io.of("/custom").on("connection", (socket) => socket.emit("auth", socket.handshake.auth));

const app = new Hono<AppEnv>();
const address = (c: AppContext) => remoteHost(c) ?? "local";
mountEngine(app, "/engine.io/", echo, address);
mountEngine(app, "/socket.io/", engine, address);

Deno.serve(
  { hostname: "127.0.0.1", port, onListen: ({ port }) => console.log(`socketio-fixture on http://localhost:${port}`) },
  (request, info) => app.fetch(request, { remoteAddr: info.remoteAddr }),
);
