// @ts-check
/**
 * One room up close (a row of the rooms table or the tail clicked, or its name typed): who is in
 * it (`/presence`), its history newest first, a page at a time (`/messages?before=`), a form to
 * publish into it, and "Reset history" (asked first, then `DELETE …?confirm=<room>`).
 */
import { sayDone, sayFailed } from "./api.js";
import { button, byId, el, setText, showLine, timeEl } from "./dom.js";
import { plural, roomPath } from "./format.js";
import { messageText, roomProblem, typedRoom } from "../chat/format.js";

const PAGE = 50;

/** @typedef {{ id: string, offset: number, from?: { id: string, name: string }, data: unknown, ts?: number }} Message */

export class RoomPanel {
  #api;
  #openUser;
  #onOpen;
  #form = /** @type {HTMLFormElement} */ (byId("open-room"));
  #input = /** @type {HTMLInputElement} */ (byId("open-room-input"));
  #formError = byId("open-room-error");
  #detail = byId("room-detail");
  #name = byId("room-name");
  #presence = byId("presence");
  #presenceCount = byId("presence-count");
  #history = byId("history");
  #historyCount = byId("history-count");
  #older = /** @type {HTMLButtonElement} */ (byId("history-older"));
  #publish = /** @type {HTMLFormElement} */ (byId("room-publish"));
  #text = /** @type {HTMLInputElement} */ (byId("room-publish-text"));
  #status = byId("room-status");
  room = "";
  /** Bumped on each room shown (and each reload), so late answers for another one are dropped. */
  #view = 0;
  /** The oldest offset shown, for the next "Older" page. @type {number | null} */
  #oldest = null;
  #shown = 0;
  #atStart = true;

