/** Every transport the server mounts, in one list (routes/app.ts mounts them in this order). */
import type { Transport } from "./transport.ts";
import { mountWs } from "./ws/ws.ts";
import { mountRaw } from "./raw/raw.ts";
import { mountSse } from "./sse/sse.ts";
import { mountSocketIo } from "./socketio/socketio.ts";
import { mountPusher } from "./pusher/pusher.ts";
import { mountStomp } from "./stomp/stomp.ts";
import { mountWamp } from "./wamp/wamp.ts";

export const TRANSPORTS: readonly Transport[] = [
  // `/ws`, and `/ws?batch=1`, which hands the socket to batch/.
  { name: "ws", mount: mountWs },
  { name: "raw", mount: mountRaw },
  { name: "sse", mount: mountSse },
  { name: "socketio", mount: mountSocketIo },
  // `/app/:key` and the HTTP API under `/apps/:app_id`, where ROOMCAST_PUSHER_APPS lists apps.
  { name: "pusher", mount: mountPusher },
  // `/stomp`: STOMP 1.0–1.2, destinations /topic/<room>.
  { name: "stomp", mount: mountStomp },
  // `/wamp`: WAMP v2 Basic Profile (wamp.2.json), topics are rooms, RPC between this isolate's clients.
  { name: "wamp", mount: mountWamp },
];
