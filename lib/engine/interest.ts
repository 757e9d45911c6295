/**
 * A backplane's interest in rooms (`Backplane.subscribe`/`unsubscribe`), counted: a room is carried
 * while anyone on this node subscribes to it. `add` and `remove` say when a room's first
 * subscription came and its last went, where a backplane starts and stops carrying it.
 */
export class Interest {
  readonly #counts = new Map<string, number>();

  /** Counts a subscription; true when it is the room's first. */
  add(room: string): boolean {
    const count = (this.#counts.get(room) ?? 0) + 1;
    this.#counts.set(room, count);
    return count === 1;
  }

  /** Counts an unsubscription; true when it was the room's last (one without a subscription
   * changes nothing). */
  remove(room: string): boolean {
    const count = this.#counts.get(room);
    if (count === undefined) return false;
    if (count > 1) {
      this.#counts.set(room, count - 1);
      return false;
    }
    this.#counts.delete(room);
    return true;
  }

  has(room: string): boolean {
    return this.#counts.has(room);
  }

  clear(): void {
    this.#counts.clear();
  }
}
