/**
 * WAMP's RPC across nodes: a procedure is held once across every node through the presence
 * (`Hub.claim` under `#wamp:<procedure>`, by `node|connection|registration`), and a call crosses to
 * its callee's node, and its answer back, as backplane relays (`Hub.relay`), the same path for a
 * callee on this node. A callee that goes fails its pending calls; every call has a time limit.
 */
import type { Connection } from "../../../lib/connection.ts";
import type { Hub } from "../../../lib/hub.ts";
import { isDict, isId, W } from "./messages.ts";
import type { Invocation, WampPeer } from "./peer.ts";

/** Registrations per session, and calls waiting per caller (and per callee), at most. */
const MAX_REGISTRATIONS = 100;
const MAX_PENDING_CALLS = 256;
/** A call whose callee has not answered by then gets `wamp.error.canceled`: no call hangs. */
const CALL_TIMEOUT_MS = 60_000;

type Answer =
  | { op: "result"; args?: unknown; kwargs?: unknown }
  | { op: "error"; error: string; details?: unknown; args?: unknown; kwargs?: unknown };

/** What crosses between nodes for a call (relays of topic "wamp"; a node's relays to itself too). */
type Relay =
  | {
    op: "invoke";
    from: string;
    callee: string;
    registration: number;
    caller: string;
    call: number;
    authid: string;
    args?: unknown;
    kwargs?: unknown;
  }
  | (Answer & { caller: string; call: number });

/** The presence name of a procedure (see `Hub.claim`). */
const procedureName = (procedure: string) => `#wamp:${procedure}`;

export class Dealer {
  readonly #hub: Hub;
  /** This node's WAMP sessions, by connection id. */
  readonly #sessions: Map<string, WampPeer>;
  /** Ends a session that broke the protocol (ABORT, then the close). */
  readonly #abort: (connection: Connection, peer: WampPeer, message: string) => void;

