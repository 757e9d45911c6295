// wampy 8 under Node against the server at process.argv[2] (a ws:// URL of /wamp): subscribes to
// "wampy.room", publishes there with acknowledge, calls "sum" (registered by the test with
// autobahn), registers "echo" and answers one call; prints one JSON line of what it saw.
import { Wampy } from "wampy";
import WebSocket from "ws";

const url = process.argv[2];
const deadline = setTimeout(() => {
  console.log(JSON.stringify({ error: "timed out" }));
  process.exit(2);
}, 15_000);
const wampy = new Wampy(url, { realm: "realm1", ws: WebSocket, autoReconnect: false });
try {
  await wampy.connect();
  const events = [];
  await wampy.subscribe("wampy.room", (e) => events.push({ args: e.argsList, details: e.details }));
  const published = await wampy.publish("wampy.room", "from wampy", { acknowledge: true });
  const sum = await wampy.call("sum", [2, 3]);
  let echoed;
  await wampy.register("echo", (e) => {
    echoed = e.argsList;
    return { argsList: e.argsList };
  });
  console.log(JSON.stringify({ ready: true }));
  // The test publishes into the room and calls echo; wait for both.
  const start = Date.now();
  while ((events.length < 1 || echoed === undefined) && Date.now() - start < 8000) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  console.log(JSON.stringify({ published: typeof published, sum: sum.argsList, events, echoed }));
  await wampy.disconnect();
} catch (error) {
  console.log(JSON.stringify({ error: String(error?.stack ?? error) }));
  process.exitCode = 1;
} finally {
  clearTimeout(deadline);
}
