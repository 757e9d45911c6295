// @ts-check
/** The connection status: the badge in the header, the banner, the composer's placeholder. */
import { ui } from "./dom.js";

/** Close code of a connection refused for now (server full, too many from the address, too often). */
const TRY_LATER = 1013;

const STATE_LABELS = {
  idle: "Not connected",
  connecting: "Connecting…",
  open: "Connected",
  reconnecting: "Reconnecting…",
  closed: "Disconnected",
};

/**
 * @typedef {{ state: keyof typeof STATE_LABELS, code?: number, reason?: string, delay?: number }} StateDetail
 */

/**
 * @param {StateDetail} detail The client's `state` event.
 * @param {string} room The room on screen.
 * @param {boolean} everOpen Whether this client has been connected before (a drop, not a first failure).
 */
export function showState(detail, room, everOpen) {
  const { state } = detail;
  ui.status.dataset.state = state;
  ui.status.textContent = STATE_LABELS[state] ?? state;
  if (detail.reason) ui.status.title = `${detail.code ?? ""} ${detail.reason}`.trim();
  else ui.status.removeAttribute("title");
  let banner = "";
  if (state === "reconnecting" && detail.code === TRY_LATER) {
    // Refused for now (the server is full, this address connects too much): what it said, and when.
    const wait = typeof detail.delay === "number"
      ? ` Trying again in ${Math.max(1, Math.round(detail.delay / 1000))} s.`
      : "";
    banner = `The server turned the connection away: ${detail.reason || "try again later"}.${wait}`;
  } else if (state === "reconnecting") {
    banner = everOpen
      ? "Connection lost. Reconnecting… Messages you missed will appear when you're back."
      : "Can't reach the server yet. Retrying…";
  } else if (state === "closed" && detail.code === 1008) {
    banner = `Disconnected: ${detail.reason || "refused by the server"}.`;
  }
  ui.banner.textContent = banner;
  ui.banner.hidden = !banner;
  ui.banner.dataset.state = state;
  ui.input.placeholder = placeholder(state, room);
}

/** @param {string} state @param {string} room */
export function placeholder(state, room) {
  if (state === "open") return `Message #${room}`;
  return state === "closed" ? "Disconnected" : "Waiting for connection…";
}
