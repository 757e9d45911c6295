/**
 * Requests a transport turned into hub frames, waiting for the hub's answer: each frame carries a
 * ref from `expect`, and the answering frame (joined, left, ack, error) brings it back to `take`,
 * with what the transport needs to answer in its own protocol (STOMP's receipt, WAMP's request id).
 */
export class PendingRefs<T> {
  readonly #pending = new Map<string, T>();
  #next = 0;

  constructor(readonly prefix: string) {}

  /** A ref for a request whose answer needs `value`. */
  expect(value: T): string {
    const ref = `${this.prefix}${++this.#next}`;
    this.#pending.set(ref, value);
    return ref;
  }

  /** What `ref` was expected with (once), or undefined. */
  take(ref: unknown): T | undefined {
    if (typeof ref !== "string") return undefined;
    const value = this.#pending.get(ref);
    this.#pending.delete(ref);
    return value;
  }
}
