/**
 * Liveness of the connections whose liveness is the app's (`/ws`), checked every hub tick (at most
 * a second apart, lib/hub.ts). A connection that nothing was sent to for a heartbeat interval is
 * pinged, and so is one silent for an interval, once (its pong, or any frame, ends the silence);
 * one silent for two intervals is closed (4000), but never before a ping had an interval to be
 * answered. A connection that talks and is talked to needs no ping (Deno's WebSocket pings go by
 * the same rule), and the pings of idle connections go out in the ticks where each falls due
 * instead of all at once: a ping costs about what a delivery does, so one burst to a hundred
 * thousand connections would hold the event loop for about a second. At most `maxPings` go out in
 * one tick; those left are still due at the next. Connections whose token expired are closed
 * (1008), whatever their liveness.
 */
import type { Connection } from "./connection.ts";
import type { Connections } from "./connections.ts";
import { Outbound } from "./peer.ts";
import { CloseCode } from "./protocol.ts";

export function checkLiveness(connections: Connections, now: number, heartbeatMs: number, maxPings = Infinity): void {
  const ping = new Outbound({ type: "ping" });
  const closing: Connection[] = [];
  let pinged = 0;
  for (const connection of connections.values()) {
    if (connection.closed) continue;
    if (connection.expiresBy(now)) closing.push(connection);
    else if (connection.peer.liveness !== "app") continue;
    else {
      const silence = now - connection.lastSeen;
      const unanswered = connection.pingedAt > connection.lastSeen;
      // Closed only once a ping has had an interval to be answered: a tick that comes late (a busy
      // event loop) must not close a connection it never pinged.
      if (silence >= 2 * heartbeatMs && unanswered && now - connection.pingedAt >= heartbeatMs) {
        closing.push(connection);
      } else if (
        pinged < maxPings && (now - connection.lastSent >= heartbeatMs || (!unanswered && silence >= heartbeatMs))
      ) {
        connection.sendOut(ping);
        connection.pingedAt = now;
        pinged++;
      }
    }
  }
  // Closed after the walk (closing changes the set being walked): expired ones with 1008.
  for (const connection of closing) {
    if (connection.closeIfExpired(now)) continue;
    connection.close(CloseCode.heartbeat, "Heartbeat timeout", "heartbeat");
  }
}
