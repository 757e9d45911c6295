/**
 * The store of a Worker: every call goes to the coordinator (the process's main isolate), which
 * owns the real store (one sequencer for the whole process: offsets stay one sequence per room
 * whichever isolate publishes). `storeHandlers` is the coordinator's side; `TellingStore` is the
 * store as the coordinator's own serving isolate uses it.
 */
import type { NewMessage, Position } from "../../protocol.ts";
import type { Caller, RpcHandler } from "./rpc.ts";
import type { Appended, AppendOptions, OnDurable, Page, ReadOptions, Store } from "../store.ts";

export class RemoteStore implements Store {
  readonly #rpc: Caller;

  constructor(rpc: Caller) {
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

  park(key: string, value: string, ttlMs: number): Promise<void> {
    return this.#rpc.call("store.park", [key, value, ttlMs]);
  }

  async unpark(key: string): Promise<string | undefined> {
    return (await this.#rpc.call<string | null>("store.unpark", [key])) ?? undefined;
  }

  /** The coordinator's store outlives the Worker. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The coordinator's store as one of its serving isolates uses it: each message an append numbers
 * is told to `stored` (the cluster's fan-out), in the order they were numbered. */
export class TellingStore implements Store {
  readonly #inner: Store;
  readonly #stored: (appended: Appended) => void;

  constructor(inner: Store, stored: (appended: Appended) => void) {
    this.#inner = inner;
    this.#stored = stored;
  }

  async append(message: NewMessage, onDurable?: OnDurable, options?: AppendOptions): Promise<Appended> {
    const appended = await this.#inner.append(message, onDurable, options);
    this.#stored(appended);
    return appended;
  }

  appendNow(message: NewMessage): Appended | undefined {
    const appended = this.#inner.appendNow?.(message);
    if (appended) this.#stored(appended);
    return appended;
  }

  position(room: string): Promise<Position> {
    return this.#inner.position(room);
  }

  read(room: string, options: ReadOptions): Promise<Page> {
    return this.#inner.read(room, options);
  }

  reset(room: string): Promise<Position> {
    return this.#inner.reset(room);
  }

  park(key: string, value: string, ttlMs: number): Promise<void> {
    return this.#inner.park(key, value, ttlMs);
  }

  unpark(key: string): Promise<string | undefined> {
    return this.#inner.unpark(key);
  }

  /** The coordinator closes the store itself. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The coordinator's side of `RemoteStore`: the operations, over the real store. An append asked to
 * be durable sends a notice when it is (`null`) or is not (the error's message). `stored` hears
 * each message an append numbered, in the order they were numbered (the cluster's fan-out). */
export function storeHandlers(real: Store, stored?: (appended: Appended) => void): Record<string, RpcHandler> {
  const store = stored ? new TellingStore(real, stored) : real;
  return {
    "store.append": (args, notify) => {
      const [message, durable, options = {}] = args as [NewMessage, boolean, AppendOptions?];
      if (!durable) {
        if (options.idempotencyKey !== undefined) return store.append(message, undefined, options);
        return store.appendNow?.(message) ?? store.append(message);
      }
      return store.append(message, (error) => notify(error === undefined ? null : String(error)), options);
    },
    "store.position": ([room]) => store.position(room as string),
    "store.read": ([room, options]) => store.read(room as string, options as ReadOptions),
    "store.reset": ([room]) => store.reset(room as string),
    "store.park": ([key, value, ttlMs]) => store.park(key as string, value as string, ttlMs as number),
    // `null`, not undefined: the answer crosses postMessage as JSON-like data.
    "store.unpark": async ([key]) => (await store.unpark(key as string)) ?? null,
  };
}
