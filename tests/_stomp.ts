/** STOMP clients for tests: @stomp/stompjs 7 (the real library) and a raw socket for what it
 * won't send. */
import { Client, type IFrame, type IMessage, type StompHeaders } from "@stomp/stompjs";
import type { TestServer } from "./_server.ts";
import { takeFrom } from "./_wait.ts";

/** A stompjs client on the test server's /stomp, connected. */
export async function stompClient(
  server: TestServer,
  options: { connectHeaders?: StompHeaders; query?: string; reconnectDelay?: number; heartbeat?: number } = {},
): Promise<Client> {
  const client = new Client({
    brokerURL: server.ws(`/stomp${options.query ?? ""}`),
    reconnectDelay: options.reconnectDelay ?? 0,
    heartbeatIncoming: options.heartbeat ?? 10_000,
    heartbeatOutgoing: options.heartbeat ?? 10_000,
    connectHeaders: options.connectHeaders ?? {},
    debug: () => {},
  });
  const connected = Promise.withResolvers<void>();
  client.onConnect = () => connected.resolve();
  client.onStompError = (frame: IFrame) => connected.reject(new Error(`STOMP ERROR: ${frame.headers.message}`));
  client.onWebSocketClose = () => connected.reject(new Error("closed before CONNECTED"));
  client.activate();
  await connected.promise;
  return client;
}

/** Every message of a subscription, as it comes. */
export function collectMessages(client: Client, destination: string, headers: StompHeaders = {}): IMessage[] {
  const seen: IMessage[] = [];
  client.subscribe(destination, (m) => seen.push(m), headers);
  return seen;
}

/** Resolves when the broker's RECEIPT for `receipt` comes. */
export function receiptOf(client: Client, receipt: string, ms = 4000): Promise<IFrame> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no RECEIPT ${receipt} within ${ms} ms`)), ms);
    client.watchForReceipt(receipt, (frame) => {
      clearTimeout(timer);
      resolve(frame);
    });
  });
}

/** A WebSocket speaking STOMP by hand: the frames it got (as text), its close. */
export class RawStomp {
  readonly received: string[] = [];
  readonly socket: WebSocket;
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly opened: Promise<void>;

  constructor(server: TestServer, query = "") {
    this.socket = new WebSocket(server.ws(`/stomp${query}`), ["v12.stomp"]);
    this.socket.binaryType = "arraybuffer";
    this.opened = new Promise((resolve) => this.socket.addEventListener("open", () => resolve(), { once: true }));
    this.closed = new Promise((resolve) =>
      this.socket.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason }), { once: true })
    );
    this.socket.addEventListener("message", (e) => {
      this.received.push(typeof e.data === "string" ? e.data : new TextDecoder().decode(e.data as ArrayBuffer));
    });
  }

  send(frame: string | Uint8Array): void {
    this.socket.send(frame);
  }

  /** The first received frame starting with `command`, within `ms`. */
  next(command: string, ms = 4000): Promise<string> {
    return takeFrom(this.received, (f) => f.startsWith(`${command}\n`), ms, command);
  }
}
