/**
 * The backplane interface: fan-out of room events between isolates (and, with Redis, processes).
 * Implementations: `LocalBackplane` (one isolate). The store is the truth; the backplane is the
 * fast path and may lose or reorder what crosses isolates, which the hub repairs from the store.
 */
import type { StoredMessage, User } from "../protocol.ts";

export type BackplaneEvent =
  | { kind: "message"; message: StoredMessage; json: string }
  | { kind: "signal"; room: string; from: User; event: string; data: unknown; origin: string }
  | { kind: "direct"; to: string; id: string; from: User; data: unknown; ts: number }
  | { kind: "broadcast"; id: string; data: unknown; ts: number }
  | { kind: "reset"; room: string; epoch: string };

export type BackplaneHandler = (event: BackplaneEvent) => void;

/**
 * Guarantees:
 * - `publish` hands the event to this isolate's handler synchronously, before it returns,
 *   exactly once and in call order.
 * - Other isolates get it at most once, usually in order, but may miss it (a redeploy, a full
 *   buffer) or see it after a later one: receivers must tolerate loss and reordering.
 */
export interface Backplane {
  publish(event: BackplaneEvent): void;
  /** Sets the one handler (the hub) that receives every event. */
  subscribe(handler: BackplaneHandler): void;
  close(): Promise<void>;
}
