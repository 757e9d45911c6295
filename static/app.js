// @ts-check
/**
 * The roomcast chat page: a join screen, then one room at a time. All protocol work (reconnects,
 * resume, dedupe) is `RoomcastClient`'s; the panels in chat/ render (messages, members, sidebar,
 * status, composer) and this module connects them to the client. Untrusted text only ever goes
 * through `textContent`.
 */
import { RoomcastClient } from "./roomcast.js";
import { Composer } from "./chat/composer.js";
import { paintAvatar, rejectField, showError, ui } from "./chat/dom.js";
import { displayName, errorText, messageText, roomProblem, typedRoom } from "./chat/format.js";
import { MemberPanel } from "./chat/members.js";
import { MessagePanel } from "./chat/messages.js";
import { newSession } from "./chat/session.js";
import { Sidebar } from "./chat/sidebar.js";
import { placeholder, showState } from "./chat/status.js";

const params = new URLSearchParams(location.search);
const TOKEN_KEY = "roomcast.token";
// A token in the address (a link from the site that minted it) moves to this tab's storage at
// once, and out of the address bar and history, where it would be shared or bookmarked.
if (params.has("token")) {
  try {
    sessionStorage.setItem(TOKEN_KEY, params.get("token") ?? "");
  } catch {
    // Storage off: it is kept in this page only.
  }
  const clean = new URL(location.href);
  clean.searchParams.delete("token");
  history.replaceState(null, "", clean);
}
const session = newSession(params.get("token") ?? storedToken());

/** @returns {string} */
function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? "";
  } catch {
    return "";
  }
}
const messages = new MessagePanel(session);
const members = new MemberPanel(session);
const sidebar = new Sidebar(session, () => members.size, (room) => void enterRoom(room));
new Composer(session, (text, kind) => messages.notice(text, kind), (data) => messages.pending(data));

/**
 * Listens to `c`'s events while it is the page's client.
 * @param {RoomcastClient} c
 */
function wire(c) {
  /** @param {string} type @param {(detail: any) => void} handle */
  const on = (type, handle) =>
    c.addEventListener(type, (e) => {
      if (c === session.client) handle(/** @type {CustomEvent} */ (e).detail);
    });
  on("state", (detail) => {
    showState(detail, session.room, session.everOpen);
    if (detail.state === "closed" && detail.code === 1008) {
      const reason = detail.reason || "not allowed";
      if (/token/i.test(reason)) {
        // A missing, expired or wrong token: ask for one here, never in the address.
        session.token = "";
        try {
          sessionStorage.removeItem(TOKEN_KEY);
        } catch {
          // Storage off.
        }
        ui.tokenField.hidden = false;
        backToLogin(
          `Your access token was not accepted (${reason.replace(/: connect with.*$/, "")}). Paste a valid one.`,
        );
      } else if (!session.everOpen) backToLogin(`The server refused the connection: ${reason}`);
      else messages.notice(`Disconnected by the server: ${reason}`, "error");
    }
  });
  on("welcome", (frame) => {
    const reconnected = session.everOpen;
    session.everOpen = true;
    session.me = frame.user;
    if (typeof frame.guest === "string") keepGuest(frame.guest);
    if (session.me) {
      ui.meName.textContent = session.me.name;
      ui.meId.textContent = session.me.id;
      paintAvatar(ui.meAvatar, session.me);
    }
    if (reconnected) messages.notice("Reconnected.", "info");
  });
  on("joined", (frame) => {
    if (frame.room !== session.room) return;
    members.set(frame.members ?? []);
    if (messages.historyWanted) void messages.loadHistory();
  });
  on("reset", (detail) => {
    if (detail.room !== session.room) return;
    session.view++;
    messages.clear();
    messages.notice("History was reset: showing the room as it is now.", "info");
    void messages.loadHistory();
  });
  on("message", (m) => {
    if (m.room !== session.room) return;
    if (messages.live(m, false) && m.from) members.stopTyping(m.from.id);
  });
  on("ack", (ack) => {
    if (ack.room !== session.room || typeof ack.offset !== "number" || !("data" in ack)) return;
    const from = ack.from ?? session.me;
    const m = { id: ack.id, offset: ack.offset, epoch: ack.epoch, from, data: ack.data, ts: Date.now() };
    if (messages.live(m, true) && from) members.stopTyping(from.id);
  });
  on("member", (f) => {
    if (f.room !== session.room || !f.user) return;
    if (f.event === "join") {
      members.joined(f.user);
      messages.notice(`${displayName(f.user)} joined`, "join");
    } else if (f.event === "leave") {
      members.left(f.user);
      messages.notice(`${displayName(f.user)} left`, "leave");
    }
  });
  on("signal", (f) => {
    const me = session.me;
    if (f.room !== session.room || f.event !== "typing" || !f.from || (me && f.from.id === me.id)) return;
    members.typing(f.from);
  });
  on("direct", (f) => messages.notice(`Direct message from ${displayName(f.from)}: ${messageText(f.data)}`, "direct"));
  on("broadcast", (f) => messages.notice(`Announcement: ${messageText(f.data)}`, "broadcast"));
  on("error", (f) => {
    if (f.room && f.room !== session.room) return;
    messages.notice(`Error: ${errorText(f)}`, "error");
  });
}