  constructor(
    hub: Hub,
    sessions: Map<string, WampPeer>,
    abort: (connection: Connection, peer: WampPeer, message: string) => void,
  ) {
    this.#hub = hub;
    this.#sessions = sessions;
    this.#abort = abort;
    hub.onRelay("wamp", (payload) => this.#relayed(payload as Relay));
  }

  /** A connection went: its procedures are let go, the calls it owed answers to fail, and its own
   * calls are forgotten. */
  closed(connection: Connection, peer: WampPeer): void {
    for (const [registration, procedure] of peer.registrations) {
      this.#hub.unclaim(procedureName(procedure), this.#holder(connection, registration));
    }
    peer.registrations.clear();
    for (const invocation of peer.invocations.values()) {
      this.#answerCall(invocation, {
        op: "error",
        error: "wamp.error.canceled",
        details: { message: "The callee went away" },
      });
    }
    peer.invocations.clear();
    for (const { timer } of peer.calls.values()) clearTimeout(timer);
    peer.calls.clear();
  }

  #holder(connection: Connection, registration: number): string {
    return `${this.#hub.node}|${connection.id}|${registration}`;
  }

  async register(connection: Connection, peer: WampPeer, request: number, procedure: unknown): Promise<void> {
    if (typeof procedure !== "string" || !/^[A-Za-z0-9_.:-]{1,255}$/.test(procedure)) {
      return peer.reply([W.ERROR, W.REGISTER, request, {}, "wamp.error.invalid_uri"]);
    }
    if ([...peer.registrations.values()].includes(procedure)) {
      return peer.reply([W.ERROR, W.REGISTER, request, {}, "wamp.error.procedure_already_exists"]);
    }
    if (peer.registrations.size >= MAX_REGISTRATIONS) {
      const message = `${MAX_REGISTRATIONS} registrations at most`;
      return peer.reply([W.ERROR, W.REGISTER, request, { message }, "roomcast.error.too_many"]);
    }
    const registration = peer.nextId();
    // Counted at once, so that registrations waiting for their claim keep to the cap too.
    peer.registrations.set(registration, procedure);
    const holder = this.#holder(connection, registration);
    const held = await this.#hub.claim(procedureName(procedure), holder).catch(() => false);
    if (connection.closed) {
      if (held) this.#hub.unclaim(procedureName(procedure), holder);
      return;
    }
    if (!held) {
      peer.registrations.delete(registration);
      return peer.reply([W.ERROR, W.REGISTER, request, {}, "wamp.error.procedure_already_exists"]);
    }
    peer.reply([W.REGISTERED, request, registration]);
  }

  unregister(connection: Connection, peer: WampPeer, request: number, registration: unknown): void {
    const procedure = isId(registration) ? peer.registrations.get(registration) : undefined;
    if (procedure === undefined) {
      return peer.reply([W.ERROR, W.UNREGISTER, request, {}, "wamp.error.no_such_registration"]);
    }
    peer.registrations.delete(registration as number);
    this.#hub.unclaim(procedureName(procedure), this.#holder(connection, registration as number));
    peer.reply([W.UNREGISTERED, request]);
  }

  /** A CALL: to the procedure's holder, on this node or another, through a relay either way. */
  async call(connection: Connection, peer: WampPeer, request: number, m: unknown[]): Promise<void> {
    const [, , options, procedure, args, kwargs] = m;
    if (
      !isDict(options) || typeof procedure !== "string" || (args !== undefined && !Array.isArray(args)) ||
      (kwargs !== undefined && !isDict(kwargs))
    ) {
      return this.#abort(connection, peer, "CALL is [48, request, options, procedure, args?, kwargs?]");
    }
    if (peer.calls.size >= MAX_PENDING_CALLS || !this.#hub.frames.allowPublish(connection, undefined)) {
      const details = { message: "Too many calls: slow down" };
      return peer.reply([W.ERROR, W.CALL, request, details, "roomcast.error.rate_limited"]);
    }
    const holder = await this.#hub.holder(procedureName(procedure)).catch(() => undefined);
    if (connection.closed) return;
    const [node, callee, registration] = holder?.split("|") ?? [];
    if (!node || !callee || !registration) {
      return peer.reply([W.ERROR, W.CALL, request, {}, "wamp.error.no_such_procedure"]);
    }
    const call = peer.nextId();
    const timer = setTimeout(() => {
      if (!peer.calls.delete(call)) return;
      const details = { message: "The callee did not answer in time" };
      peer.reply([W.ERROR, W.CALL, request, details, "wamp.error.canceled"]);
    }, CALL_TIMEOUT_MS);
    peer.calls.set(call, { request, timer });
    const invoke: Relay = {
      op: "invoke",
      from: this.#hub.node,
      callee,
      registration: Number(registration),
      caller: connection.id,
      call,
      authid: peer.user.id,
    };
    if (args !== undefined) invoke.args = args;
    if (kwargs !== undefined) invoke.kwargs = kwargs;
    this.#hub.relay(node, "wamp", invoke);
  }

  /** A relay to this node: an invocation for a callee here, or an answer for a caller here. */
  #relayed(relay: Relay): void {
    if (relay.op === "invoke") {
      const callee = this.#sessions.get(relay.callee);
      const back: Invocation = { node: relay.from, connection: relay.caller, call: relay.call };
      if (!callee || callee.connection?.closed || !callee.registrations.has(relay.registration)) {
        return this.#answerCall(back, { op: "error", error: "wamp.error.no_such_procedure" });
      }
      if (callee.invocations.size >= MAX_PENDING_CALLS) {
        const details = { message: "The callee is busy" };
        return this.#answerCall(back, { op: "error", error: "roomcast.error.rate_limited", details });
      }
      const invocation = callee.nextId();
      callee.invocations.set(invocation, back);
      const out: unknown[] = [W.INVOCATION, invocation, relay.registration, { caller_authid: relay.authid }];
      if (relay.args !== undefined || relay.kwargs !== undefined) out.push(relay.args ?? []);
      if (relay.kwargs !== undefined) out.push(relay.kwargs);
      return callee.reply(out);
    }
    const caller = this.#sessions.get(relay.caller);
    const pending = caller?.calls.get(relay.call);
    if (!caller || !pending) return;
    caller.calls.delete(relay.call);
    clearTimeout(pending.timer);
    if (caller.connection?.closed) return;
    const out: unknown[] = relay.op === "result"
      ? [W.RESULT, pending.request, {}]
      : [W.ERROR, W.CALL, pending.request, isDict(relay.details) ? relay.details : {}, relay.error];
    if (Array.isArray(relay.args) || isDict(relay.kwargs)) out.push(Array.isArray(relay.args) ? relay.args : []);
    if (isDict(relay.kwargs)) out.push(relay.kwargs);
    caller.reply(out);
  }

  /** Sends an invocation's answer to its caller's node (this one's included). */
  #answerCall(invocation: Invocation, answer: Answer): void {
    const relay: Relay = { ...answer, caller: invocation.connection, call: invocation.call };
    this.#hub.relay(invocation.node, "wamp", relay);
  }

  /** A callee's YIELD or ERROR for an invocation: the caller gets RESULT or ERROR. */
  answer(connection: Connection, peer: WampPeer, m: unknown[]): void {
    const type = m[0] as number;
    const invocation = type === W.YIELD ? m[1] : m[2];
    if (type === W.ERROR && m[1] !== W.INVOCATION) {
      return this.#abort(connection, peer, "Clients send ERROR for INVOCATIONs only");
    }
    const pending = isId(invocation) ? peer.invocations.get(invocation) : undefined;
    // An answer for a call that timed out, or that never was: nothing to do.
    if (!pending) return;
    peer.invocations.delete(invocation as number);
    const [args, kwargs] = type === W.YIELD ? [m[3], m[4]] : [m[5], m[6]];
    const answer: Answer = type === W.YIELD ? { op: "result" } : {
      op: "error",
      error: typeof m[4] === "string" ? m[4] : "wamp.error.runtime_error",
      details: isDict(m[3]) ? m[3] : {},
    };
    if (Array.isArray(args)) answer.args = args;
    if (isDict(kwargs)) answer.kwargs = kwargs;
    this.#answerCall(pending, answer);
  }
}
