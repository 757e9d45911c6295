/**
 * The reference server: `Deno.serve` + `Deno.upgradeWebSocket`, a `Map<room, Set<socket>>`, no
 * framework, no storage, no limits. Each text frame on `/:room` goes to the room's other sockets.
 * This loop is our physical limit on this stack. Usage: deno run -A bench/bare_server.ts [port] [--ack]
 *
 * `--ack` (the bench's bare-ack): the same loop speaking roomcast's frames, the floor of its
 * protocol. Each text frame is sent on as a message frame of roomcast's shape and size (room, id,
 * epoch, offset, from, data, ts) and its sender gets an ack of roomcast's shape; nothing is parsed,
 * checked or stored.
 */
const rooms = new Map<string, Set<WebSocket>>();
const port = Number(Deno.args.find((a) => /^\d+$/.test(a)) ?? 0);
const ack = Deno.args.includes("--ack");
const offsets = new Map<string, number>();
const EPOCH = "k3j4h5g6m7n8";
let ids = 0;

Deno.serve({
  hostname: "127.0.0.1",
  port,
  onListen: ({ port }) => console.log(`listening on http://127.0.0.1:${port}`),
}, (request) => {
  if (request.headers.get("upgrade") !== "websocket") return new Response("bare server");
  const room = new URL(request.url).pathname.slice(1) || "lobby";
  const { socket, response } = Deno.upgradeWebSocket(request);
  socket.onopen = () => {
    let members = rooms.get(room);
    if (!members) rooms.set(room, members = new Set());
    members.add(socket);
  };
  socket.onmessage = (event) => {
    let out = event.data;
    if (ack) {
      const offset = (offsets.get(room) ?? 0) + 1;
      offsets.set(room, offset);
      const id = `m0123456789${(1e9 + ids++).toString(36)}`;
      out = `{"type":"message","room":"${room}","id":"${id}","epoch":"${EPOCH}","offset":${offset},` +
        `"from":{"id":"guest-0123456789","name":"bench"},"data":${JSON.stringify(event.data)},"ts":${Date.now()}}`;
      socket.send(`{"type":"ack","room":"${room}","id":"${id}","offset":${offset},"epoch":"${EPOCH}"}`);
    }
    for (const peer of rooms.get(room) ?? []) {
      if (peer !== socket && peer.readyState === WebSocket.OPEN) peer.send(out);
    }
  };
  socket.onclose = () => {
    rooms.get(room)?.delete(socket);
  };
  return response;
});
