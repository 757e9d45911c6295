// @ts-check
/**
 * What the page knows about the current visit, in one object the panels share: the client, who
 * we are, the room on screen. Nothing else in static/chat/ keeps state across panels.
 */

/**
 * @typedef {object} Session
 * @property {import("../roomcast.js").RoomcastClient | null} client
 * @property {import("./format.js").User | null} me
 * @property {string} name The name typed on the join screen.
 * @property {string} token A JWT from `?token=` (servers with ROOMCAST_AUTH_SECRET), passed to the socket.
 * @property {string} room The room on screen.
 * @property {number} view Bumped on every room switch or reset, so late replies for an old view are dropped.
 * @property {boolean} everOpen Whether this client has been connected once (a drop, not a first failure).
 */

/** @param {string} token @returns {Session} */
export function newSession(token) {
  return { client: null, me: null, name: "", token, room: "", view: 0, everOpen: false };
}
