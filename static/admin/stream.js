// @ts-check
/**
 * The live feed, `GET /api/admin/stream`, read with `fetch` and the body's reader (not
 * `EventSource`, which cannot send the key in a header): an SSE parser, and a loop that reconnects
 * with backoff when the stream ends, fails or goes silent, and reports its state.
 */
import { ApiError, errorOf } from "./api.js";

/** A stream with no bytes for this long is taken as dead (ticks come every second). */
const SILENCE_MS = 5000;
const FIRST_DELAY_MS = 1000;
const MAX_DELAY_MS = 15_000;

/** Server-Sent Events, fed text as it arrives: `push` returns the events the text completed. */
export class SseParser {
  #buffer = "";
  #event = "";
  /** @type {string[]} */
  #data = [];
  #afterCr = false;

  /**
   * @param {string} text
   * @returns {{ event: string, data: string }[]}
   */
  push(text) {
    if (!text) return [];
    // The last text ended with a "\r": a "\n" now is the rest of that line break, not a blank line.
    if (this.#afterCr && text.startsWith("\n")) text = text.slice(1);
    this.#buffer += text;
    /** @type {{ event: string, data: string }[]} */
    const events = [];
    const pattern = /\r\n|\r|\n/g;
    let start = 0;
    for (let m = pattern.exec(this.#buffer); m; m = pattern.exec(this.#buffer)) {
      this.#line(this.#buffer.slice(start, m.index), events);
      start = m.index + m[0].length;
    }
    this.#afterCr = start > 0 && start === this.#buffer.length && this.#buffer.endsWith("\r");
    this.#buffer = this.#buffer.slice(start);
    return events;
  }

  /** @param {string} line @param {{ event: string, data: string }[]} events */
  #line(line, events) {
    if (line === "") {
      if (this.#data.length) events.push({ event: this.#event || "message", data: this.#data.join("\n") });
      this.#event = "";
      this.#data = [];
      return;
    }
    if (line.startsWith(":")) return; // A comment (a keep-alive).
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.#event = value;
    else if (field === "data") this.#data.push(value);
  }
}

/**
 * @typedef {{ state: "connecting" | "open" | "reconnecting" | "closed", reason?: string, delay?: number }} StreamState
 */

/** The dashboard's stream: `onTick` gets each `tick`'s data; `onState` each change of state. */
export class TickStream {
  #path;
  #headers;
  #onTick;
  #onState;
  #onRefused;
  /** @type {AbortController | null} */
  #abort = null;
  #running = false;
  /** Bumped by each start and stop: a loop of an earlier start ends at its next step. */
  #generation = 0;
  /** Wakes the wait between attempts (on `stop`). @type {(() => void) | null} */
  #wake = null;

  /**
   * @param {{
   *   path: string,
   *   headers: () => Record<string, string>,
   *   onTick: (data: any) => void,
   *   onState: (state: StreamState) => void,
   *   onRefused: (error: ApiError) => void,
   * }} options
   */
  constructor(options) {
    this.#path = options.path;
    this.#headers = options.headers;
    this.#onTick = options.onTick;
    this.#onState = options.onState;
    this.#onRefused = options.onRefused;
  }

  start() {
    if (this.#running) return;
    this.#running = true;
    void this.#loop(++this.#generation);
  }

  stop() {
    this.#running = false;
    this.#generation++;
    this.#abort?.abort();
    this.#wake?.();
    this.#onState({ state: "closed" });
  }

  /** @param {number} generation */
  async #loop(generation) {
    const live = () => this.#running && generation === this.#generation;
    let failures = 0;
    let ever = false;
    while (live()) {
      this.#onState({ state: ever ? "reconnecting" : "connecting" });
      let reason = "the stream ended";
      try {
        const refused = await this.#read(() => {
          failures = 0;
          ever = true;
        });
        if (refused) {
          // The key is no longer good: no retry, the page asks for it again.
          if (!live()) return;
          this.#running = false;
          this.#onState({ state: "closed", reason: refused.message });
          this.#onRefused(refused);
          return;
        }
      } catch (error) {
        if (!live()) return;
        reason = error instanceof Error ? error.message : String(error);
      }
      if (!live()) return;
      failures++;
      // 1 s, 2 s, 4 s … 15 s, each ±20 %, so that dashboards cut together do not come back together.
      const base = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** (failures - 1));
      const delay = Math.round(base * (0.8 + Math.random() * 0.4));
      this.#onState({ state: "reconnecting", reason, delay });
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.#wake = () => {
          clearTimeout(timer);
          resolve(undefined);
        };
      });
      this.#wake = null;
    }
  }

  /**
   * One connection: reads events until the stream ends; throws why it failed.
   * @param {() => void} onOpen Called at the first tick.
   * @returns {Promise<ApiError | null>} The refusal (401, 403) when the key was refused, else null.
   */
  async #read(onOpen) {
    const abort = new AbortController();
    this.#abort = abort;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let watchdog;
    let silent = false;
    const arm = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => {
        silent = true;
        abort.abort();
      }, SILENCE_MS);
    };
    arm();
    try {
      const response = await fetch(this.#path, {
        headers: this.#headers(),
        cache: "no-store",
        signal: abort.signal,
      });
      if (!response.ok) {
        const error = await errorOf(response);
        if (error.auth) return error;
        throw new Error(`the server answered ${response.status}: ${error.message}`);
      }
      if (!response.body) throw new Error("the answer has no body");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      const parser = new SseParser();
      let opened = false;
      while (true) {
        arm();
        const { value, done } = await reader.read();
        if (done) return null;
        for (const { event, data } of parser.push(value)) {
          if (event !== "tick") continue;
          let tick;
          try {
            tick = JSON.parse(data);
          } catch {
            continue; // Not JSON: a tick this page can't read is skipped, not fatal.
          }
          if (!opened) {
            opened = true;
            onOpen();
            this.#onState({ state: "open" });
          }
          this.#onTick(tick);
        }
      }
    } catch (error) {
      if (silent) throw new Error(`no tick for ${SILENCE_MS / 1000} s`);
      if (error instanceof ApiError) throw error;
      throw error instanceof Error && error.name === "AbortError" ? new Error("stopped") : error;
    } finally {
      clearTimeout(watchdog);
      abort.abort();
    }
  }
}
