/**
 * Liveness of the connections whose liveness is the app's (`/ws`), checked every hub tick (at most
 * a second apart, lib/hub.ts). A connection silent for two heartbeat intervals is closed (4000); one
 * that nothing was sent to for an interval is pinged, and so is one silent for an interval, once
 * (its pong, or any frame, ends the silence). A connection that talks and is talked to needs no
 * ping (Deno's WebSocket pings go by the same rule), and the pings of idle connections go out in
 * the ticks where each falls due instead of all at once: a ping costs about what a delivery does
 * (10 µs of CPU here), so one burst to 100,000 connections would hold the event loop for about a
 * second. At most `maxPings` go out in one tick; those left are still due at the next.
 * Connections whose token expired are closed (1008), whatever their liveness.
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
    else if (now - connection.lastSeen >= 2 * heartbeatMs) closing.push(connection);
    else if (
      pinged < maxPings &&
      (now - connection.lastSent >= heartbeatMs || (!connection.pinged && now - connection.lastSeen >= heartbeatMs))
    ) {
      connection.sendOut(ping);
      connection.pinged = true;
      pinged++;
    }
  }
  // Closed after the walk (closing changes the set being walked): expired ones with 1008.
  for (const connection of closing) {
    if (connection.expiredAt(now)) continue;
    connection.close(CloseCode.heartbeat, "Heartbeat timeout", "heartbeat");
  }
}
