/**
 * The reference server: `Deno.serve` + `Deno.upgradeWebSocket`, a `Map<room, Set<socket>>`, no
 * framework, no storage, no limits. Each text frame on `/:room` goes to the room's other sockets.
 * This loop is our physical limit on this stack. Usage: deno run -A bench/bare_server.ts [port]
 */
const rooms = new Map<string, Set<WebSocket>>();
const port = Number(Deno.args[0] ?? 0);

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
    for (const peer of rooms.get(room) ?? []) {
      if (peer !== socket && peer.readyState === WebSocket.OPEN) peer.send(event.data);
    }
  };
  socket.onclose = () => {
    rooms.get(room)?.delete(socket);
  };
  return response;
});
