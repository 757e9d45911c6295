// @ts-check
/**
 * The roomcast chat page: a join screen, then one room at a time with its members, history,
 * live messages, typing indicator and a composer. All protocol work (reconnects, resume,
 * dedupe) is `RoomcastClient`'s; this module renders. Untrusted text only ever goes through
 * `textContent`.
 */
import { RoomcastClient } from "./roomcast.js";

const ROOM_PATTERN = /^[A-Za-z0-9_.:@-]{1,128}$/;
const ROOM_RULE = "Room names use 1–128 letters, numbers or _ . : @ - (no spaces).";
const HISTORY_PAGE = 50;
const TYPING_EVERY_MS = 2000;
const TYPING_SHOWN_MS = 3000;
const GROUP_WINDOW_MS = 5 * 60 * 1000;
const AVATAR_COLORS = 8;
const ROOMS_REFRESH_MS = 15_000;

/** @param {string} id */
function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`Missing #${id}`);
  return el;
}

const ui = {
  loginView: byId("login-view"),
  login: /** @type {HTMLFormElement} */ (byId("login")),
  name: /** @type {HTMLInputElement} */ (byId("name")),
  room: /** @type {HTMLInputElement} */ (byId("room")),
  join: /** @type {HTMLButtonElement} */ (byId("join")),
  loginError: byId("login-error"),
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
 * @typedef {{ id: string, name: string }} User
 * @typedef {{ id: string, offset: number, epoch?: string, from: User | null | undefined, data: unknown, ts?: number }} ChatMessage
 */

/** @type {RoomcastClient | null} */
let client = null;
/** @type {User | null} */
let me = null;
/** The name typed on the join screen. */
let myName = "";
/** A JWT from `?token=` (servers with ROOMCAST_AUTH_SECRET), passed through to the socket. */
const token = new URLSearchParams(location.search).get("token") ?? "";
/** The room on screen. */
let room = "";
/** Bumped on every room switch or reset, so late replies for an old view are dropped. */
let view = 0;
/** Message ids on screen. */
const seen = new Set();
/** @type {Map<string, { id: string, name: string, connections: number }>} */
const members = new Map();
/** @type {Map<string, { name: string, timer: ReturnType<typeof setTimeout> }>} */
const typers = new Map();
let lastTypingSent = 0;
/** History must be (re)loaded once the room is joined again (a load failed on a disconnect). */
let historyWanted = false;
let loadingOlder = false;
let unread = 0;
let everOpen = false;
/** @type {ReturnType<typeof setInterval> | undefined} */
let roomsTimer;

// ── helpers ────────────────────────────────────────────────────────────────

/** @param {unknown} data */
function messageText(data) {
  if (data && typeof data === "object" && typeof (/** @type {any} */ (data)).text === "string") {
    return /** @type {any} */ (data).text;
  }
  if (typeof data === "string") return data;
  try {
    return JSON.stringify(data) ?? String(data);
  } catch {
    return String(data);
  }
}

/** FNV-1a, for a stable avatar colour per user id. @param {string} text */
function hash(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** @param {string} name */
function initials(name) {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  const first = [...(parts[0] ?? "?")][0] ?? "?";
  const last = parts.length > 1 ? [...(parts[parts.length - 1] ?? "")][0] ?? "" : "";
  return (first + last).toUpperCase();
}

/**
 * Initials come from a data attribute (drawn by CSS), so they stay out of the item's text.
 * @param {HTMLElement} el
 * @param {User} user
 */
function paintAvatar(el, user) {
  el.dataset.initials = initials(user.name || user.id);
  for (const c of [...el.classList]) if (c.startsWith("color-")) el.classList.remove(c);
  el.classList.add(`color-${hash(user.id) % AVATAR_COLORS}`);
}

/** @param {number} n */
function pad(n) {
  return String(n).padStart(2, "0");
}

/** @param {Date} date */
function clock(date) {
  return `${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** @param {User | null | undefined} user */
function displayName(user) {
  return user?.name || user?.id || "Someone";
}

function atBottom() {
  const s = ui.scroller;
  return s.scrollHeight - s.scrollTop - s.clientHeight < 48;
}

function scrollToBottom() {
  ui.scroller.scrollTop = ui.scroller.scrollHeight;
  hidePill();
}

function hidePill() {
  ui.newPill.hidden = true;
  unread = 0;
  updateTitle();
}

function updateTitle() {
  const base = room ? `#${room} · roomcast` : "roomcast";
  document.title = unread > 0 && document.hidden ? `(${unread}) ${base}` : base;
}

/** @param {string} value */
function roomProblem(value) {
  if (!value) return "Enter a room name.";
  if (!ROOM_PATTERN.test(value)) return ROOM_RULE;
  return "";
}

/**
 * @param {HTMLElement} el
 * @param {string} text
 */
function showError(el, text) {
  el.textContent = text;
  el.hidden = !text;
}

function setUrl() {
  const url = new URL(location.href);
  if (myName) url.searchParams.set("name", myName);
  if (room) url.searchParams.set("room", room);
  history.replaceState(null, "", url);
}

// ── messages ───────────────────────────────────────────────────────────────

/** @param {Element | null} el */
function isMessage(el) {
  return el instanceof HTMLElement && el.classList.contains("message");
}

/** @param {Element} li */
function offsetOf(li) {
  return Number(/** @type {HTMLElement} */ (li).dataset.offset);
}

/** @returns {HTMLElement[]} */
function messageItems() {
  return /** @type {HTMLElement[]} */ ([...ui.messages.querySelectorAll(":scope > li.message")]);
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

/**
 * Renders a chat message in offset order, once.
 * @param {ChatMessage} m
 * @returns {HTMLElement | null} The new item, or null when it was already shown.
 */
function addMessage(m) {
  if (typeof m.offset !== "number" || seen.has(m.id)) return null;
  const items = messageItems();
  if (items.some((li) => offsetOf(li) === m.offset)) return null;
  seen.add(m.id);

  const from = m.from ?? { id: "unknown", name: "Unknown" };
  const when = new Date(typeof m.ts === "number" ? m.ts : Date.now());
  const li = document.createElement("li");
  li.className = "message";
  li.dataset.offset = String(m.offset);
  li.dataset.id = m.id;
  li.dataset.author = from.id;
  li.dataset.ts = String(when.getTime());
  if (me && from.id === me.id) li.classList.add("own");

  const avatar = document.createElement("span");
  avatar.className = "avatar";
  avatar.setAttribute("aria-hidden", "true");
  paintAvatar(avatar, from);

  const body = document.createElement("div");
  body.className = "body";
  const meta = document.createElement("div");
  meta.className = "meta";
  const author = document.createElement("span");
  author.className = "author";
  author.textContent = displayName(from);
  const time = document.createElement("time");
  time.className = "time";
  time.dateTime = when.toISOString();
  time.title = when.toLocaleString();
  time.textContent = clock(when);
  meta.append(author, " ", time);
  const text = document.createElement("div");
  text.className = "text";
  text.textContent = messageText(m.data);
  body.append(meta, text);
  li.append(avatar, body);

  // Sorted insert: most messages go last, history pages go first.
  let before = null;
  for (let i = items.length - 1; i >= 0; i--) {
    const item = /** @type {HTMLElement} */ (items[i]);
    if (offsetOf(item) > m.offset) before = item;
    else break;
  }
  if (before) ui.messages.insertBefore(li, before);
  else ui.messages.append(li);
  regroup(li);
  regroup(li.nextElementSibling);
  return li;
}

/**
 * A system line: joins, leaves, resets, errors.
 * @param {string} text
 * @param {"info" | "join" | "leave" | "error" | "direct" | "broadcast"} [kind]
 */
function addNotice(text, kind = "info") {
  const stick = atBottom();
  const last = ui.messages.lastElementChild;
  if (last instanceof HTMLElement && last.classList.contains("notice") && last.dataset.text === text) {
    // The same notice again (e.g. several rate_limited errors): count it instead of repeating it.
    const count = Number(last.dataset.count ?? "1") + 1;
    last.dataset.count = String(count);
    let badge = last.querySelector(".notice-count");
    if (!badge) {
      badge = document.createElement("span");
      badge.className = "notice-count";
      last.insertBefore(badge, last.querySelector(".notice-time"));
    }
    badge.textContent = `×${count}`;
    if (stick) scrollToBottom();
    return;
  }
  const li = document.createElement("li");
  li.dataset.text = text;
  li.className = `notice notice-${kind}`;
  const span = document.createElement("span");
  span.className = "notice-text";
  span.textContent = text;
  const time = document.createElement("time");
  time.className = "notice-time";
  const now = new Date();
  time.dateTime = now.toISOString();
  time.title = now.toLocaleString();
  time.textContent = clock(now);
  li.append(span, time);
  ui.messages.append(li);
  if (stick) scrollToBottom();
}

/**
 * A live message (or own ack) arrived: render it and keep the view where the reader wants it.
 * @param {ChatMessage} m
 * @param {boolean} own
 */
function liveMessage(m, own) {
  const stick = atBottom();
  const li = addMessage(m);
  if (!li) return;
  if (m.from) stopTyping(m.from.id);
  if (own || stick) {
    scrollToBottom();
  } else {
    unread++;
    ui.newPill.hidden = false;
    updateTitle();
  }
  if (!own && document.hidden) {
    unread = Math.max(unread, 1);
    updateTitle();
  }
}

function clearMessages() {
  ui.messages.replaceChildren();
  seen.clear();
  ui.older.hidden = true;
  ui.intro.hidden = true;
  hidePill();
}

/**
 * Loads the newest page of history for the room on screen.
 */
async function loadHistory() {
  if (!client || !room) return;
  const r = room;
  const v = view;
  historyWanted = false;
  try {
    const page = await client.history(r, { limit: HISTORY_PAGE });
    if (v !== view || r !== room) return;
    for (const m of page.messages) addMessage(m);
    setHistoryEnd(page.messages.length < HISTORY_PAGE || (page.messages[0]?.offset ?? 1) <= 1);
    scrollToBottom();
  } catch (error) {
    if (v !== view || r !== room) return;
    if (/** @type {any} */ (error)?.code === "disconnected") historyWanted = true;
    else addNotice(`Couldn't load history: ${errorText(error)}`, "error");
  }
}

/** @param {boolean} reachedStart */
function setHistoryEnd(reachedStart) {
  ui.older.hidden = reachedStart || messageItems().length === 0;
  ui.intro.hidden = !reachedStart;
}

async function loadOlder() {
  if (!client || !room || loadingOlder) return;
  const first = messageItems()[0];
  if (!first) return;
  const r = room;
  const v = view;
  loadingOlder = true;
  ui.older.disabled = true;
  ui.older.textContent = "Loading…";
  try {
    const page = await client.history(r, { before: offsetOf(first), limit: HISTORY_PAGE });
    if (v !== view || r !== room) return;
    const fromBottom = ui.scroller.scrollHeight - ui.scroller.scrollTop;
    for (const m of page.messages) addMessage(m);
    ui.scroller.scrollTop = ui.scroller.scrollHeight - fromBottom;
    setHistoryEnd(page.messages.length < HISTORY_PAGE || (page.messages[0]?.offset ?? 1) <= 1);
  } catch (error) {
    if (v === view) addNotice(`Couldn't load older messages: ${errorText(error)}`, "error");
  } finally {
    loadingOlder = false;
    ui.older.disabled = false;
    ui.older.textContent = "Load older messages";
  }
}

// ── members and typing ─────────────────────────────────────────────────────

/** @param {{ id: string, name: string, connections?: number }[]} list */
function setMembers(list) {
  members.clear();
  for (const m of list) members.set(m.id, { id: m.id, name: m.name, connections: m.connections ?? 1 });
  renderMembers();
}

function renderMembers() {
  const sorted = [...members.values()].sort((a, b) => {
    if (me && a.id === me.id) return -1;
    if (me && b.id === me.id) return 1;
    return a.name.localeCompare(b.name, undefined, { sensitivity: "base" }) || a.id.localeCompare(b.id);
  });
  const items = sorted.map((m) => {
    const li = document.createElement("li");
    li.className = "member";
    li.dataset.id = m.id;
    const avatar = document.createElement("span");
    avatar.className = "avatar avatar-small";
    avatar.setAttribute("aria-hidden", "true");
    paintAvatar(avatar, m);
    const dot = document.createElement("span");
    dot.className = "presence-dot";
    dot.setAttribute("aria-hidden", "true");
    avatar.append(dot);
    const name = document.createElement("span");
    name.className = "member-name";
    name.textContent = m.name;
    name.title = m.id;
    li.append(avatar, name);
    if (me && m.id === me.id) {
      li.classList.add("self");
      const you = document.createElement("span");
      you.className = "you";
      you.textContent = "(you)";
      li.append(" ", you);
    }
    return li;
  });
  ui.members.replaceChildren(...items);
  ui.memberCount.textContent = String(members.size);
  ui.roomMeta.textContent = members.size === 1 ? "1 member" : `${members.size} members`;
  const current = ui.roomList.querySelector(".room-link.current .count");
  if (current) current.textContent = String(members.size);
}

/** @param {string} userId */
function stopTyping(userId) {
  const t = typers.get(userId);
  if (!t) return;
  clearTimeout(t.timer);
  typers.delete(userId);
  renderTyping();
}

function clearTyping() {
  for (const t of typers.values()) clearTimeout(t.timer);
  typers.clear();
  renderTyping();
}

function renderTyping() {
  const names = [...typers.values()].map((t) => t.name);
  let text = "";
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length === 3) text = `${names[0]}, ${names[1]} and ${names[2]} are typing…`;
  else if (names.length > 3) text = "Several people are typing…";
  ui.typing.textContent = text;
  ui.typing.classList.toggle("active", names.length > 0);
}

// ── status ─────────────────────────────────────────────────────────────────

const STATE_LABELS = {
  idle: "Not connected",
  connecting: "Connecting…",
  open: "Connected",
  reconnecting: "Reconnecting…",
  closed: "Disconnected",
};

/** @param {{ state: keyof typeof STATE_LABELS, code?: number, reason?: string, delay?: number }} detail */
function showState(detail) {
  const { state } = detail;
  ui.status.dataset.state = state;
  ui.status.textContent = STATE_LABELS[state] ?? state;
  if (detail.reason) ui.status.title = `${detail.code ?? ""} ${detail.reason}`.trim();
  else ui.status.removeAttribute("title");
  let banner = "";
  if (state === "reconnecting") {
    banner = everOpen
      ? "Connection lost. Reconnecting… Messages you missed will appear when you're back."
      : "Can't reach the server yet. Retrying…";
  } else if (state === "closed" && detail.code === 1008) {
    banner = `Disconnected: ${detail.reason || "refused by the server"}.`;
  } else if (state === "connecting" && !everOpen) {
    banner = "";
  }
  ui.banner.textContent = banner;
  ui.banner.hidden = !banner;
  ui.banner.dataset.state = state;
  ui.input.placeholder = state === "open"
    ? `Message #${room}`
    : state === "closed"
    ? "Disconnected"
    : "Waiting for connection…";
}

/** @param {unknown} error */
function errorText(error) {
  const e = /** @type {any} */ (error);
  switch (e?.code) {
    case "rate_limited":
      return "you're sending too fast, slow down a little";
    case "too_large":
      return "the message is too large";
    case "not_joined":
      return "you're not in this room (yet)";
    case "forbidden":
      return "you're not allowed to do that";
    case "disconnected":
      return "not connected";
    case "timeout":
      return "the server didn't answer in time";
    default:
      return e?.message || String(error);
  }
}

// ── rooms list (GET /api/rooms, best effort) ───────────────────────────────

async function refreshRooms() {
  /** @type {{ room: string, members: number }[]} */
  let rooms = [];
  try {
    /** @type {Record<string, string>} */
    const headers = { accept: "application/json" };
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch("/api/rooms", { headers });
    if (res.ok) {
      const body = await res.json();
      if (Array.isArray(body?.rooms)) rooms = body.rooms.filter((/** @type {any} */ r) => typeof r?.room === "string");
    }
  } catch {
    // The list is a convenience; the switch form still works.
  }
  if (room && !rooms.some((r) => r.room === room)) rooms.push({ room, members: members.size });
  rooms.sort((a, b) => (a.room === room ? -1 : b.room === room ? 1 : a.room.localeCompare(b.room)));
  const items = rooms.slice(0, 30).map((r) => {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "room-link";
    button.dataset.room = r.room;
    if (r.room === room) {
      button.classList.add("current");
      button.setAttribute("aria-current", "true");
    }
    const hashEl = document.createElement("span");
    hashEl.className = "hash";
    hashEl.setAttribute("aria-hidden", "true");
    hashEl.textContent = "#";
    const name = document.createElement("span");
    name.className = "room-link-name";
    name.textContent = r.room;
    const count = document.createElement("span");
    count.className = "count";
    const n = r.room === room ? members.size : r.members;
    count.textContent = String(n);
    count.title = n === 1 ? "1 member" : `${n} members`;
    button.append(hashEl, name, count);
    li.append(button);
    return li;
  });
  ui.roomList.replaceChildren(...items);
}

// ── client wiring ──────────────────────────────────────────────────────────

/** @param {RoomcastClient} c */
function wire(c) {
  c.addEventListener("state", (e) => {
    if (c !== client) return;
    const detail = /** @type {CustomEvent} */ (e).detail;
    showState(detail);
    if (detail.state === "closed" && detail.code === 1008) {
      if (!everOpen) {
        backToLogin(`The server refused the connection: ${detail.reason || "not allowed"}`);
      } else {
        addNotice(`Disconnected by the server: ${detail.reason || "not allowed"}`, "error");
      }
    }
  });
  c.addEventListener("welcome", (e) => {
    if (c !== client) return;
    const frame = /** @type {CustomEvent} */ (e).detail;
    const reconnected = everOpen;
    everOpen = true;
    me = frame.user;
    if (me) {
      ui.meName.textContent = me.name;
      ui.meId.textContent = me.id;
      paintAvatar(ui.meAvatar, me);
    }
    if (reconnected) addNotice("Reconnected.", "info");
  });
  c.addEventListener("joined", (e) => {
    if (c !== client) return;
    const frame = /** @type {CustomEvent} */ (e).detail;
    if (frame.room !== room) return;
    setMembers(frame.members ?? []);
    if (historyWanted) void loadHistory();
  });
  c.addEventListener("reset", (e) => {
    if (c !== client) return;
    const detail = /** @type {CustomEvent} */ (e).detail;
    if (detail.room !== room) return;
    view++;
    clearMessages();
    addNotice("History was reset: showing the room as it is now.", "info");
    void loadHistory();
  });
  c.addEventListener("message", (e) => {
    if (c !== client) return;
    const m = /** @type {CustomEvent} */ (e).detail;
    if (m.room !== room) return;
    liveMessage(m, false);
  });
  c.addEventListener("ack", (e) => {
    if (c !== client) return;
    const ack = /** @type {CustomEvent} */ (e).detail;
    if (ack.room !== room || typeof ack.offset !== "number" || !("data" in ack)) return;
    liveMessage({
      id: ack.id,
      offset: ack.offset,
      epoch: ack.epoch,
      from: ack.from ?? me,
      data: ack.data,
      ts: Date.now(),
    }, true);
  });
  c.addEventListener("member", (e) => {
    if (c !== client) return;
    const f = /** @type {CustomEvent} */ (e).detail;
    if (f.room !== room || !f.user) return;
    if (f.event === "join") {
      members.set(f.user.id, { id: f.user.id, name: f.user.name, connections: 1 });
      addNotice(`${displayName(f.user)} joined`, "join");
    } else if (f.event === "leave") {
      members.delete(f.user.id);
      stopTyping(f.user.id);
      addNotice(`${displayName(f.user)} left`, "leave");
    }
    renderMembers();
  });
  c.addEventListener("signal", (e) => {
    if (c !== client) return;
    const f = /** @type {CustomEvent} */ (e).detail;
    if (f.room !== room || f.event !== "typing" || !f.from || (me && f.from.id === me.id)) return;
    const id = f.from.id;
    const old = typers.get(id);
    if (old) clearTimeout(old.timer);
    typers.set(id, { name: displayName(f.from), timer: setTimeout(() => stopTyping(id), TYPING_SHOWN_MS) });
    renderTyping();
  });
  c.addEventListener("direct", (e) => {
    if (c !== client) return;
    const f = /** @type {CustomEvent} */ (e).detail;
    addNotice(`Direct message from ${displayName(f.from)}: ${messageText(f.data)}`, "direct");
  });
  c.addEventListener("broadcast", (e) => {
    if (c !== client) return;
    const f = /** @type {CustomEvent} */ (e).detail;
    addNotice(`Announcement: ${messageText(f.data)}`, "broadcast");
  });
  c.addEventListener("error", (e) => {
    if (c !== client) return;
    const f = /** @type {CustomEvent} */ (e).detail;
    if (f.room && f.room !== room) return;
    addNotice(`Error: ${errorText(f)}`, "error");
  });
}

/**
 * Shows a room: leaves the old one, clears the view, joins and loads history.
 * @param {string} next
 */
async function enterRoom(next) {
  if (!client) return;
  const previous = room;
  room = next;
  view++;
  const v = view;
  clearMessages();
  clearTyping();
  members.clear();
  renderMembers();
  ui.roomName.textContent = next;
  ui.introRoom.textContent = `#${next}`;
  ui.input.placeholder = client.state === "open" ? `Message #${next}` : "Waiting for connection…";
  updateTitle();
  setUrl();
  if (previous && previous !== next) {
    client.leave(previous).catch(() => {});
  }
  void refreshRooms();
  try {
    const joined = await client.join(next);
    if (v !== view || room !== next) return;
    setMembers(joined.members ?? []);
    await loadHistory();
    void refreshRooms();
  } catch (error) {
    if (room !== next) return;
    const code = /** @type {any} */ (error)?.code;
    if (code === "left" || code === "closed") return;
    addNotice(`Couldn't join #${next}: ${errorText(error)}`, "error");
  }
}

/**
 * @param {string} name
 * @param {string} first
 */
function start(name, first) {
  client?.close();
  me = null;
  myName = name;
  everOpen = false;
  room = "";
  const c = new RoomcastClient(token ? { name, token } : { name });
  client = c;
  wire(c);
  ui.loginView.hidden = true;
  ui.chatView.hidden = false;
  showState({ state: "connecting" });
  c.connect();
  void enterRoom(first);
  clearInterval(roomsTimer);
  roomsTimer = setInterval(() => void refreshRooms(), ROOMS_REFRESH_MS);
  ui.input.focus();
}

/** @param {string} [error] */
function backToLogin(error = "") {
  const c = client;
  client = null;
  c?.close();
  clearInterval(roomsTimer);
  clearTyping();
  room = "";
  me = null;
  ui.chatView.hidden = true;
  ui.loginView.hidden = false;
  showError(ui.loginError, error);
  updateTitle();
  ui.name.focus();
}

// ── DOM events ─────────────────────────────────────────────────────────────

/** The room name typed into `input`, without a leading `#`.
 * @param {HTMLInputElement} input */
function typedRoom(input) {
  return input.value.trim().replace(/^#/, "");
}

/** Shows `message` under a form and marks `input` as the field to fix.
 * @param {HTMLElement} errorEl @param {HTMLInputElement} input @param {string} message */
function rejectField(errorEl, input, message) {
  showError(errorEl, message);
  input.setAttribute("aria-invalid", "true");
  input.focus();
}

ui.login.addEventListener("submit", (e) => {
  e.preventDefault();
  const name = ui.name.value.trim();
  const r = typedRoom(ui.room);
  ui.name.removeAttribute("aria-invalid");
  ui.room.removeAttribute("aria-invalid");
  if (!name || name.length > 64) {
    rejectField(ui.loginError, ui.name, "Enter a name (up to 64 characters).");
    return;
  }
  const problem = roomProblem(r);
  if (problem) {
    rejectField(ui.loginError, ui.room, problem);
    return;
  }
  showError(ui.loginError, "");
  ui.room.value = r;
  start(name, r);
});

ui.switchRoom.addEventListener("submit", (e) => {
  e.preventDefault();
  const r = typedRoom(ui.switchInput);
  const problem = roomProblem(r);
  if (problem) {
    rejectField(ui.switchError, ui.switchInput, problem);
    return;
  }
  showError(ui.switchError, "");
  ui.switchInput.removeAttribute("aria-invalid");
  ui.switchInput.value = "";
  closeSidebar();
  if (r !== room) void enterRoom(r);
  ui.input.focus();
});

ui.switchInput.addEventListener("input", () => {
  if (!ui.switchError.hidden && !roomProblem(typedRoom(ui.switchInput))) {
    showError(ui.switchError, "");
    ui.switchInput.removeAttribute("aria-invalid");
  }
});

ui.roomList.addEventListener("click", (e) => {
  const button = /** @type {HTMLElement} */ (e.target).closest?.(".room-link");
  if (!(button instanceof HTMLElement) || !button.dataset.room) return;
  closeSidebar();
  if (button.dataset.room !== room) void enterRoom(button.dataset.room);
  ui.input.focus();
});

function sendMessage() {
  if (!client || !room) return;
  const text = ui.input.value;
  if (!text.trim()) return;
  if (client.state !== "open") {
    addNotice("You're offline: the message wasn't sent (it's still in the box).", "error");
    return;
  }
  const r = room;
  ui.input.value = "";
  autosize();
  lastTypingSent = 0;
  client.publish(r, { text }).catch((error) => {
    if (r !== room) return;
    if (error?.code === "disconnected") {
      addNotice(
        "Connection lost while sending. If your message doesn't show up after reconnecting, send it again.",
        "error",
      );
    } else {
      addNotice(`Message not sent: ${errorText(error)}`, "error");
    }
    if (!ui.input.value) {
      ui.input.value = text;
      autosize();
    }
  });
}

ui.composer.addEventListener("submit", (e) => {
  e.preventDefault();
  sendMessage();
  ui.input.focus();
});

ui.input.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing && !e.altKey && !e.ctrlKey && !e.metaKey) {
    e.preventDefault();
    sendMessage();
  }
});

