// @ts-check
/**
 * One user up close (clicked in a room's presence or the tail, or its id typed): its connections
 * on every node (`GET /api/admin/users/<user>`), a direct message to it, and Disconnect (every
 * connection closed with 4009, after asking).
 */
import { sayDone, sayFailed } from "./api.js";
import { byId, cell, row, setText, showLine, syncChildren, timeEl } from "./dom.js";
import { adminUserPath, directPath, duration, plural } from "./format.js";

/** @typedef {{ id: string, node: string, transport: string, name?: string, rooms?: string[], since?: number }} UserConnection */

export class UserPanel {
  #api;
  #form = /** @type {HTMLFormElement} */ (byId("open-user"));
  #input = /** @type {HTMLInputElement} */ (byId("open-user-input"));
  #formError = byId("open-user-error");
  #detail = byId("user-detail");
  #name = byId("user-name");
  #count = byId("user-count");
  #body = byId("user-connections");
  #table = byId("user-table");
  #none = byId("user-none");
  #direct = /** @type {HTMLFormElement} */ (byId("user-direct"));
  #text = /** @type {HTMLInputElement} */ (byId("user-direct-text"));
  #status = byId("user-status");
  user = "";
  #view = 0;

  /** @param {import("./api.js").Api} api */
  constructor(api) {
    this.#api = api;
    this.#form.addEventListener("submit", (e) => {
      e.preventDefault();
      const user = this.#input.value.trim();
      const problem = user.length === 0 || user.length > 128 ? "Enter a user id (1–128 characters)." : "";
      this.#input.toggleAttribute("aria-invalid", !!problem);
      showLine(this.#formError, problem);
      if (problem) this.#input.focus();
      else this.open(user);
    });
    byId("user-refresh").addEventListener("click", () => void this.load());
    byId("user-close").addEventListener("click", () => this.close());
    byId("user-disconnect").addEventListener("click", () => void this.#disconnect());
    this.#direct.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.#send();
    });
  }

  /** Shows `user` and loads its connections. @param {string} user */
  open(user) {
    this.user = user;
    this.#input.value = user;
    this.#input.removeAttribute("aria-invalid");
    showLine(this.#formError, "");
    setText(this.#name, user);
    this.#text.placeholder = `Direct message to ${user}`;
    this.#detail.hidden = false;
    this.#status.textContent = "";
    void this.load();
  }

  /** Hides the panel; `focus`: back to the name field (the panel's own Close). */
  close(focus = true) {
    this.user = "";
    this.#view++;
    this.#detail.hidden = true;
    if (focus) this.#input.focus();
  }

  /** (Re)loads the user's connections. */
  async load() {
    const user = this.user;
    if (!user) return;
    const view = ++this.#view;
    setText(this.#count, "Loading…");
    try {
      const answer = await this.#api.call(adminUserPath(user));
      if (view !== this.#view) return;
      this.#show(Array.isArray(answer?.connections) ? answer.connections : []);
    } catch (error) {
      if (view !== this.#view) return;
      setText(this.#count, "");
      sayFailed(this.#status, "load the connections", error);
    }
  }

  /** @param {UserConnection[]} connections */
  #show(connections) {
    setText(this.#count, plural(connections.length, "connection"));
    this.#none.hidden = connections.length > 0;
    this.#table.hidden = connections.length === 0;
    syncChildren(this.#body, connections, () => row(6), (tr, c) => {
      setText(cell(tr, 0), c.id);
      cell(tr, 0).classList.add("mono");
      cell(tr, 1).classList.add("mono");
      cell(tr, 3).classList.add("wrap");
      cell(tr, 4).classList.add("wrap");
      setText(cell(tr, 1), c.node);
      setText(cell(tr, 2), c.transport);
      setText(cell(tr, 3), c.name ?? "");
      setText(cell(tr, 4), Array.isArray(c.rooms) ? c.rooms.join(", ") : "");
      const since = cell(tr, 5);
      if (typeof c.since === "number") {
        const t = timeEl(c.since);
        t.textContent = `${duration((Date.now() - c.since) / 1000)} ago`;
        since.replaceChildren(t);
      } else since.replaceChildren();
    });
  }

  async #send() {
    const user = this.user;
    const text = this.#text.value.trim();
    if (!user || !text) {
      this.#text.focus();
      return;
    }
    const submit = /** @type {HTMLButtonElement} */ (this.#direct.querySelector("button[type=submit]"));
    submit.disabled = true;
    try {
      const sent = await this.#api.call(directPath(user), { method: "POST", body: { data: { text } } });
      if (user !== this.user) return;
      this.#text.value = "";
      const delivered = typeof sent?.delivered === "number" ? sent.delivered : 0;
      sayDone(this.#status, `Sent to ${user}: ${plural(delivered, "connection")} had it pushed.`);
    } catch (error) {
      if (user === this.user) sayFailed(this.#status, "send", error);
    } finally {
      submit.disabled = false;
    }
  }

  async #disconnect() {
    const user = this.user;
    if (!user) return;
    if (!confirm(`Disconnect every connection of ${user}? The stock clients do not reconnect by themselves.`)) return;
    try {
      await this.#api.call(adminUserPath(user, "disconnect"), { method: "POST" });
      if (user !== this.user) return;
      sayDone(this.#status, `Disconnected ${user}.`);
      await this.load();
    } catch (error) {
      if (user === this.user) sayFailed(this.#status, "disconnect", error);
    }
  }
}
