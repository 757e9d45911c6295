/**
 * The store of a Worker: every call goes to the coordinator (the process's main isolate), which
 * owns the real store (one sequencer for the whole process: offsets stay one sequence per room
 * whichever Worker publishes). `serveStore` is the coordinator's side.
 */
import type { NewMessage, Position } from "../protocol.ts";
import type { RpcClient, RpcHandler } from "./rpc.ts";
import type { Appended, AppendOptions, OnDurable, Page, ReadOptions, Store } from "./store.ts";

export class RemoteStore implements Store {
  readonly #rpc: RpcClient;

  constructor(rpc: RpcClient) {
    this.#rpc = rpc;
  }

  append(message: NewMessage, onDurable?: OnDurable, options?: AppendOptions): Promise<Appended> {
    if (!onDurable) return this.#rpc.call<Appended>("store.append", [message, false, options ?? {}]);
    let told = false;
    const once: OnDurable = (error) => {
      if (!told) onDurable(error);
      told = true;
    };
    const notice = (error: unknown) => once(error === null ? undefined : new Error(String(error)));
    const appended = this.#rpc.call<Appended>("store.append", [message, true, options ?? {}], notice);
    // Refused before it was numbered: its durability is refused too.
    appended.catch((error) => once(error));
    return appended;
  }

  position(room: string): Promise<Position> {
    return this.#rpc.call("store.position", [room]);
  }

  read(room: string, options: ReadOptions): Promise<Page> {
    return this.#rpc.call("store.read", [room, options]);
  }

  reset(room: string): Promise<Position> {
    return this.#rpc.call("store.reset", [room]);
  }

  /** The coordinator's store outlives the Worker. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The coordinator's side of `RemoteStore`: the operations, over the real store. An append asked to
 * be durable sends a notice when it is (`null`) or is not (the error's message). `stored` hears
 * each message an append numbered, in the order they were numbered (the cluster's fan-out). */
export function storeHandlers(store: Store, stored?: (appended: Appended) => void): Record<string, RpcHandler> {
  const told = (appended: Appended): Appended => {
    stored?.(appended);
    return appended;
  };
  const append = (message: NewMessage, onDurable?: OnDurable, options?: AppendOptions) =>
    store.append(message, onDurable, options).then(told);
  return {
    "store.append": (args, notify) => {
      const [message, durable, options = {}] = args as [NewMessage, boolean, AppendOptions?];
      if (!durable) {
        if (options.idempotencyKey !== undefined) return append(message, undefined, options);
        const now = store.appendNow?.(message);
        return now ? told(now) : append(message);
      }
      return append(message, (error) => notify(error === undefined ? null : String(error)), options);
    },
    "store.position": ([room]) => store.position(room as string),
    "store.read": ([room, options]) => store.read(room as string, options as ReadOptions),
    "store.reset": ([room]) => store.reset(room as string),
  };
}
