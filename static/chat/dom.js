// @ts-check
/** The page's elements, found once, and the few DOM helpers every panel uses. */
import { avatarColor, initials } from "./format.js";

/** @param {string} id */
function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`Missing #${id}`);
  return el;
}

export const ui = {
  loginView: byId("login-view"),
  login: /** @type {HTMLFormElement} */ (byId("login")),
  name: /** @type {HTMLInputElement} */ (byId("name")),
  room: /** @type {HTMLInputElement} */ (byId("room")),
  join: /** @type {HTMLButtonElement} */ (byId("join")),
  loginError: byId("login-error"),
  tokenField: byId("token-field"),
  token: /** @type {HTMLInputElement} */ (byId("token")),
  loginFoot: byId("login-foot"),
  chatView: byId("chat-view"),
  sidebar: byId("sidebar"),
  sidebarOpen: byId("sidebar-open"),
  sidebarClose: byId("sidebar-close"),
  scrim: byId("scrim"),
  roomList: byId("room-list"),
  switchRoom: /** @type {HTMLFormElement} */ (byId("switch-room")),
  switchInput: /** @type {HTMLInputElement} */ (byId("switch-input")),
  switchError: byId("switch-error"),
  members: byId("members"),
  memberCount: byId("member-count"),
  meAvatar: byId("me-avatar"),
  meName: byId("me-name"),
  meId: byId("me-id"),
  signOut: byId("sign-out"),
  roomName: byId("room-name"),
  roomMeta: byId("room-meta"),
  status: byId("status"),
  banner: byId("banner"),
  scroller: byId("scroller"),
  intro: byId("room-intro"),
  introRoom: byId("intro-room"),
  older: /** @type {HTMLButtonElement} */ (byId("older")),
  messages: byId("messages"),
  newPill: byId("new-pill"),
  composer: /** @type {HTMLFormElement} */ (byId("composer")),
  input: /** @type {HTMLTextAreaElement} */ (byId("input")),
  send: /** @type {HTMLButtonElement} */ (byId("send")),
  typing: byId("typing"),
};

/**
 * Initials come from a data attribute (drawn by CSS), so they stay out of the item's text.
 * @param {HTMLElement} el
 * @param {import("./format.js").User} user
 */
export function paintAvatar(el, user) {
  el.dataset.initials = initials(user.name || user.id);
  for (const c of [...el.classList]) if (c.startsWith("color-")) el.classList.remove(c);
  el.classList.add(avatarColor(user.id));
}

/**
 * @param {HTMLElement} el
 * @param {string} text
 */
export function showError(el, text) {
  el.textContent = text;
  el.hidden = !text;
}

/** Shows `message` under a form and marks `input` as the field to fix.
 * @param {HTMLElement} errorEl @param {HTMLInputElement} input @param {string} message */
export function rejectField(errorEl, input, message) {
  showError(errorEl, message);
  input.setAttribute("aria-invalid", "true");
  input.focus();
}

/** A `<span>` with a class and, optionally, text. @param {string} className @param {string} [text] */
export function span(className, text) {
  const el = document.createElement("span");
  el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}
