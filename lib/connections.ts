/** This isolate's connections, by id and by user. */
import type { Connection } from "./connection.ts";

export class Connections {
  readonly #byId = new Map<string, Connection>();
  /** Each user's connections: the connection itself while there is one (most users; an idle
   * connection costs a Set less), a Set from two on. */
  readonly #byUser = new Map<string, Connection | Set<Connection>>();

  get size(): number {
    return this.#byId.size;
  }

  values(): IterableIterator<Connection> {
    return this.#byId.values();
  }

  add(connection: Connection): void {
    this.#byId.set(connection.id, connection);
    const user = connection.peer.user.id;
    const same = this.#byUser.get(user);
    if (!same) this.#byUser.set(user, connection);
    else if (same instanceof Set) same.add(connection);
    else this.#byUser.set(user, new Set([same, connection]));
  }

  /** Forgets the connection; false when it was not here. */
  remove(connection: Connection): boolean {
    if (this.#byId.get(connection.id) !== connection) return false;
    this.#byId.delete(connection.id);
    const user = connection.peer.user.id;
    const same = this.#byUser.get(user);
    if (same === connection) this.#byUser.delete(user);
    else if (same instanceof Set) {
      same.delete(connection);
      const [only] = same;
      if (same.size === 1 && only) this.#byUser.set(user, only);
    }
    return true;
  }

  /** The user's connections here. */
  of(user: string): Connection[] {
    const same = this.#byUser.get(user);
    return same instanceof Set ? [...same] : same ? [same] : [];
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