function autosize() {
  const lines = ui.input.value.split("\n").length;
  ui.input.rows = Math.min(8, Math.max(1, lines));
}

ui.input.addEventListener("input", () => {
  autosize();
  if (!client || !room || !ui.input.value.trim()) return;
  const now = Date.now();
  if (now - lastTypingSent >= TYPING_EVERY_MS && client.signal(room, "typing", {})) lastTypingSent = now;
});

ui.older.addEventListener("click", () => void loadOlder());

ui.scroller.addEventListener("scroll", () => {
  if (!ui.newPill.hidden && atBottom()) hidePill();
});

ui.newPill.addEventListener("click", () => {
  scrollToBottom();
  ui.input.focus();
});

ui.signOut.addEventListener("click", () => {
  const url = new URL(location.href);
  url.searchParams.delete("name");
  history.replaceState(null, "", url);
  backToLogin();
});

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && atBottom()) {
    unread = 0;
    updateTitle();
  }
});

// Mobile drawer.
function openSidebar() {
  ui.sidebar.classList.add("open");
  ui.scrim.hidden = false;
  ui.sidebarOpen.setAttribute("aria-expanded", "true");
  ui.switchInput.focus();
}

function closeSidebar() {
  if (!ui.sidebar.classList.contains("open")) return;
  ui.sidebar.classList.remove("open");
  ui.scrim.hidden = true;
  ui.sidebarOpen.setAttribute("aria-expanded", "false");
}

ui.sidebarOpen.addEventListener("click", openSidebar);
ui.sidebarClose.addEventListener("click", () => {
  closeSidebar();
  ui.sidebarOpen.focus();
});
ui.scrim.addEventListener("click", closeSidebar);
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && ui.sidebar.classList.contains("open")) {
    closeSidebar();
    ui.sidebarOpen.focus();
  }
});

// ── boot ───────────────────────────────────────────────────────────────────

const params = new URLSearchParams(location.search);
const initialName = params.get("name")?.trim() ?? "";
const initialRoom = params.get("room")?.trim().replace(/^#/, "") ?? "";
if (initialName) ui.name.value = initialName;
if (initialRoom) ui.room.value = initialRoom;
if (initialName && initialRoom) {
  ui.login.requestSubmit();
} else {
  (initialName ? ui.room : ui.name).focus();
}
