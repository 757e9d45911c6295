/**
 * The bench's app backend for roomcast-proxy: answers every proxy call (Centrifugo's format) with
 * `{"result":{}}`, as a backend that allows everything would, as fast as Deno serves. Prints the
 * line `listening on http://127.0.0.1:<port>/` (bench/proc.ts waits for it).
 * Usage: deno run -A bench/proxy_backend.ts
 */
const ALLOW = '{"result":{}}';
let calls = 0;
Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => console.log(`listening on http://127.0.0.1:${port}/`),
}, async (request) => {
  await request.arrayBuffer();
  calls++;
  return new Response(ALLOW, { headers: { "content-type": "application/json" } });
});
Deno.addSignalListener("SIGTERM", () => {
  console.log(`proxy backend: ${calls} calls`);
  Deno.exit(0);
});
