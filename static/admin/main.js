// @ts-check
/**
 * The operator's dashboard (`/admin`, docs/ADMIN.md): asks for the API key (unless the server lets
 * this page in without one), then shows the service live: totals and nodes, the last 15 minutes
 * plotted, the rooms, a tail of joins, leaves and publishes, and one room and one user up close.
 * This module signs in and out and connects the panels; each panel is its own module.
 */
import { Api, ApiError, storedKey, storeKey } from "./api.js";
import { byId, setAttr, setText, showLine } from "./dom.js";
import { Overview } from "./overview.js";
import { Plot } from "./plot.js";
import { RoomPanel } from "./room_panel.js";
import { RoomsTable } from "./rooms.js";
import { TickStream } from "./stream.js";
import { Tail } from "./tail.js";
import { UserPanel } from "./user_panel.js";

/** The overview (proxy state, and the plot's window again) is fetched anew this often. */
const OVERVIEW_MS = 15_000;

const ui = {
  boot: byId("boot"),
  keyView: byId("key-view"),
  keyForm: /** @type {HTMLFormElement} */ (byId("key-form")),
  key: /** @type {HTMLInputElement} */ (byId("key")),
  keyError: byId("key-error"),
  keySubmit: /** @type {HTMLButtonElement} */ (byId("key-submit")),
  dash: byId("dash"),
  title: byId("dash-title"),
  status: byId("status"),
  access: byId("access"),
  forget: /** @type {HTMLButtonElement} */ (byId("forget")),
  roomTitle: byId("room-title"),
  userTitle: byId("user-title"),
};

const api = new Api();
const overview = new Overview();
const plot = new Plot();
const users = new UserPanel(api);
const rooms = new RoomsTable(api, openRoom);
const room = new RoomPanel(api, openUser, (name) => rooms.setCurrent(name));
const tail = new Tail(openRoom, openUser);
const stream = new TickStream({
  path: "/api/admin/stream",
  headers: () => api.headers({ accept: "text/event-stream" }),
  onTick(tick) {
    if (!tick || typeof tick !== "object") return;
    overview.show(tick);
    plot.add(tick.point, typeof tick.now === "number" ? tick.now : Date.now());
    tail.add(tick.tail, tick.tailDropped);
    // The open room's members as they change (a join or a leave there this second).
    /** @type {{ room?: unknown, kind?: unknown }[]} */
    const entries = Array.isArray(tick.tail) ? tick.tail : [];
    if (room.room && entries.some((e) => e?.room === room.room && (e.kind === "join" || e.kind === "leave"))) {
      void room.refreshMembers();
    }
  },
  onState: showStreamState,
  onRefused: refused,
});
api.onRefused = refused;

let signedIn = false;
let everOpen = false;
/** @type {ReturnType<typeof setInterval> | undefined} */
let overviewTimer;

/** Shows a room up close, and takes the reader there. @param {string} name */
function openRoom(name) {
  room.open(name);
  ui.roomTitle.focus();
}

/** Shows a user up close, and takes the reader there. @param {string} id */
function openUser(id) {
  users.open(id);
  ui.userTitle.focus();
}

const STATES = {
  idle: "Not connected",
  connecting: "Connecting…",
  open: "Live",
  reconnecting: "Reconnecting…",
  closed: "Not connected",
};

/** @param {import("./stream.js").StreamState} s */
function showStreamState(s) {
  ui.status.dataset.state = s.state;
  let text = STATES[s.state];
  if (s.state === "reconnecting" && typeof s.delay === "number") {
    text = `Reconnecting (next try after ${Math.max(1, Math.round(s.delay / 1000))} s)…`;
  }
  // Figures from a stream that is down are dimmed: they are as of the last tick.
  ui.dash.dataset.stream = s.state;
  setText(ui.status, text);
  setAttr(ui.status, "title", s.reason ? `Stream: ${s.reason}` : null);
  if (s.state === "open") {
    // Back after a gap: the overview fills the plot's missing seconds.
    if (everOpen) void refreshOverview();
    everOpen = true;
  }
}

