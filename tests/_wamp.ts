/**
 * WAMP clients for tests: autobahn 26 (the real library, under Deno), wampy 8 (under Node: its
 * CBOR dependency's native builds don't resolve under Deno's npm), and a raw socket for what the
 * libraries won't send.
 */
import autobahn from "autobahn";
import type { TestServer } from "./_server.ts";
import { takeFrom } from "./_wait.ts";

// deno-lint-ignore no-explicit-any
export type Session = any;

/** An autobahn session on the test server's /wamp (`?query`, `authid`/`ticket` for WAMP-Ticket). */
export function autobahnSession(
  server: TestServer,
  options: { realm?: string; query?: string; ticket?: string } = {},
): Promise<Session> {
  return new Promise((resolve, reject) => {
    const connection = new autobahn.Connection({
      url: server.ws(`/wamp${options.query ?? ""}`),
      realm: options.realm ?? "realm1",
      max_retries: 0,
      ...(options.ticket ? { authmethods: ["ticket"], authid: "me", onchallenge: () => options.ticket as string } : {}),
    });
    connection.onopen = (session: Session, details: Session) => {
      // Kept on the session for the tests: its connection (to close it) and the WELCOME's details.
      session.connection = connection;
      session.welcome = details;
      resolve(session);
    };
    connection.onclose = (reason: string, details: unknown) => {
      reject(Object.assign(new Error(`WAMP closed: ${reason}`), { details }));
      return true;
    };
    connection.open();
  });
}

/** Closes a session's connection, whether or not it is still open. */
export function closeSession(session: Session): void {
  try {
    session.connection.close();
  } catch {
    // Closed already (a test closed it, or the server did).
  }
}

/** A WebSocket speaking WAMP by hand: the messages it got, its close. */
export class RawWamp {
  readonly received: unknown[][] = [];
  readonly socket: WebSocket;
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(server: TestServer, query = "") {
    this.socket = new WebSocket(server.ws(`/wamp${query}`), ["wamp.2.json"]);
    this.opened = new Promise((resolve) => this.socket.addEventListener("open", () => resolve(), { once: true }));
    this.closed = new Promise((resolve) =>
      this.socket.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason }), { once: true })
    );
    this.socket.addEventListener("message", (e) => this.received.push(JSON.parse(String(e.data))));
  }

  send(message: unknown): void {
    this.socket.send(typeof message === "string" ? message : JSON.stringify(message));
  }

  /** The first message of type `code` (and matching `pred`), within `ms`. */
  next(code: number, pred: (m: unknown[]) => boolean = () => true, ms = 4000): Promise<unknown[]> {
    return takeFrom(this.received, (m) => m[0] === code && pred(m), ms, `message ${code}`);
  }

  /** HELLO and its WELCOME. */
  async hello(realm = "realm1"): Promise<unknown[]> {
    await this.opened;
    this.send([1, realm, { roles: { publisher: {}, subscriber: {}, caller: {}, callee: {} } }]);
    return await this.next(2);
  }
}
