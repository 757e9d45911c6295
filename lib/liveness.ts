/** Liveness, every heartbeat: pings the connections whose liveness is the app's, closes those
 * silent for two intervals (4000) and those whose token expired (1008). */
import type { Connections } from "./connections.ts";
import { Outbound } from "./peer.ts";
import { CloseCode } from "./protocol.ts";

export function checkLiveness(connections: Connections, now: number, heartbeatMs: number): void {
  const ping = new Outbound({ type: "ping" });
  for (const connection of [...connections.values()]) {
    if (connection.expiredAt(now) || connection.peer.liveness !== "app") continue;
    if (now - connection.lastSeen >= 2 * heartbeatMs) {
      connection.close(CloseCode.heartbeat, "Heartbeat timeout", "heartbeat");
    } else {
      connection.sendOut(ping);
    }
  }
}
