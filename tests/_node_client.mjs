// Runs static/roomcast.js under Node (22+, which has a global WebSocket) against the server at
// process.argv[2], and prints one JSON line of what it saw; tests/client_node_test.ts reads it.
import { RoomcastClient } from "../static/roomcast.js";

const url = process.argv[2];
// Node 20 has no global WebSocket: argv[3], when given, is a module exporting one (the `ws`
// package's wrapper.mjs), injected as the README says.
const WebSocketImpl = process.argv[3] ? (await import(process.argv[3])).WebSocket : undefined;
const options = WebSocketImpl ? { WebSocketImpl } : {};
const deadline = setTimeout(() => {
  console.log(JSON.stringify({ error: "timed out" }));
  process.exit(2);
}, 15_000);

const ann = new RoomcastClient({ url, name: "Ann", ...options });
const bob = new RoomcastClient({ url, name: "Bob", ...options });
try {
  const states = [];
  ann.addEventListener("state", (e) => states.push(e.detail.state));
  ann.connect();
  bob.connect();
  const room = ann.subscribe("node");
  const joined = await room.joined;
  await bob.join("node");
  const heard = new Promise((resolve) => room.addEventListener("message", (e) => resolve(e.detail), { once: true }));
  const ack = await bob.publish("node", { text: "from bob" });
  const message = await heard;
  const own = await room.publish({ text: "from ann" });
  const history = await room.history({ limit: 10 });
  const presence = await room.presence();
  const position = room.position;
  await room.unsubscribe();
  console.log(JSON.stringify({
    node: process.version,
    joined: { room: joined.room, recovered: joined.recovered },
    ack: { offset: ack.offset },
    message: { offset: message.offset, from: message.from.name, data: message.data },
    own: { offset: own.offset },
    history: history.messages.map((m) => m.data.text),
    presence: presence.members.map((m) => m.name).sort(),
    position,
    after: room.position,
    states,
  }));
} catch (error) {
  console.log(JSON.stringify({ error: String(error?.stack ?? error) }));
  process.exitCode = 1;
} finally {
  clearTimeout(deadline);
  ann.close();
  bob.close();
}
