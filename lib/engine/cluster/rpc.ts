/**
 * Calls between the isolates of one process over `postMessage` (a Worker and its parent): ordered
 * and reliable, unlike BroadcastChannel. A `RpcClient` calls named operations on the other side's
 * `serveRpc`, which answers each call once and may send notices for it later (an append that
 * becomes durable). Errors cross as their message.
 *
 * The serving side may also push values the client did not ask for (the coordinator's fan-out of
 * stored messages): they ride with the replies, in order.
 *
 * What one side sends in one turn of its event loop crosses as one `postMessage`: each message
 * wakes the other isolate's thread, which costs far more CPU than the message's own work.
 */

/** What `postMessage` needs: a Worker, or the worker's own global scope. */
export interface Port {
  postMessage(message: unknown): void;
  addEventListener(type: "message", listener: (event: MessageEvent) => void): void;
  removeEventListener(type: "message", listener: (event: MessageEvent) => void): void;
}

type Wire =
  | { rpc: "call"; id: number; op: string; args: unknown[] }
  | { rpc: "reply"; id: number; ok: true; value: unknown }
  | { rpc: "reply"; id: number; ok: false; error: string }
  | { rpc: "notice"; id: number; value: unknown }
  | { rpc: "push"; value: unknown };

function isWire(value: unknown): value is Wire {
  return typeof value === "object" && value !== null && "rpc" in value;
}

/** The wires of a message: one, or a batch (an array). */
function wires(data: unknown): Wire[] {
  if (Array.isArray(data)) return data.filter(isWire);
  return isWire(data) ? [data] : [];
}

/** Collects what is sent in one turn and posts it once, at the end of the turn. */
class Outbox {
  #queue: Wire[] = [];
  readonly #port: Port;

  constructor(port: Port) {
    this.#port = port;
  }

  send(wire: Wire): void {
    if (this.#queue.length === 0) queueMicrotask(() => this.flush());
    this.#queue.push(wire);
  }

  flush(): void {
    const queue = this.#queue;
    if (queue.length === 0) return;
    this.#queue = [];
    this.#port.postMessage(queue.length === 1 ? queue[0] : queue);
  }
}

export class RpcError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RpcError";
  }
}

/** What calls another isolate's operations: an `RpcClient` over a port, or a `DirectCaller` where
 * the operations are in this isolate. */
export interface Caller {
  /** Calls `op`; `onNotice` receives what the other side sends about this call later. */
  call<T>(op: string, args: unknown[], onNotice?: (value: unknown) => void): Promise<T>;
  /** Sets the one receiver of what the serving side pushes. */
  onPush(handler: (value: unknown) => void): void;
  /** Fails every call from now on. */
  close(): void;
}

export class RpcClient implements Caller {
  readonly #port: Port;
  readonly #outbox: Outbox;
  #next = 1;
  readonly #calls = new Map<number, { resolve(value: unknown): void; reject(error: unknown): void }>();
  readonly #notices = new Map<number, (value: unknown) => void>();
  #pushed: ((value: unknown) => void) | undefined;
  readonly #listener = (event: MessageEvent) => this.#receive(event.data);
  #closed = false;

  constructor(port: Port) {
    this.#port = port;
    this.#outbox = new Outbox(port);
    port.addEventListener("message", this.#listener);
  }

  /** Calls `op`; `onNotice` receives what the other side sends about this call later. */
  call<T>(op: string, args: unknown[], onNotice?: (value: unknown) => void): Promise<T> {
    if (this.#closed) return Promise.reject(new RpcError(`${op}: the connection to the coordinator is closed`));
    const id = this.#next++;
    if (onNotice) this.#notices.set(id, onNotice);
    return new Promise<T>((resolve, reject) => {
      this.#calls.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.#outbox.send({ rpc: "call", id, op, args });
    });
  }

  /** Sets the one receiver of what the serving side pushes (`RpcServer.push`). */
  onPush(handler: (value: unknown) => void): void {
    this.#pushed = handler;
  }

  /** Stops waiting for notices of call `id`. */
  forget(id: number): void {
    this.#notices.delete(id);
  }

  #receive(message: unknown): void {
    for (const data of wires(message)) this.#one(data);
  }

  #one(data: Wire): void {
    if (data.rpc === "reply") {
      const call = this.#calls.get(data.id);
      this.#calls.delete(data.id);
      if (data.ok) call?.resolve(data.value);
      else {
        // A call that failed has nothing more to say: no notice waits for it.
        this.#notices.delete(data.id);
        call?.reject(new RpcError(data.error));
      }
    } else if (data.rpc === "notice") {
      const notice = this.#notices.get(data.id);
      this.#notices.delete(data.id);
      notice?.(data.value);
    } else if (data.rpc === "push") {
      this.#pushed?.(data.value);
    }
  }

