/** This isolate's connections, by id and by user. */
import type { Connection } from "./connection.ts";
import { type Few, fewAdd, fewDelete, fewValues } from "./few.ts";

export class Connections {
  readonly #byId = new Map<string, Connection>();
  /** Each user's connections. */
  readonly #byUser = new Map<string, Few<Connection>>();

  get size(): number {
    return this.#byId.size;
  }

  values(): IterableIterator<Connection> {
    return this.#byId.values();
  }

  add(connection: Connection): void {
    this.#byId.set(connection.id, connection);
    const user = connection.peer.user.id;
    this.#byUser.set(user, fewAdd(this.#byUser.get(user), connection));
  }

  /** Forgets the connection; false when it was not here. */
  remove(connection: Connection): boolean {
    if (this.#byId.get(connection.id) !== connection) return false;
    this.#byId.delete(connection.id);
    const user = connection.peer.user.id;
    const rest = fewDelete(this.#byUser.get(user), connection);
    if (rest === undefined) this.#byUser.delete(user);
    else this.#byUser.set(user, rest);
    return true;
  }

  /** The user's connections here. */
  of(user: string): Connection[] {
    return fewValues(this.#byUser.get(user));
  }

  /** Memory held for unsent data: all connections, and the largest. */
  queued(): { sum: number; max: number } {
    let sum = 0;
    let max = 0;
    for (const connection of this.#byId.values()) {
      const queued = connection.peer.queuedBytes;
      sum += queued;
      if (queued > max) max = queued;
    }
    return { sum, max };
  }
}
