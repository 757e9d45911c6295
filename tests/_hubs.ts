/**
 * A hub as the backplane tests make them: "isolates" in one, each with its store, backplane and
 * presence, limits lifted.
 */
import type { Clock } from "../lib/clock.ts";
import { configWith } from "../lib/config.ts";
import type { Backplane } from "../lib/engine/backplane.ts";
import type { Presence } from "../lib/engine/presence.ts";
import type { Store } from "../lib/engine/store.ts";
import { Hub } from "../lib/hub.ts";
import { Metrics } from "../lib/metrics.ts";

export function testHub(
  parts: { store: Store; backplane: Backplane; presence: Presence; clock: Clock; node: string; pollMs?: number },
): Hub {
  const config = configWith({ limits: { publishBurst: 10_000, userPublishBurst: 10_000 } });
  return new Hub({
    ...parts,
    metrics: new Metrics(),
    limits: config.limits,
    heartbeatMs: 25_000,
    historyLimit: 1000,
  });
}
