/**
 * The reference server: `Deno.serve` + `Deno.upgradeWebSocket`, a `Map<room, Set<socket>>`, no
 * framework, no storage, no limits. Each text frame on `/:room` goes to the room's other sockets.
 * This loop is our physical limit on this stack. Usage: deno run -A bench/bare_server.ts [port]
 */
const rooms = new Map<string, Set<WebSocket>>();
const port = Number(Deno.args.find((a) => /^\d+$/.test(a)) ?? 0);
/** `--ack`: the sender of each frame gets an ack naming the frame's offset in its room, as every
 * protocol that confirms a publish must send: the floor for roomcast's publish and ack. */
const ack = Deno.args.includes("--ack");
const offsets = new Map<string, number>();

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
    if (ack) {
      const offset = (offsets.get(room) ?? 0) + 1;
      offsets.set(room, offset);
      socket.send(`{"type":"ack","offset":${offset}}`);
    }
    for (const peer of rooms.get(room) ?? []) {
      if (peer !== socket && peer.readyState === WebSocket.OPEN) peer.send(event.data);
    }
  };
  socket.onclose = () => {
    rooms.get(room)?.delete(socket);
  };
  return response;
});
