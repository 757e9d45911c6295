/**
 * Measures what a WebSocket message queued for a peer that does not read costs the server process
 * besides its payload (Deno's per-message write task and buffers). roomcast's send-queue cap
 * counts this overhead (lib/peer.ts QUEUED_MESSAGE_OVERHEAD).
 * Usage: deno run -A bench/queue_overhead.ts [message bytes…]
 */
import { rssKb } from "./proc.ts";

const rss = () => rssKb("self") * 1024;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function measure(size: number): Promise<void> {
  let server: WebSocket | undefined;
  const ac = new AbortController();
  const srv = Deno.serve({ hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req);
    server = socket;
    return response;
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: srv.addr.port });
  await conn.write(new TextEncoder().encode(
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  ));
  await conn.read(new Uint8Array(4096));
  await sleep(200);
  if (!server) throw new Error("no server socket");
  const frame = "x".repeat(size);
  for (let i = 0; i < 40_000; i++) server.send(frame); // fill the kernel's buffers first
  await sleep(500);
  const [b0, r0] = [server.bufferedAmount, rss()];
  const n = 100_000;
  for (let i = 0; i < n; i++) server.send(frame);
  await sleep(500);
  const [b1, r1] = [server.bufferedAmount, rss()];
  const perMessage = (r1 - r0) / n;
  console.log(
    `${String(size).padStart(5)} B messages: bufferedAmount +${((b1 - b0) / 1e6).toFixed(1)} MB, ` +
      `RSS +${((r1 - r0) / 1e6).toFixed(1)} MB → ${perMessage.toFixed(0)} B per queued message ` +
      `(${(perMessage - size).toFixed(0)} B besides the payload)`,
  );
  conn.close();
  ac.abort();
  await srv.finished.catch(() => {});
}

for (const size of (Deno.args.length ? Deno.args : ["25", "250", "2000"]).map(Number)) await measure(size);
Deno.exit(0);
