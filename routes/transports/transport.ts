/**
 * The transport seam: what every client protocol (ws, batch, raw, sse, socketio, pusher, stomp,
 * wamp) is to the server. A transport is one folder under routes/transports/ that mounts
 * its routes (`Transport.mount`) and, for each client connection, takes the same steps in this
 * order, through the same helpers:
 *
 * 1. **Refused or not** (`refuseStream`, `originRefusal`, identity.ts): the server is draining, or
 *    the request is another site's (a foreign `Origin`, or none with `Sec-Fetch-Site: cross-site`)
 *    or a page of this server at an address not in `ROOMCAST_HOSTS`. HTTP transports answer 403; a
 *    WebSocket completes its upgrade and is told which setting would allow it, then closed (1008).
 * 2. **Admitted** (`Admitted.take`, admitted.ts): a slot against the connections in all, per
 *    address, and the connect rate, before anything else is done for the client. Refused here,
 *    the client is told why (`unavailable`, `rate_limited`) in its protocol, and nothing else runs.
 * 3. **Identified** (`identify`/`identifyToken`, identity.ts): the JWT when auth is on, a guest
 *    otherwise; a client-chosen name through `clientName`; then, where `ROOMCAST_PROXY_CONNECT_URL`
 *    is set, **vetted** by the app's backend (`vetConnect`, lib/proxy.ts), which may refuse it or set
 *    its user. Its joins and publishes are asked about by the hub (lib/hub.ts), whatever the transport.
 * 4. **Connected** (`Admitted.connect`): the hub connection, made only through the slot (one at a
 *    time; another on the same slot spends the connect rate again), with the transport's `Peer`,
 *    which frames what the hub sends (an `Encoder`) and says how much is queued (the send-queue
 *    cap, close 4008).
 * 5. **Frames**: each client frame is parsed once and handed to `hub.frames` (`receive` for JSON
 *    text, `submit` for a frame the transport built); the hub answers through the peer.
 * 6. **Released** (`Admitted.release`) when the client goes: the hub connection is forgotten and
 *    the slot given back.
 *
 * A transport passes the transport contract (tests/transport_contract.ts): join, publish with ack,
 * recovery, admission exactly once per client connection, connect rate, auth, no closed connection
 * in presence, floods that never hold the event loop, drain. docs/ARCHITECTURE.md says how to add one.
 */
import type { Hono } from "hono";
import type { AppDeps, AppEnv } from "../deps.ts";

export interface Transport {
  /** As docs, metrics and the contract suite name it. */
  readonly name: string;
  /** Mounts its routes; what it returns is closed when the server drains. */
  mount(app: Hono<AppEnv>, deps: AppDeps): { close(): void } | void;
}