/** Fetches the overview and shows what only it has (proxy state, version, the whole window). */
async function refreshOverview() {
  try {
    const snapshot = await api.call("/api/admin/overview");
    if (signedIn) showOverview(snapshot);
  } catch {
    // The stream's state says when the server is away; the next refresh tries again.
  }
}

/** @param {any} snapshot */
function showOverview(snapshot) {
  overview.show(snapshot);
  overview.showProxy(snapshot?.proxy);
  overview.showVersion(snapshot?.version, snapshot?.engine);
  plot.replace(snapshot?.series, typeof snapshot?.now === "number" ? snapshot.now : Date.now());
}

/** @param {any} snapshot The overview the key opened. */
function showDashboard(snapshot) {
  signedIn = true;
  everOpen = false;
  ui.boot.hidden = true;
  ui.keyView.hidden = true;
  ui.dash.hidden = false;
  ui.forget.hidden = !api.key;
  ui.access.hidden = !!api.key;
  showOverview(snapshot);
  stream.start();
  rooms.start();
  clearInterval(overviewTimer);
  overviewTimer = setInterval(() => void refreshOverview(), OVERVIEW_MS);
}

/** Leaves the dashboard for the sign-in form, saying `error` there. @param {string} error */
function showForm(error) {
  signedIn = false;
  stream.stop();
  rooms.stop();
  clearInterval(overviewTimer);
  plot.clear();
  tail.clear();
  room.close(false);
  users.close(false);
  ui.boot.hidden = true;
  ui.dash.hidden = true;
  ui.keyView.hidden = false;
  showLine(ui.keyError, error);
  ui.key.toggleAttribute("aria-invalid", !!error);
  ui.key.focus();
  if (error) ui.key.select();
}

/** A call with the key was refused (the key changed on the server, say): sign in again.
 * @param {ApiError} error */
function refused(error) {
  if (!signedIn) return;
  storeKey("");
  api.key = "";
  showForm(`The server refused the key: ${error.message}`);
}

/**
 * Opens the dashboard with `key` ("" for none), or throws the server's refusal.
 * @param {string} key
 */
async function enter(key) {
  api.key = key;
  const snapshot = await api.call("/api/admin/overview", { quiet: true });
  storeKey(key);
  showDashboard(snapshot);
}

/** @param {unknown} error */
function refusal(error) {
  if (error instanceof ApiError && error.status === 404) {
    return `This server has no dashboard API (${error.message}): is it roomcast 0.10 or later?`;
  }
  return error instanceof Error ? error.message : String(error);
}

ui.keyForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const key = ui.key.value.trim();
  if (!key) {
    showLine(ui.keyError, "Enter the API key (ROOMCAST_API_KEY).");
    ui.key.setAttribute("aria-invalid", "true");
    ui.key.focus();
    return;
  }
  ui.keySubmit.disabled = true;
  setText(ui.keySubmit, "Checking…");
  try {
    await enter(key);
    ui.key.value = "";
    ui.title.focus();
  } catch (error) {
    api.key = "";
    showLine(ui.keyError, refusal(error));
    ui.key.setAttribute("aria-invalid", "true");
    ui.key.focus();
    ui.key.select();
  } finally {
    ui.keySubmit.disabled = false;
    setText(ui.keySubmit, "Open the dashboard");
  }
});

ui.forget.addEventListener("click", () => {
  storeKey("");
  api.key = "";
  ui.key.value = "";
  showForm("");
});

/** On load: the key this tab keeps, else none (a loopback page of a server without a key). */
async function start() {
  const key = storedKey();
  try {
    await enter(key);
  } catch (error) {
    api.key = "";
    const wasRefused = error instanceof ApiError && error.auth;
    if (key && wasRefused) {
      storeKey("");
      showForm(`The server refused the saved key: ${error.message}`);
    } else if (key) {
      ui.key.value = key; // Not refused, not reached: the same key can be tried again.
      showForm(refusal(error));
    } else {
      // A server that wants a key says so with a 401: that is what the form is for, no error.
      showForm(error instanceof ApiError && error.status === 401 ? "" : refusal(error));
    }
  }
}

void start();
