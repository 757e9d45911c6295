// @ts-check
/**
 * Pure helpers of the chat page: names, times, error wording, room-name rules. No DOM, so
 * tests/chat_format_test.ts runs them in Deno.
 */

export const ROOM_PATTERN = /^[A-Za-z0-9_.:@=,;-]{1,128}$/;
export const ROOM_RULE = "Room names use 1–128 letters, numbers or _ . : @ = , ; - (no spaces).";
const AVATAR_COLORS = 8;

/**
 * @typedef {{ id: string, name: string }} User
 * @typedef {{ id: string, offset: number, epoch?: string, from: User | null | undefined, data: unknown, ts?: number }} ChatMessage
 */

/** The text a message shows: its `text` field, a string as it is, anything else as JSON.
 * @param {unknown} data */
export function messageText(data) {
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
export function initials(name) {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  const first = [...(parts[0] ?? "?")][0] ?? "?";
  const last = parts.length > 1 ? [...(parts[parts.length - 1] ?? "")][0] ?? "" : "";
  return (first + last).toUpperCase();
}

/** The colour class (`color-0` … `color-7`) of a user's avatar. @param {string} userId */
export function avatarColor(userId) {
  return `color-${hash(userId) % AVATAR_COLORS}`;
}

/** @param {number} n */
function pad(n) {
  return String(n).padStart(2, "0");
}

/** `HH:MM` in local time. @param {Date} date */
export function clock(date) {
  return `${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** @param {User | null | undefined} user */
export function displayName(user) {
  return user?.name || user?.id || "Someone";
}

/** What is wrong with a room name, or "" when it is fine. @param {string} value */
export function roomProblem(value) {
  if (!value) return "Enter a room name.";
  if (!ROOM_PATTERN.test(value)) return ROOM_RULE;
  return "";
}

/** A room name as typed, without spaces around it or a leading `#`. @param {string} value */
export function typedRoom(value) {
  return value.trim().replace(/^#/, "");
}

/** "Ann is typing…", "Ann and Bo are typing…", … @param {string[]} names */
export function typingText(names) {
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  if (names.length === 3) return `${names[0]}, ${names[1]} and ${names[2]} are typing…`;
  if (names.length > 3) return "Several people are typing…";
  return "";
}

/** A client error in words for the reader. @param {unknown} error */
export function errorText(error) {
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
