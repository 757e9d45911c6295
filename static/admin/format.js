// @ts-check
/**
 * The dashboard's pure helpers: numbers, durations and latencies in words, and the paths of the
 * API with their names URL-encoded. No DOM, so they run in Deno as well.
 */

const COUNT = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const ONE_DECIMAL = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
const TWO_DECIMALS = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });

/** A whole number with thousands separators, "–" when not known. @param {number | null | undefined} n */
export function count(n) {
  return typeof n === "number" && Number.isFinite(n) ? COUNT.format(n) : "–";
}

/** A rate: one decimal under 100, whole above, "–" when not known. @param {number | null | undefined} n */
export function rate(n) {
  if (typeof n !== "number" || !Number.isFinite(n)) return "–";
  return n < 100 ? ONE_DECIMAL.format(n) : COUNT.format(n);
}

/** Milliseconds, as precise as they are small: "0.42", "3.1", "120"; "–" when not known.
 * @param {number | null | undefined} n */
export function millis(n) {
  if (typeof n !== "number" || !Number.isFinite(n)) return "–";
  if (n < 1) return TWO_DECIMALS.format(n);
  return n < 10 ? ONE_DECIMAL.format(n) : COUNT.format(n);
}

/** A duration in seconds, in its two largest units: "42 s", "3 min 5 s", "2 h 10 min", "3 d 4 h".
 * @param {number} seconds */
export function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`;
}

/** "ws 9 · sse 2", busiest first; "none" without connections. @param {Record<string, number> | undefined} t */
export function transportsText(t) {
  const entries = Object.entries(t ?? {}).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  return entries.length ? entries.map(([name, n]) => `${name} ${count(n)}`).join(" · ") : "none";
}

/** "1 message", "2 messages". @param {number} n @param {string} one @param {string} [many] */
export function plural(n, one, many = `${one}s`) {
  return `${count(n)} ${n === 1 ? one : many}`;
}

/** The path of a room's resource: `/api/rooms/<room>/<rest>`, the name encoded.
 * @param {string} room @param {string} rest */
export function roomPath(room, rest) {
  return `/api/rooms/${encodeURIComponent(room)}/${rest}`;
}

/** `/api/admin/users/<user>[/rest]`, the id encoded. @param {string} user @param {string} [rest] */
export function adminUserPath(user, rest) {
  return `/api/admin/users/${encodeURIComponent(user)}${rest ? `/${rest}` : ""}`;
}

/** `/api/users/<user>/messages`, the id encoded. @param {string} user */
export function directPath(user) {
  return `/api/users/${encodeURIComponent(user)}/messages`;
}

/**
 * A "nice" upper bound for an axis (1, 2 or 5 × 10ⁿ, at least `floor`), so its grid lines fall on
 * round numbers.
 * @param {number} max
 * @param {number} [floor]
 */
export function niceCeiling(max, floor = 1) {
  const value = Math.max(max, floor);
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * magnitude >= value) return step * magnitude;
  }
  return 10 * magnitude;
}
