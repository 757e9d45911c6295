/**
 * A WebSocket test client: collects frames, and `next(pred, ms)` waits for the first unread
 * frame that matches (with a deadline, never a bare sleep).
 */

// deno-lint-ignore no-explicit-any
export type Frame = Record<string, any>;

export class TestClient<T = Frame> {
  readonly socket: WebSocket;
  readonly unread: T[] = [];
  readonly closed: Promise<CloseEvent>;
  /** The `welcome` frame, once a helper has read it. */
  welcome: Frame | undefined;
  #waiters = new Set<() => void>();

  private constructor(socket: WebSocket, parse: (text: string) => T) {
    this.socket = socket;
    socket.onmessage = (e) => {
      this.unread.push(parse(typeof e.data === "string" ? e.data : "<binary>"));
      for (const wake of this.#waiters) wake();
    };
    this.closed = new Promise((resolve) => {
      socket.addEventListener("close", (e) => {
        resolve(e);
        for (const wake of this.#waiters) wake();
      });
    });
  }

  /** Opens a JSON-protocol client and waits for the socket to open. */
  static json(url: string): Promise<TestClient<Frame>> {
    return TestClient.#open(url, (text) => JSON.parse(text));
  }

  /** Opens a raw-room client: frames are the received strings. */
  static raw(url: string): Promise<TestClient<string>> {
    return TestClient.#open(url, (text) => text);
  }

  static #open<U>(url: string, parse: (text: string) => U): Promise<TestClient<U>> {
    const socket = new WebSocket(url);
    const client = new TestClient(socket, parse);
    return new Promise((resolve, reject) => {
      socket.onopen = () => resolve(client);
      socket.onerror = (e) => reject(new Error(`WebSocket ${url} failed: ${(e as ErrorEvent).message ?? e.type}`));
    });
  }

  send(frame: Frame | string): void {
    this.socket.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /** The first unread frame matching `pred` (removed from `unread`), waiting up to `ms`. */
  async next(pred: (frame: T) => boolean = () => true, ms = 3000): Promise<T> {
    const deadline = Date.now() + ms;
    while (true) {
      const index = this.unread.findIndex(pred);
      if (index >= 0) return this.unread.splice(index, 1)[0] as T;
      const left = deadline - Date.now();
      if (left <= 0 || this.socket.readyState === WebSocket.CLOSED) {
        const seen = JSON.stringify(this.unread).slice(0, 600);
        throw new Error(`No matching frame within ${ms} ms (socket state ${this.socket.readyState}); unread: ${seen}`);
      }
      await this.#wait(left);
    }
  }

  #wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#waiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#waiters.add(wake);
    });
  }

  /** Sends a request with a fresh ref and waits for the reply carrying it. */
  async request(frame: Frame, ms = 3000): Promise<T> {
    const ref = `r${++refs}`;
    this.send({ ...frame, ref });
    return await this.next((f) => (f as Frame).ref === ref, ms);
  }

  async close(): Promise<CloseEvent> {
    if (this.socket.readyState !== WebSocket.CLOSED) this.socket.close();
    return await this.closed;
  }
}

let refs = 0;

export const isType = (type: string) => (f: Frame) => f.type === type;
