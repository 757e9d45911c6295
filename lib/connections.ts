/** This isolate's connections, by id and by user. */
import type { Connection } from "./connection.ts";
import { addTo, deleteFrom, type Few, fewValues } from "./few.ts";

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
    addTo(this.#byUser, connection.peer.user.id, connection);
  }

  /** Forgets the connection; false when it was not here. */
  remove(connection: Connection): boolean {
    if (this.#byId.get(connection.id) !== connection) return false;
    this.#byId.delete(connection.id);
    deleteFrom(this.#byUser, connection.peer.user.id, connection);
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