/**
 * Shows a room: leaves the old one, clears the view, joins and loads history.
 * @param {string} next
 */
async function enterRoom(next) {
  const client = session.client;
  if (!client) return;
  const previous = session.room;
  session.room = next;
  const v = ++session.view;
  messages.clear();
  members.clear();
  ui.roomName.textContent = next;
  ui.introRoom.textContent = `#${next}`;
  ui.input.placeholder = placeholder(client.state, next);
  ui.input.disabled = false;
  ui.send.disabled = false;
  messages.updateTitle();
  setUrl();
  if (previous && previous !== next) client.leave(previous).catch(() => {});
  void sidebar.refresh();
  try {
    const joined = await client.join(next);
    if (v !== session.view || session.room !== next) return;
    members.set(joined.members ?? []);
    await messages.loadHistory();
    void sidebar.refresh();
  } catch (error) {
    if (session.room !== next) return;
    const code = /** @type {any} */ (error)?.code;
    if (code === "left" || code === "closed") return;
    messages.notice(`Couldn't join #${next}: ${errorText(error)}`, "error");
    if (code === "forbidden") {
      // The token doesn't allow this room: nothing can be sent here, and the box says why.
      ui.input.disabled = true;
      ui.send.disabled = true;
      ui.input.placeholder = `Your access token doesn't allow #${next}: pick another room`;
    }
  }
}

function setUrl() {
  const url = new URL(location.href);
  if (session.name) url.searchParams.set("name", session.name);
  if (session.room) url.searchParams.set("room", session.room);
  history.replaceState(null, "", url);
}

/**
 * Connects as `name` and shows `first`.
 * @param {string} name
 * @param {string} first
 */
function start(name, first) {
  session.client?.close();
  Object.assign(session, { me: null, name, everOpen: false, room: "" });
  // A guest keeps one identity across reloads in this browser: the server's signed guest token.
  const guest = storedGuest();
  const c = new RoomcastClient(session.token ? { name, token: session.token } : guest ? { name, guest } : { name });
  session.client = c;
  wire(c);
  ui.loginView.hidden = true;
  ui.chatView.hidden = false;
  showState({ state: "connecting" }, first, false);
  c.connect();
  void enterRoom(first);
  sidebar.start();
  ui.input.focus();
}

const GUEST_KEY = "roomcast.guest";

/** @returns {string | undefined} */
function storedGuest() {
  try {
    return localStorage.getItem(GUEST_KEY) ?? undefined;
  } catch {
    return undefined; // Storage off (private mode, a sandboxed frame): a new guest each load.
  }
}

/** @param {string | null} token */
function keepGuest(token) {
  try {
    if (token) localStorage.setItem(GUEST_KEY, token);
    else localStorage.removeItem(GUEST_KEY);
  } catch {
    // Storage off.
  }
}

/** @param {string} [error] */
function backToLogin(error = "") {
  const c = session.client;
  session.client = null;
  c?.close();
  sidebar.stop();
  members.clear();
  Object.assign(session, { room: "", me: null });
  ui.chatView.hidden = true;
  ui.loginView.hidden = false;
  showError(ui.loginError, error);
  messages.updateTitle();
  ui.name.focus();
}

ui.login.addEventListener("submit", (e) => {
  e.preventDefault();
  const name = ui.name.value.trim();
  const r = typedRoom(ui.room.value);
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
  if (!ui.tokenField.hidden) {
    const token = ui.token.value.trim();
    if (!token) {
      rejectField(ui.loginError, ui.token, "Paste the access token the site that sent you here gave you.");
      return;
    }
    session.token = token;
    try {
      sessionStorage.setItem(TOKEN_KEY, token);
    } catch {
      // Storage off: kept in this page only.
    }
  }
  showError(ui.loginError, "");
  ui.room.value = r;
  start(name, r);
});

ui.signOut.addEventListener("click", () => {
  const url = new URL(location.href);
  url.searchParams.delete("name");
  history.replaceState(null, "", url);
  keepGuest(null); // Signed out: the next join is a new guest, or needs its token again.
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage off.
  }
  session.token = "";
  ui.token.value = "";
  backToLogin();
});

/** The join card says, in one voice, how this server lets people in: as guests, or with a token. */
async function describeServer() {
  let auth = "guest";
  try {
    const info = await (await fetch("/api/info")).json();
    if (info?.auth === "token") auth = "token";
  } catch {
    // The server can't be asked now: the card stays as for guests; a refusal will say more.
  }
  const needsToken = auth === "token";
  // A token already in hand (from the link) needs no field.
  ui.tokenField.hidden = !needsToken || !!session.token;
  ui.loginFoot.textContent = needsToken
    ? "Signed-in users only: your access token comes from the site that sent you here."
    : "No account needed: you join as a guest.";
}

const initialName = params.get("name")?.trim() ?? "";
const initialRoom = typedRoom(params.get("room") ?? "");
if (initialName) ui.name.value = initialName;
if (initialRoom) ui.room.value = initialRoom;
void describeServer().then(() => {
  if (initialName && initialRoom && ui.tokenField.hidden) ui.login.requestSubmit();
  else (initialName ? (ui.tokenField.hidden ? ui.room : ui.token) : ui.name).focus();
});
