/**
 * Every Engine.IO session's heartbeat deadlines on a few timers instead of one or two per session:
 * a session's next ping (EIO 4), its pong's deadline (EIO 4) and its client's ping deadline (EIO 3)
 * are each due a fixed time after they are set, so each kind's deadlines come in the order they were
 * set, and one queue per kind with one timer at its head holds them all. Setting a session's
 * deadline again (or clearing it) leaves its old entry in the queue, skipped when it comes up.
 */

/** The three deadlines: `ping` (send one), `pong` (the answer is late), `expect` (EIO 3: the
 * client's ping is late). */
export type Beat = "ping" | "pong" | "expect";

/** A session with heartbeat deadlines: when each is due (undefined: not set), and what it does. */
export interface Beating {
  beatDue(beat: Beat): number | undefined;
  onBeat(beat: Beat): void;
}

/** One kind's deadlines, all the same delay after they are set: in order. */
class Queue {
  /** Flat: session, when it was due, …; from `#head` on. */
  readonly #entries: (Beating | number)[] = [];
  #head = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #armedFor = Infinity;

  constructor(readonly beat: Beat, readonly delayMs: number, readonly now: () => number) {}

  /** Sets `session`'s deadline `delayMs` from now; returns it. */
  add(session: Beating): number {
    const due = this.now() + this.delayMs;
    this.#entries.push(session, due);
    this.#arm(due);
    return due;
  }

  #arm(due: number): void {
    if (this.#timer !== undefined && this.#armedFor <= due) return;
    clearTimeout(this.#timer);
    this.#armedFor = due;
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, due - this.now()));
  }

  #fire(): void {
    this.#timer = undefined;
    this.#armedFor = Infinity;
    const now = this.now();
    const entries = this.#entries;
    while (this.#head < entries.length) {
      const session = entries[this.#head] as Beating;
      const due = entries[this.#head + 1] as number;
      if (due > now) break;
      this.#head += 2;
      // Still this deadline (not set again or cleared since): it has come.
      if (session.beatDue(this.beat) === due) session.onBeat(this.beat);
    }
    if (this.#head >= entries.length) {
      entries.length = 0;
      this.#head = 0;
      return;
    }
    // Spent entries cut off once they are half the queue.
    if (this.#head * 2 >= entries.length) {
      entries.splice(0, this.#head);
      this.#head = 0;
    }
    this.#arm(entries[this.#head + 1] as number);
  }

  /** Stops the timer (the server is closing). */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedFor = Infinity;
    this.#entries.length = 0;
    this.#head = 0;
  }
}

export class Heartbeats {
  readonly #queues: Record<Beat, Queue>;

  constructor(options: { pingInterval: number; pingTimeout: number }, now: () => number = () => performance.now()) {
    this.#queues = {
      ping: new Queue("ping", options.pingInterval, now),
      pong: new Queue("pong", options.pingTimeout, now),
      expect: new Queue("expect", options.pingInterval + options.pingTimeout, now),
    };
  }

  /** Sets `session`'s `beat` deadline its kind's delay from now; returns when it is due. */
  set(session: Beating, beat: Beat): number {
    return this.#queues[beat].add(session);
  }

  stop(): void {
    for (const queue of Object.values(this.#queues)) queue.stop();
  }
}
