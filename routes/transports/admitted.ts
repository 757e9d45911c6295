/**
 * The one way a client connection becomes a hub connection: an `Admitted` slot, taken from the
 * admission (lib/admission.ts: connections in all, per address, and the connect rate) before
 * anything else is done for the client, and given back once when the client goes. A slot makes one
 * hub connection, and carries at most one at a time; another on the same slot (a Socket.IO session
 * whose connection ended, connecting again) needs `again()`, which spends the connect rate as a new
 * connection would. Every transport connects through here, so none can make hub connections past
 * admission.
 */
import type { Identity } from "../../lib/auth.ts";
import type { Connection, Grant } from "../../lib/connection.ts";
import type { Peer } from "../../lib/peer.ts";
import { ProtocolError } from "../../lib/protocol.ts";
import type { AppDeps } from "../deps.ts";

/** A connection the admission refused: what to tell the client, and when to try again. */
export interface AdmissionRefusal {
  code: "unavailable" | "rate_limited";
  message: string;
  retryAfterS: number;
}

/** How long before an expiry the app's backend set it is asked to renew it. */
const RENEW_LEAD_MS = 10_000;

export class Admitted {
  readonly #deps: Pick<AppDeps, "hub" | "admission" | "metrics" | "config" | "clock">;
  readonly address: string;
  #connection: Connection | undefined;
  /** Connections this slot may still make: the admission grants one, `again` one more at a time. */
  #grants = 1;
  #released = false;
  /** The renewal of an expiry the app's backend set, when it falls due. */
  #renewal: ReturnType<typeof setTimeout> | undefined;

  constructor(deps: Pick<AppDeps, "hub" | "admission" | "metrics" | "config" | "clock">, address: string) {
    this.#deps = deps;
    this.address = address;
  }

  /** Takes a slot for `address`, or says why not. */
  static take(
    deps: Pick<AppDeps, "hub" | "admission" | "metrics" | "config" | "clock">,
    address: string,
  ): Admitted | AdmissionRefusal {
    const refused = deps.admission.admit(address);
    if (refused === undefined) return new Admitted(deps, address);
    deps.metrics.refused.incLabel(refused);
    return refusal(deps.config, refused);
  }

  /** Lets the slot make one more connection (a Socket.IO session connecting again), spending the
   * address's connect rate as a new connection would; false when that is spent. */
  again(): boolean {
    if (this.#released) return false;
    if (!this.#deps.admission.again(this.address)) {
      this.#deps.metrics.refused.incLabel("rate");
      return false;
    }
    this.#grants = 1;
    return true;
  }

  /** The hub connection for `peer`, or why it can't be made: this slot was given back, still carries
   * an open connection, or has made the connections it was granted. */
  connect(peer: Peer, identity: Identity & Grant, transport: string): Connection | ProtocolError {
    if (this.#released) return new ProtocolError("unavailable", "The connection has ended");
    if (this.#connection && !this.#connection.closed) {
      return new ProtocolError("bad_request", "One connection at a time: this one is connected already");
    }
    if (this.#grants <= 0) return new ProtocolError("rate_limited", refusal(this.#deps.config, "rate").message);
    this.#grants--;
    this.#deps.metrics.transportConnections.incLabel(transport);
    const connection = this.#connection = this.#deps.hub.connect(peer, { ...identity, transport });
    if (identity.renew) this.#renewLater(connection, identity.renew);
    return connection;
  }

  /** Asks the app's backend again before the connection's expiry passes (RENEW_LEAD_MS before, or
   * halfway there): a new expiry is taken, none removes it; a refusal or a failure leaves the
   * connection to end at its expiry. */
  #renewLater(connection: Connection, renew: NonNullable<Identity["renew"]>): void {
    const at = connection.expiresAt;
    if (at === undefined || this.#released || connection.closed) return;
    const left = at - this.#deps.clock.now();
    this.#renewal = setTimeout(async () => {
      this.#renewal = undefined;
      const renewed = await renew().catch(() => false as const);
      if (!renewed || connection.closed || this.#released) return;
      connection.expiresAt = renewed.expiresAt;
      this.#renewLater(connection, renew);
    }, Math.max(0, Math.min(left - RENEW_LEAD_MS, left / 2)));
  }

  /** The client sent a message that cost the server before it could be refused (binary, or over
   * the size cap: Deno reads a WebSocket message whole): counted against its address, which a few
   * of them shut out for a while (lib/admission.ts). */
  offend(): void {
    if (this.#deps.admission.offend(this.address)) {
      console.warn(
        `roomcast: ${this.address} may not connect for a minute: it keeps sending binary or oversized messages`,
      );
    }
  }

  /** Gives the slot back (the client went): its hub connection, if still open, is forgotten. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    clearTimeout(this.#renewal);
    if (this.#connection) this.#deps.hub.disconnect(this.#connection);
    this.#deps.admission.release(this.address);
  }
}

function refusal(config: AppDeps["config"], refused: "full" | "address" | "rate"): AdmissionRefusal {
  if (refused === "full") {
    return { code: "unavailable", message: "The server is full: try again later", retryAfterS: 5 };
  }
  if (refused === "address") {
    return { code: "rate_limited", message: "Too many connections from your address", retryAfterS: 5 };
  }
  return {
    code: "rate_limited",
    message: "Connecting too often: try again shortly",
    retryAfterS: Math.max(1, Math.ceil(config.connectWindowMs / Math.max(1, config.connectBurst) / 1000)),
  };
}