  /**
   * @param {import("./api.js").Api} api
   * @param {(user: string) => void} openUser
   * @param {(room: string) => void} onOpen Told which room is shown ("" when none).
   */
  constructor(api, openUser, onOpen) {
    this.#api = api;
    this.#openUser = openUser;
    this.#onOpen = onOpen;
    this.#form.addEventListener("submit", (e) => {
      e.preventDefault();
      const room = typedRoom(this.#input.value);
      const problem = roomProblem(room);
      this.#input.toggleAttribute("aria-invalid", !!problem);
      showLine(this.#formError, problem);
      if (problem) this.#input.focus();
      else this.open(room);
    });
    this.#older.addEventListener("click", () => void this.#loadOlder());
    byId("room-refresh").addEventListener("click", () => void this.load());
    byId("room-close").addEventListener("click", () => this.close());
    byId("room-reset").addEventListener("click", () => void this.#reset());
    this.#publish.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.#send();
    });
    this.#presence.addEventListener("click", (e) => {
      const b = /** @type {Element} */ (e.target).closest("button");
      if (b?.dataset.user !== undefined) this.#openUser(b.dataset.user);
    });
    this.#history.addEventListener("click", (e) => {
      const b = /** @type {Element} */ (e.target).closest("button");
      if (b?.dataset.user !== undefined) this.#openUser(b.dataset.user);
    });
  }

  /** Shows `room` and loads it. @param {string} room */
  open(room) {
    this.room = room;
    this.#input.value = room;
    this.#input.removeAttribute("aria-invalid");
    showLine(this.#formError, "");
    setText(this.#name, room);
    this.#text.placeholder = `Message to #${room}`;
    this.#detail.hidden = false;
    this.#status.textContent = "";
    this.#onOpen(room);
    void this.load();
  }

  /** Hides the panel; `focus`: back to the name field (the panel's own Close). */
  close(focus = true) {
    this.room = "";
    this.#view++;
    this.#detail.hidden = true;
    this.#onOpen("");
    if (focus) this.#input.focus();
  }

  /** (Re)loads the room's presence and its newest page of history. */
  async load() {
    const room = this.room;
    if (!room) return;
    const view = ++this.#view;
    this.#history.replaceChildren();
    this.#oldest = null;
    this.#shown = 0;
    this.#atStart = false;
    setText(this.#historyCount, "Loading…");
    this.#older.hidden = true;
    const [presence, history] = await Promise.allSettled([
      this.#api.call(roomPath(room, "presence")),
      this.#api.call(roomPath(room, `messages?limit=${PAGE}`)),
    ]);
    if (view !== this.#view) return;
    if (presence.status === "fulfilled") this.#showPresence(presence.value?.members);
    else sayFailed(this.#status, "load the presence", presence.reason);
    if (history.status === "fulfilled") this.#addPage(history.value?.messages);
    else {
      setText(this.#historyCount, "");
      sayFailed(this.#status, "load the history", history.reason);
    }
  }

  /** Reloads only the members (someone joined or left the open room). */
  async refreshMembers() {
    const room = this.room;
    if (!room) return;
    try {
      const presence = await this.#api.call(roomPath(room, "presence"));
      if (room === this.room) this.#showPresence(presence?.members);
    } catch (error) {
      if (room === this.room) sayFailed(this.#status, "load the presence", error);
    }
  }

  async #loadOlder() {
    const room = this.room;
    if (!room || this.#oldest === null) return;
    const view = this.#view;
    this.#older.disabled = true;
    try {
      const page = await this.#api.call(roomPath(room, `messages?limit=${PAGE}&before=${this.#oldest}`));
      if (view === this.#view) this.#addPage(page?.messages);
    } catch (error) {
      if (view === this.#view) sayFailed(this.#status, "load older messages", error);
    } finally {
      this.#older.disabled = false;
    }
  }

  /** A page of history (newest last, as the API gives it), shown newest first after what is shown.
   * @param {unknown} messages */
  #addPage(messages) {
    const page = /** @type {Message[]} */ (Array.isArray(messages) ? messages : []);
    for (const m of [...page].reverse()) this.#history.append(this.#messageRow(m));
    this.#shown += page.length;
    const first = page[0]?.offset;
    if (typeof first === "number") this.#oldest = first;
    this.#atStart = page.length < PAGE || (typeof first === "number" && first <= 1);
    this.#older.hidden = this.#atStart;
    setText(
      this.#historyCount,
      this.#atStart ? plural(this.#shown, "message") : `${plural(this.#shown, "message")} shown, older ones too`,
    );
    if (this.#shown === 0) this.#history.append(el("li", "empty", "No messages in the history."));
  }

  /** @param {Message} m */
  #messageRow(m) {
    const li = el("li", "history-item");
    li.dataset.offset = String(m.offset);
    const meta = el("div", "history-meta");
    meta.append(el("span", "history-offset", `#${m.offset}`));
    if (typeof m.ts === "number") meta.append(" ", timeEl(m.ts));
    const from = m.from;
    if (from?.id) {
      const who = button("link-btn", from.name || from.id);
      who.dataset.user = from.id;
      who.title = `User ${from.id}`;
      meta.append(" ", who);
    }
    li.append(meta, el("div", "history-text", messageText(m.data)));
    return li;
  }

  /** @param {unknown} members */
  #showPresence(members) {
    const list = /** @type {{ id: string, name?: string, connections?: number }[]} */ (
      Array.isArray(members) ? members : []
    );
    setText(this.#presenceCount, String(list.length));
    this.#presence.replaceChildren(...list.map((m) => {
      const li = el("li", "presence-item");
      const who = button("link-btn", m.name || m.id);
      who.dataset.user = m.id;
      who.title = `User ${m.id}`;
      const connections = typeof m.connections === "number" ? ` · ${plural(m.connections, "connection")}` : "";
      li.append(who, " ", el("span", "muted", `${m.id}${connections}`));
      return li;
    }));
    if (!list.length) this.#presence.append(el("li", "empty", "Nobody is in this room now."));
  }

  async #send() {
    const room = this.room;
    const text = this.#text.value.trim();
    if (!room || !text) {
      this.#text.focus();
      return;
    }
    const submit = /** @type {HTMLButtonElement} */ (this.#publish.querySelector("button[type=submit]"));
    submit.disabled = true;
    try {
      const sent = await this.#api.call(roomPath(room, "messages"), { method: "POST", body: { data: { text } } });
      if (room !== this.room) return;
      this.#text.value = "";
      await this.load();
      sayDone(this.#status, `Published to #${room} at offset ${sent?.offset ?? "?"}.`);
    } catch (error) {
      if (room === this.room) sayFailed(this.#status, "publish", error);
    } finally {
      submit.disabled = false;
    }
  }

  async #reset() {
    const room = this.room;
    if (!room) return;
    const sure = confirm(`Reset the history of #${room}? Every stored message of the room is deleted for good.`);
    if (!sure) return;
    try {
      const path = roomPath(room, `messages?confirm=${encodeURIComponent(room)}`);
      await this.#api.call(path, { method: "DELETE" });
      if (room !== this.room) return;
      await this.load();
      sayDone(this.#status, `History of #${room} reset.`);
    } catch (error) {
      if (room === this.room) sayFailed(this.#status, "reset the history", error);
    }
  }
}