  /** Fails every call still waiting. */
  close(): void {
    this.#closed = true;
    this.#port.removeEventListener("message", this.#listener);
    for (const { reject } of this.#calls.values()) reject(new RpcError("the connection to the coordinator closed"));
    this.#calls.clear();
    this.#notices.clear();
    this.#pushed = undefined;
  }
}

/** An operation: its arguments, and `notify` to send one later notice about this call. */
export type RpcHandler = (args: unknown[], notify: (value: unknown) => void) => unknown | Promise<unknown>;

/** The serving side of a port. */
export interface RpcServer {
  /** Sends `value` to the client's `onPush`, in order with the replies sent in this turn. */
  push(value: unknown): void;
  /** Stops answering. */
  stop(): void;
}

/** Answers the calls that come on `port` with `handlers`. */
export function serveRpc(port: Port, handlers: Record<string, RpcHandler>): RpcServer {
  const outbox = new Outbox(port);
  /** A handler that answers at once is replied to at once: in the crossing of this turn. */
  const answer = ({ id, op, args }: { id: number; op: string; args: unknown[] }) => {
    const notify = (value: unknown) => outbox.send({ rpc: "notice", id, value });
    const reply = (value: unknown) => outbox.send({ rpc: "reply", id, ok: true, value });
    const fail = (error: unknown) =>
      outbox.send({ rpc: "reply", id, ok: false, error: error instanceof Error ? error.message : String(error) });
    try {
      const handler = handlers[op];
      if (!handler) throw new RpcError(`no operation ${op}`);
      const value = handler(args, notify);
      if (value instanceof Promise) value.then(reply, fail);
      else reply(value);
    } catch (error) {
      fail(error);
    }
  };
  const listener = (event: MessageEvent) => {
    // Calls in one batch are handled in order of arrival (each handler starts before the next).
    for (const data of wires(event.data)) if (data.rpc === "call") answer(data);
  };
  port.addEventListener("message", listener);
  return {
    push: (value) => outbox.send({ rpc: "push", value }),
    stop: () => port.removeEventListener("message", listener),
  };
}

/**
 * Operations of this isolate called as if across a port, with nothing crossing: the cluster's
 * coordinator and its own serving isolate share a thread. Arguments and results are not cloned,
 * so neither side may change what it passed. Calls still answer asynchronously, as `RpcClient`'s do.
 */
export class DirectCaller implements Caller {
  readonly #handlers: Record<string, RpcHandler> = {};
  #pushed: ((value: unknown) => void) | undefined;
  #closed = false;

  /** The serving side: adds operations. */
  serve(handlers: Record<string, RpcHandler>): void {
    Object.assign(this.#handlers, handlers);
  }

  /** The serving side: hands `value` to the caller's `onPush`, at once. */
  push(value: unknown): void {
    if (!this.#closed) this.#pushed?.(value);
  }

  call<T>(op: string, args: unknown[], onNotice?: (value: unknown) => void): Promise<T> {
    if (this.#closed) return Promise.reject(new RpcError(`${op}: the connection to the coordinator is closed`));
    try {
      const handler = this.#handlers[op];
      if (!handler) throw new RpcError(`no operation ${op}`);
      const value = handler(args, (notice) => {
        if (!this.#closed) onNotice?.(notice);
      });
      return Promise.resolve(value as T).catch((error) => {
        throw new RpcError(error instanceof Error ? error.message : String(error));
      });
    } catch (error) {
      return Promise.reject(new RpcError(error instanceof Error ? error.message : String(error)));
    }
  }

  onPush(handler: (value: unknown) => void): void {
    this.#pushed = handler;
  }

  close(): void {
    this.#closed = true;
    this.#pushed = undefined;
  }
}
