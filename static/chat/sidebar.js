// @ts-check
/**
 * The sidebar: the rooms list (`GET /api/rooms`, best effort, refreshed every 15 s), the
 * switch-room form and, on small screens, the drawer it lives in.
 */
import { rejectField, showError, span, ui } from "./dom.js";
import { roomProblem, typedRoom } from "./format.js";

const ROOMS_REFRESH_MS = 15_000;
const ROOMS_SHOWN = 30;

export class Sidebar {
  #session;
  #memberCount;
  #pick;
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #timer;

  /**
   * @param {import("./session.js").Session} session
   * @param {() => number} memberCount Members of the room on screen (fresher than the list's).
   * @param {(room: string) => void} pick Called with a room the reader chose.
   */
  constructor(session, memberCount, pick) {
    this.#session = session;
    this.#memberCount = memberCount;
    this.#pick = pick;
    ui.switchRoom.addEventListener("submit", (e) => {
      e.preventDefault();
      const r = typedRoom(ui.switchInput.value);
      const problem = roomProblem(r);
      if (problem) {
        rejectField(ui.switchError, ui.switchInput, problem);
        return;
      }
      showError(ui.switchError, "");
      ui.switchInput.removeAttribute("aria-invalid");
      ui.switchInput.value = "";
      this.#chose(r);
    });
    ui.switchInput.addEventListener("input", () => {
      if (!ui.switchError.hidden && !roomProblem(typedRoom(ui.switchInput.value))) {
        showError(ui.switchError, "");
        ui.switchInput.removeAttribute("aria-invalid");
      }
    });
    ui.roomList.addEventListener("click", (e) => {
      const button = /** @type {HTMLElement} */ (e.target).closest?.(".room-link");
      if (!(button instanceof HTMLElement) || !button.dataset.room) return;
      this.#chose(button.dataset.room);
    });
    ui.sidebarOpen.addEventListener("click", () => this.#open());
    ui.sidebarClose.addEventListener("click", () => {
      this.#close();
      ui.sidebarOpen.focus();
    });
    ui.scrim.addEventListener("click", () => this.#close());
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && ui.sidebar.classList.contains("open")) {
        this.#close();
        ui.sidebarOpen.focus();
      }
    });
  }

  /** @param {string} room */
  #chose(room) {
    this.#close();
    if (room !== this.#session.room) this.#pick(room);
    ui.input.focus();
  }

  /** Starts (or restarts) the periodic refresh. */
  start() {
    clearInterval(this.#timer);
    this.#timer = setInterval(() => void this.refresh(), ROOMS_REFRESH_MS);
  }

  stop() {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async refresh() {
    /** @type {{ room: string, members: number }[]} */
    let rooms = [];
    try {
      /** @type {Record<string, string>} */
      const headers = { accept: "application/json" };
      if (this.#session.token) headers.authorization = `Bearer ${this.#session.token}`;
      const res = await fetch("/api/rooms", { headers });
      if (res.ok) {
        const body = await res.json();
        if (Array.isArray(body?.rooms)) {
          rooms = body.rooms.filter((/** @type {any} */ r) => typeof r?.room === "string");
        }
      }
    } catch {
      // The list is a convenience; the switch form still works.
    }
    const here = this.#session.room;
    if (here && !rooms.some((r) => r.room === here)) rooms.push({ room: here, members: this.#memberCount() });
    rooms.sort((a, b) => (a.room === here ? -1 : b.room === here ? 1 : a.room.localeCompare(b.room)));
    const items = rooms.slice(0, ROOMS_SHOWN).map((r) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "room-link";
      button.dataset.room = r.room;
      if (r.room === here) {
        button.classList.add("current");
        button.setAttribute("aria-current", "true");
      }
      const hash = span("hash", "#");
      hash.setAttribute("aria-hidden", "true");
      const n = r.room === here ? this.#memberCount() : r.members;
      const count = span("count", String(n));
      count.title = n === 1 ? "1 member" : `${n} members`;
      button.append(hash, span("room-link-name", r.room), count);
      li.append(button);
      return li;
    });
    ui.roomList.replaceChildren(...items);
  }

  #open() {
    ui.sidebar.classList.add("open");
    ui.scrim.hidden = false;
    ui.sidebarOpen.setAttribute("aria-expanded", "true");
    ui.switchInput.focus();
  }

  #close() {
    if (!ui.sidebar.classList.contains("open")) return;
    ui.sidebar.classList.remove("open");
    ui.scrim.hidden = true;
    ui.sidebarOpen.setAttribute("aria-expanded", "false");
  }
}
