// @ts-check
/**
 * The rooms table: searched, sorted and paged by the server (`GET /api/admin/rooms`), so ten
 * thousand rooms cost one page of rows here; refreshed every 2.5 s while the page is visible. Rows
 * are reused across refreshes, so a focused room stays focused.
 */
import { ApiError } from "./api.js";
import { byId, cell, el, row, setAttr, setText, showLine, syncChildren } from "./dom.js";
import { count, rate } from "./format.js";

const PAGE = 50;
const REFRESH_MS = 2500;
const SEARCH_DELAY_MS = 300;

/** @typedef {{ room: string, members: number, rate: number | null, depth: number | null }} RoomRow */
/** @typedef {"name" | "members" | "rate" | "depth"} SortKey */

export class RoomsTable {
  #api;
  #onOpen;
  #body = byId("rooms-body");
  #search = /** @type {HTMLInputElement} */ (byId("rooms-q"));
  #total = byId("rooms-total");
  #range = byId("rooms-range");
  #prev = /** @type {HTMLButtonElement} */ (byId("rooms-prev"));
  #next = /** @type {HTMLButtonElement} */ (byId("rooms-next"));
  #empty = byId("rooms-empty");
  #error = byId("rooms-error");
  #headers = /** @type {HTMLTableCellElement[]} */ ([...document.querySelectorAll("#rooms-table th[data-sort]")]);
  #q = "";
  /** @type {SortKey} */
  #sort = "name";
  #dir = "asc";
  #offset = 0;
  #count = 0;
  #seq = 0;
  #running = false;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #timer;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #typing;
  /** The room open in the room panel, marked in the table. */
  #current = "";

  /**
   * @param {import("./api.js").Api} api
   * @param {(room: string) => void} onOpen Called with the room a row was clicked for.
   */
  constructor(api, onOpen) {
    this.#api = api;
    this.#onOpen = onOpen;
    for (const th of this.#headers) {
      th.querySelector("button")?.addEventListener("click", () => {
        const key = /** @type {SortKey} */ (th.dataset.sort);
        if (key === this.#sort) this.#dir = this.#dir === "asc" ? "desc" : "asc";
        else [this.#sort, this.#dir] = [key, key === "name" ? "asc" : "desc"];
        this.#offset = 0;
        this.#showSort();
        void this.refresh();
      });
    }
    this.#showSort();
    this.#search.addEventListener("input", () => {
      clearTimeout(this.#typing);
      this.#typing = setTimeout(() => this.#searchNow(), SEARCH_DELAY_MS);
    });
    byId("rooms-search").addEventListener("submit", (e) => {
      e.preventDefault();
      this.#searchNow();
    });
    this.#prev.addEventListener("click", () => this.#page(-1));
    this.#next.addEventListener("click", () => this.#page(1));
    // A click anywhere on a row opens its room; the keyboard uses the name's button.
    this.#body.addEventListener("click", (e) => {
      const tr = /** @type {Element} */ (e.target).closest("tr");
      const room = tr?.querySelector("button")?.dataset.room;
      if (room !== undefined) this.#onOpen(room);
    });
    document.addEventListener("visibilitychange", () => {
      if (this.#running && document.visibilityState === "visible") void this.refresh();
    });
  }

  start() {
    this.#running = true;
    void this.refresh();
  }

  stop() {
    this.#running = false;
    clearTimeout(this.#timer);
    this.#seq++;
  }

  /** Marks `room` as the one open in the panel. @param {string} room */
  setCurrent(room) {
    this.#current = room;
    for (const b of this.#body.querySelectorAll("button")) {
      setAttr(b, "aria-current", b.dataset.room === room ? "true" : null);
    }
  }

  #searchNow() {
    clearTimeout(this.#typing);
    const q = this.#search.value.trim();
    if (q === this.#q) return;
    this.#q = q;
    this.#offset = 0;
    void this.refresh();
  }

  /** @param {number} direction */
  #page(direction) {
    this.#offset = Math.max(0, this.#offset + direction * PAGE);
    void this.refresh();
  }

  #showSort() {
    for (const th of this.#headers) {
      const on = th.dataset.sort === this.#sort;
      setAttr(th, "aria-sort", on ? (this.#dir === "asc" ? "ascending" : "descending") : null);
    }
  }

  /** Fetches the page shown now; the next refresh is due 2.5 s after it answers. */
  async refresh() {
    clearTimeout(this.#timer);
    const seq = ++this.#seq;
    const params = new URLSearchParams({
      q: this.#q,
      sort: this.#sort,
      dir: this.#dir,
      limit: String(PAGE),
      offset: String(this.#offset),
    });
    try {
      const answer = await this.#api.call(`/api/admin/rooms?${params}`);
      if (seq !== this.#seq) return;
      const total = typeof answer?.total === "number" ? answer.total : 0;
      if (this.#offset > 0 && this.#offset >= total) {
        // Rooms went away under this page: go to the last one there is.
        this.#offset = Math.max(0, Math.floor((total - 1) / PAGE) * PAGE);
        void this.refresh();
        return;
      }
      this.#render(Array.isArray(answer?.rooms) ? answer.rooms : [], total);
      showLine(this.#error, "");
    } catch (error) {
      if (seq !== this.#seq) return;
      if (error instanceof ApiError && error.auth) return; // The page is back at the sign-in form.
      showLine(this.#error, `Couldn't load the rooms: ${/** @type {Error} */ (error).message}`);
    }
    if (this.#running && seq === this.#seq && document.visibilityState === "visible") {
      this.#timer = setTimeout(() => void this.refresh(), REFRESH_MS);
    }
  }

  /** @param {RoomRow[]} rooms @param {number} total */
  #render(rooms, total) {
    this.#count = rooms.length;
    syncChildren(this.#body, rooms, () => {
      const tr = row(4);
      const name = el("button", "link-btn");
      name.type = "button";
      cell(tr, 0).append(name);
      cell(tr, 0).classList.add("wrap");
      for (const i of [1, 2, 3]) cell(tr, i).classList.add("num");
      return tr;
    }, (tr, r) => {
      const name = /** @type {HTMLButtonElement} */ (cell(tr, 0).firstElementChild);
      setText(name, r.room);
      name.dataset.room = r.room;
      setAttr(name, "aria-current", r.room === this.#current ? "true" : null);
      setText(cell(tr, 1), count(r.members));
      setText(cell(tr, 2), rate(r.rate));
      setText(cell(tr, 3), count(r.depth));
    });
    setText(this.#total, count(total));
    const from = rooms.length ? this.#offset + 1 : 0;
    setText(this.#range, total ? `${count(from)}–${count(this.#offset + rooms.length)} of ${count(total)}` : "");
    this.#prev.disabled = this.#offset === 0;
    this.#next.disabled = this.#offset + this.#count >= total;
    showLine(
      this.#empty,
      rooms.length ? "" : this.#q ? `No room with members matches “${this.#q}”.` : "No room has members now.",
    );
  }
}
