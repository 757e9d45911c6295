// @ts-check
/** The composer: Enter sends, Shift+Enter breaks a line, typing signals at most every 2 s. */
import { ui } from "./dom.js";
import { errorText } from "./format.js";

const TYPING_EVERY_MS = 2000;

export class Composer {
  #session;
  #notice;
  #lastTyping = 0;

  #pending;

  /**
   * @param {import("./session.js").Session} session
   * @param {(text: string, kind: "error") => void} notice Where failures are told.
   * @param {(data: unknown) => { settled: () => void }} pending Shows a message on its way.
   */
  constructor(session, notice, pending) {
    this.#session = session;
    this.#notice = notice;
    this.#pending = pending;
    ui.composer.addEventListener("submit", (e) => {
      e.preventDefault();
      this.#send();
      ui.input.focus();
    });
    ui.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing && !e.altKey && !e.ctrlKey && !e.metaKey) {
        e.preventDefault();
        this.#send();
      }
    });
    ui.input.addEventListener("input", () => {
      this.#autosize();
      const { client, room } = this.#session;
      if (!client || !room || !ui.input.value.trim()) return;
      const now = Date.now();
      if (now - this.#lastTyping >= TYPING_EVERY_MS && client.signal(room, "typing", {})) this.#lastTyping = now;
    });
  }

  #autosize() {
    const lines = ui.input.value.split("\n").length;
    ui.input.rows = Math.min(8, Math.max(1, lines));
  }

  #send() {
    const { client, room: r } = this.#session;
    if (!client || !r) return;
    const text = ui.input.value;
    if (!text.trim()) return;
    ui.input.value = "";
    this.#autosize();
    this.#lastTyping = 0;
    // Shown as "Sending…" until acked: offline or reconnecting, the client keeps it and sends it
    // once it is back (once: the publish carries an idempotency key).
    const shown = this.#pending({ text });
    client.publish(r, { text }).then(() => shown.settled(), (error) => {
      shown.settled();
      if (r !== this.#session.room) return;
      this.#notice(`Message not sent: ${errorText(error)}`, "error");
      if (!ui.input.value) {
        ui.input.value = text;
        this.#autosize();
      }
    });
  }
}
