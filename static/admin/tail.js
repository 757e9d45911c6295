// @ts-check
/**
 * The live tail: each tick's joins, leaves and publishes, newest first, at most 200 rows on the
 * page. Paused, new entries are counted ("N new") and kept (the newest 200) until resumed. The
 * server samples the tail under load; what it left out is summed as "sampled: N not shown".
 * Its names (a user, a room) are buttons out of the Tab order, so that 400 of them, changing every
 * second, are not in the way: Tab reaches the list once, the arrow keys move between its names.
 */
import { button, byId, el, setText, showLine, timeEl } from "./dom.js";
import { count } from "./format.js";

const MAX_ROWS = 200;
const KINDS = { join: "joined", leave: "left", publish: "published in" };

/** @typedef {{ t: number, kind: string, room?: string, user?: string, node?: string, transport?: string }} TailEntry */

export class Tail {
  #list = byId("tail");
  #empty = byId("tail-empty");
  #scroll = byId("tail-scroll");
  #pause = /** @type {HTMLButtonElement} */ (byId("tail-pause"));
  #fresh = byId("tail-new");
  #dropped = byId("tail-dropped");
  #paused = false;
  /** Entries that came while paused, oldest first. @type {TailEntry[]} */
  #held = [];
  #heldCount = 0;
  #droppedCount = 0;

  /**
   * @param {(room: string) => void} openRoom
   * @param {(user: string) => void} openUser
   */
  constructor(openRoom, openUser) {
    this.#pause.addEventListener("click", () => this.#toggle());
    this.#list.addEventListener("click", (e) => {
      const b = /** @type {Element} */ (e.target).closest("button");
      if (!(b instanceof HTMLButtonElement)) return;
      if (b.dataset.room !== undefined) openRoom(b.dataset.room);
      else if (b.dataset.user !== undefined) openUser(b.dataset.user);
    });
    this.#scroll.addEventListener("keydown", (e) => this.#move(e));
  }

  /** Arrow keys, Home and End move the focus between the tail's names. @param {KeyboardEvent} e */
  #move(e) {
    if (!["ArrowDown", "ArrowUp", "Home", "End"].includes(e.key)) return;
    const names = [...this.#list.querySelectorAll("button")];
    if (!names.length) return;
    e.preventDefault();
    const at = names.indexOf(/** @type {HTMLButtonElement} */ (document.activeElement));
    let next = 0;
    if (e.key === "End") next = names.length - 1;
    else if (e.key === "ArrowDown") next = at < 0 ? 0 : Math.min(names.length - 1, at + 1);
    else if (e.key === "ArrowUp") next = at < 0 ? 0 : Math.max(0, at - 1);
    names[next]?.focus();
  }

  /** A tick's `tail` and `tailDropped`. @param {unknown} entries @param {unknown} dropped */
  add(entries, dropped) {
    if (typeof dropped === "number" && dropped > 0) {
      this.#droppedCount += dropped;
      showLine(this.#dropped, `sampled: ${count(this.#droppedCount)} not shown`);
    }
    const list = Array.isArray(entries) ? entries.filter((e) => e && typeof e.kind === "string") : [];
    if (!list.length) return;
    list.sort((a, b) => (a.t ?? 0) - (b.t ?? 0));
    if (this.#paused) {
      this.#heldCount += list.length;
      this.#held.push(...list);
      if (this.#held.length > MAX_ROWS) this.#held.splice(0, this.#held.length - MAX_ROWS);
      showLine(this.#fresh, `${count(this.#heldCount)} new`);
      return;
    }
    this.#show(list);
  }

  clear() {
    this.#list.replaceChildren();
    this.#held = [];
    this.#heldCount = 0;
    this.#droppedCount = 0;
    showLine(this.#fresh, "");
    showLine(this.#dropped, "");
    this.#empty.hidden = false;
  }

  /** @param {TailEntry[]} list Oldest first. */
  #show(list) {
    const rows = document.createDocumentFragment();
    for (const entry of list.slice(-MAX_ROWS)) rows.prepend(this.#row(entry));
    this.#list.prepend(rows);
    while (this.#list.children.length > MAX_ROWS) this.#list.lastElementChild?.remove();
    this.#empty.hidden = this.#list.children.length > 0;
  }

  #toggle() {
    this.#paused = !this.#paused;
    setText(this.#pause, this.#paused ? "Resume" : "Pause");
    this.#pause.setAttribute("aria-label", this.#paused ? "Resume the live tail" : "Pause the live tail");
    if (!this.#paused) {
      const held = this.#held;
      this.#held = [];
      this.#heldCount = 0;
      showLine(this.#fresh, "");
      if (held.length) this.#show(held);
    }
  }

  /** @param {TailEntry} entry */
  #row(entry) {
    const li = el("li", `tail-item tail-${entry.kind in KINDS ? entry.kind : "other"}`);
    const who = entry.user
      ? Object.assign(button("link-btn tail-user", entry.user), { title: `User ${entry.user}`, tabIndex: -1 })
      : el("span", "tail-user muted", "someone");
    if (entry.user) who.dataset.user = entry.user;
    const verb = el("span", "tail-kind", KINDS[/** @type {keyof typeof KINDS} */ (entry.kind)] ?? entry.kind);
    const what = el("span", "tail-what");
    what.append(who, " ", verb);
    if (entry.room) {
      const room = button("link-btn tail-room", `#${entry.room}`);
      room.dataset.room = entry.room;
      room.title = `Room ${entry.room}`;
      room.tabIndex = -1;
      what.append(" ", room);
    }
    // Under it, small: when, and through which transport on which node.
    const meta = el("span", "tail-meta");
    meta.append(timeEl(typeof entry.t === "number" ? entry.t : Date.now()));
    const where = [entry.transport, entry.node].filter(Boolean).join(" · ");
    if (where) meta.append(" · ", where);
    li.append(what, " ", meta);
    return li;
  }
}
