// @ts-check
/**
 * The message panel: messages in offset order (each once), notices, history pages, the
 * "new messages" pill and the unread count in the title.
 */
import { paintAvatar, span, ui } from "./dom.js";
import { clock, displayName, errorText, messageText } from "./format.js";

const HISTORY_PAGE = 50;
const GROUP_WINDOW_MS = 5 * 60 * 1000;

/** @typedef {import("./format.js").ChatMessage} ChatMessage */

/** @param {Element | null} el */
function isMessage(el) {
  return el instanceof HTMLElement && el.classList.contains("message");
}

/** @param {Element} li */
function offsetOf(li) {
  return Number(/** @type {HTMLElement} */ (li).dataset.offset);
}

/** Marks `li` as a continuation of the previous message (same author, within 5 min). @param {Element | null} li */
function regroup(li) {
  if (!(li instanceof HTMLElement) || !isMessage(li)) return;
  const prev = li.previousElementSibling;
  const grouped = prev instanceof HTMLElement && isMessage(prev) &&
    prev.dataset.author === li.dataset.author &&
    Math.abs(Number(li.dataset.ts) - Number(prev.dataset.ts)) < GROUP_WINDOW_MS;
  li.classList.toggle("grouped", grouped);
}

/** @param {Date} when */
function timeElement(when, className = "time") {
  const time = document.createElement("time");
  time.className = className;
  time.dateTime = when.toISOString();
  time.title = when.toLocaleString();
  time.textContent = clock(when);
  return time;
}

/**
 * A message item's avatar, author, `when` (a time, or "Sending…") and text.
 * @param {HTMLElement} li
 * @param {import("./format.js").User} from
 * @param {HTMLElement} when
 * @param {unknown} data
 */
function fillMessage(li, from, when, data) {
  const avatar = span("avatar");
  avatar.setAttribute("aria-hidden", "true");
  paintAvatar(avatar, from);
  const body = document.createElement("div");
  body.className = "body";
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.append(span("author", displayName(from)), " ", when);
  const text = document.createElement("div");
  text.className = "text";
  text.textContent = messageText(data);
  body.append(meta, text);
  li.append(avatar, body);
}

export class MessagePanel {
  /** Message ids on screen. */
  #seen = new Set();
  #unread = 0;
  #loadingOlder = false;
  /** History must be (re)loaded once the room is joined again (a load failed on a disconnect). */
  historyWanted = false;
  #session;

  /** @param {import("./session.js").Session} session */
  constructor(session) {
    this.#session = session;
    ui.older.addEventListener("click", () => void this.loadOlder());
    ui.scroller.addEventListener("scroll", () => {
      if (!ui.newPill.hidden && this.#atBottom()) this.#hidePill();
    });
    ui.newPill.addEventListener("click", () => {
      this.scrollToBottom();
      ui.input.focus();
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && this.#atBottom()) {
        this.#unread = 0;
        this.updateTitle();
      }
    });
  }

