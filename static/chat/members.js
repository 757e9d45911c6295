// @ts-check
/** The member panel: who is in the room on screen, and who is typing. */
import { paintAvatar, span, ui } from "./dom.js";
import { displayName, typingText } from "./format.js";

const TYPING_SHOWN_MS = 3000;

/** @typedef {{ id: string, name: string, connections: number }} Member */

export class MemberPanel {
  /** @type {Map<string, Member>} */
  #members = new Map();
  /** @type {Map<string, { name: string, timer: ReturnType<typeof setTimeout> }>} */
  #typers = new Map();
  #session;

  /** @param {import("./session.js").Session} session */
  constructor(session) {
    this.#session = session;
  }

  get size() {
    return this.#members.size;
  }

  /** @param {{ id: string, name: string, connections?: number }[]} list */
  set(list) {
    this.#members.clear();
    for (const m of list) this.#members.set(m.id, { id: m.id, name: m.name, connections: m.connections ?? 1 });
    this.#render();
  }

  /** @param {import("./format.js").User} user */
  joined(user) {
    this.#members.set(user.id, { id: user.id, name: user.name, connections: 1 });
    this.#render();
  }

  /** @param {import("./format.js").User} user */
  left(user) {
    this.#members.delete(user.id);
    this.stopTyping(user.id);
    this.#render();
  }

  #render() {
    const me = this.#session.me;
    const sorted = [...this.#members.values()].sort((a, b) => {
      if (me && a.id === me.id) return -1;
      if (me && b.id === me.id) return 1;
      return a.name.localeCompare(b.name, undefined, { sensitivity: "base" }) || a.id.localeCompare(b.id);
    });
    const items = sorted.map((m) => {
      const li = document.createElement("li");
      li.className = "member";
      li.dataset.id = m.id;
      const avatar = span("avatar avatar-small");
      avatar.setAttribute("aria-hidden", "true");
      paintAvatar(avatar, m);
      const dot = span("presence-dot");
      dot.setAttribute("aria-hidden", "true");
      avatar.append(dot);
      const name = span("member-name", m.name);
      name.title = m.id;
      li.append(avatar, name);
      if (me && m.id === me.id) {
        li.classList.add("self");
        li.append(" ", span("you", "(you)"));
      }
      return li;
    });
    const n = this.#members.size;
    ui.members.replaceChildren(...items);
    ui.memberCount.textContent = String(n);
    ui.roomMeta.textContent = n === 1 ? "1 member" : `${n} members`;
    const current = ui.roomList.querySelector(".room-link.current .count");
    if (current) current.textContent = String(n);
  }

  /** Someone else is typing: show it for a few seconds. @param {import("./format.js").User} from */
  typing(from) {
    const old = this.#typers.get(from.id);
    if (old) clearTimeout(old.timer);
    const timer = setTimeout(() => this.stopTyping(from.id), TYPING_SHOWN_MS);
    this.#typers.set(from.id, { name: displayName(from), timer });
    this.#renderTyping();
  }

  /** @param {string} userId */
  stopTyping(userId) {
    const t = this.#typers.get(userId);
    if (!t) return;
    clearTimeout(t.timer);
    this.#typers.delete(userId);
    this.#renderTyping();
  }

  /** Empties the panel (a room switch or sign-out). */
  clear() {
    for (const t of this.#typers.values()) clearTimeout(t.timer);
    this.#typers.clear();
    this.#renderTyping();
    this.set([]);
  }

  #renderTyping() {
    const names = [...this.#typers.values()].map((t) => t.name);
    ui.typing.textContent = typingText(names);
    ui.typing.classList.toggle("active", names.length > 0);
  }
}
