// Socket.IO 4 on Node for the benchmark: rooms as in roomcast's mapping, websocket transport.
// "join" joins a room; "publish" (room, data) goes to the room's other sockets as "message".
// Usage: node bench/node/socketio_server.mjs [port]
import { createServer } from "node:http";
import { Server } from "socket.io";

const http = createServer((_req, res) => res.end("socket.io bench server"));
const io = new Server(http, { transports: ["websocket"], serveClient: false, perMessageDeflate: false });
io.on("connection", (socket) => {
  socket.on("join", (room, ack) => {
    socket.join(room);
    if (typeof ack === "function") ack();
  });
  socket.on("publish", (room, data) => socket.to(room).emit("message", data));
});
http.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${http.address().port}`);
});