  #atBottom() {
    const s = ui.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 48;
  }

  scrollToBottom() {
    ui.scroller.scrollTop = ui.scroller.scrollHeight;
    this.#hidePill();
  }

  #hidePill() {
    ui.newPill.hidden = true;
    this.#unread = 0;
    this.updateTitle();
  }

  updateTitle() {
    const room = this.#session.room;
    const base = room ? `#${room} · roomcast` : "roomcast";
    document.title = this.#unread > 0 && document.hidden ? `(${this.#unread}) ${base}` : base;
  }

  /** @returns {HTMLElement[]} */
  #items() {
    return /** @type {HTMLElement[]} */ ([...ui.messages.querySelectorAll(":scope > li.message:not(.pending)")]);
  }

  /**
   * Renders a chat message in offset order, once.
   * @param {ChatMessage} m
   * @returns {HTMLElement | null} The new item, or null when it was already shown.
   */
  add(m) {
    if (typeof m.offset !== "number" || this.#seen.has(m.id)) return null;
    const items = this.#items();
    if (items.some((li) => offsetOf(li) === m.offset)) return null;
    this.#seen.add(m.id);

    const me = this.#session.me;
    const from = m.from ?? { id: "unknown", name: "Unknown" };
    const when = new Date(typeof m.ts === "number" ? m.ts : Date.now());
    const li = document.createElement("li");
    li.className = "message";
    li.dataset.offset = String(m.offset);
    li.dataset.id = m.id;
    li.dataset.author = from.id;
    li.dataset.ts = String(when.getTime());
    if (me && from.id === me.id) li.classList.add("own");

    fillMessage(li, from, timeElement(when), m.data);

    // Sorted insert: most messages go last, history pages go first.
    let before = null;
    for (let i = items.length - 1; i >= 0; i--) {
      const item = /** @type {HTMLElement} */ (items[i]);
      if (offsetOf(item) > m.offset) before = item;
      else break;
    }
    // Messages still being sent stay last, below everything stored.
    before ??= ui.messages.querySelector(":scope > li.pending");
    if (before) ui.messages.insertBefore(li, before);
    else ui.messages.append(li);
    regroup(li);
    regroup(li.nextElementSibling);
    return li;
  }

  /**
   * A message of ours on its way (not acked yet: offline, or reconnecting): shown last, marked
   * "Sending…", until `settled` is called with the outcome.
   * @param {unknown} data
   * @returns {{ settled: () => void }}
   */
  pending(data) {
    const stick = this.#atBottom();
    const li = document.createElement("li");
    li.className = "message own pending";
    li.setAttribute("aria-label", "Sending");
    fillMessage(li, this.#session.me ?? { id: "me", name: "You" }, span("sending", "Sending…"), data);
    ui.messages.append(li);
    if (stick) this.scrollToBottom();
    return { settled: () => li.remove() };
  }

  /**
   * A system line: joins, leaves, resets, errors. The same line twice in a row is counted, not
   * repeated (several rate_limited errors, say).
   * @param {string} text
   * @param {"info" | "join" | "leave" | "error" | "direct" | "broadcast"} [kind]
   */
  notice(text, kind = "info") {
    const stick = this.#atBottom();
    const last = ui.messages.lastElementChild;
    if (last instanceof HTMLElement && last.classList.contains("notice") && last.dataset.text === text) {
      const count = Number(last.dataset.count ?? "1") + 1;
      last.dataset.count = String(count);
      let badge = last.querySelector(".notice-count");
      if (!badge) {
        badge = span("notice-count");
        last.insertBefore(badge, last.querySelector(".notice-time"));
      }
      badge.textContent = `×${count}`;
      if (stick) this.scrollToBottom();
      return;
    }
    const li = document.createElement("li");
    li.dataset.text = text;
    li.className = `notice notice-${kind}`;
    li.append(span("notice-text", text), timeElement(new Date(), "notice-time"));
    ui.messages.append(li);
    if (stick) this.scrollToBottom();
  }

  /**
   * A live message (or own ack) arrived: render it and keep the view where the reader wants it.
   * @param {ChatMessage} m
   * @param {boolean} own
   * @returns {boolean} Whether it was new.
   */
  live(m, own) {
    const stick = this.#atBottom();
    if (!this.add(m)) return false;
    if (own || stick) {
      this.scrollToBottom();
    } else {
      this.#unread++;
      ui.newPill.hidden = false;
      this.updateTitle();
    }
    if (!own && document.hidden) {
      this.#unread = Math.max(this.#unread, 1);
      this.updateTitle();
    }
    return true;
  }

  clear() {
    ui.messages.replaceChildren();
    this.#seen.clear();
    ui.older.hidden = true;
    ui.intro.hidden = true;
    this.#hidePill();
  }

  /** Loads the newest page of history for the room on screen. */
  async loadHistory() {
    const { client, room: r, view: v } = this.#session;
    if (!client || !r) return;
    this.historyWanted = false;
    try {
      const page = await client.history(r, { limit: HISTORY_PAGE });
      if (this.#stale(r, v)) return;
      for (const m of page.messages) this.add(m);
      this.#setHistoryEnd(page.messages.length < HISTORY_PAGE || (page.messages[0]?.offset ?? 1) <= 1);
      this.scrollToBottom();
    } catch (error) {
      if (this.#stale(r, v)) return;
      if (/** @type {any} */ (error)?.code === "disconnected") this.historyWanted = true;
      else this.notice(`Couldn't load history: ${errorText(error)}`, "error");
    }
  }

  /** @param {string} room @param {number} view */
  #stale(room, view) {
    return view !== this.#session.view || room !== this.#session.room;
  }

  /** @param {boolean} reachedStart */
  #setHistoryEnd(reachedStart) {
    ui.older.hidden = reachedStart || this.#items().length === 0;
    ui.intro.hidden = !reachedStart;
  }

  async loadOlder() {
    const { client, room: r, view: v } = this.#session;
    if (!client || !r || this.#loadingOlder) return;
    const first = this.#items()[0];
    if (!first) return;
    this.#loadingOlder = true;
    ui.older.disabled = true;
    ui.older.textContent = "Loading…";
    try {
      const page = await client.history(r, { before: offsetOf(first), limit: HISTORY_PAGE });
      if (this.#stale(r, v)) return;
      const fromBottom = ui.scroller.scrollHeight - ui.scroller.scrollTop;
      for (const m of page.messages) this.add(m);
      ui.scroller.scrollTop = ui.scroller.scrollHeight - fromBottom;
      this.#setHistoryEnd(page.messages.length < HISTORY_PAGE || (page.messages[0]?.offset ?? 1) <= 1);
    } catch (error) {
      if (v === this.#session.view) this.notice(`Couldn't load older messages: ${errorText(error)}`, "error");
    } finally {
      this.#loadingOlder = false;
      ui.older.disabled = false;
      ui.older.textContent = "Load older messages";
    }
  }
}
