// @ts-check
/**
 * The dashboard's HTTP calls: the API key (this tab's `sessionStorage` only, never the address or
 * `localStorage`) sent as `Authorization: Bearer`, JSON in and out, and errors carrying the
 * server's own message (`{error: {code, message}}`).
 */

const KEY_ITEM = "roomcast.adminKey";

/** A refused or failed call: the HTTP status (0: no answer) and the server's code and message. */
export class ApiError extends Error {
  /** @param {number} status @param {string} code @param {string} message */
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }

  /** Whether the key was missing or refused (401, 403): the user must sign in again. */
  get auth() {
    return this.status === 401 || this.status === 403;
  }
}

/** The key kept in this tab, or "". */
export function storedKey() {
  try {
    return sessionStorage.getItem(KEY_ITEM) ?? "";
  } catch {
    return ""; // Storage off (a sandboxed frame): the key is asked for on each load.
  }
}

/** Keeps `key` in this tab (or forgets it, with ""). @param {string} key */
export function storeKey(key) {
  try {
    if (key) sessionStorage.setItem(KEY_ITEM, key);
    else sessionStorage.removeItem(KEY_ITEM);
  } catch {
    // Storage off: kept in this page only.
  }
}

/** The error a non-2xx response carries. @param {Response} response */
export async function errorOf(response) {
  let code = `http_${response.status}`;
  let message = `${response.status} ${response.statusText}`.trim();
  try {
    const body = await response.json();
    if (typeof body?.error?.message === "string") message = body.error.message;
    if (typeof body?.error?.code === "string") code = body.error.code;
  } catch {
    // Not JSON (a proxy's page): the status line says it.
  }
  return new ApiError(response.status, code, message);
}

export class Api {
  /** The API key, "" for none (a loopback page of a server without a key). */
  key = "";
  /** Called once per refusal (401, 403) of a call made with this key. @type {(error: ApiError) => void} */
  onRefused = () => {};

  /** The headers every call carries. @param {Record<string, string>} [extra] */
  headers(extra = {}) {
    /** @type {Record<string, string>} */
    const headers = { accept: "application/json", ...extra };
    if (this.key) headers.authorization = `Bearer ${this.key}`;
    return headers;
  }

  /**
   * Calls `path` and returns its JSON; throws an `ApiError` for a refusal or no answer.
   * @param {string} path
   * @param {{ method?: string, body?: unknown, signal?: AbortSignal, quiet?: boolean }} [options]
   *   `quiet`: a refusal is only thrown, `onRefused` is not told (the sign-in form's own probes).
   * @returns {Promise<any>}
   */
  async call(path, options = {}) {
    const { method = "GET", body, signal, quiet = false } = options;
    /** @type {RequestInit} */
    const init = {
      method,
      headers: this.headers(body === undefined ? {} : { "content-type": "application/json" }),
      cache: "no-store",
      credentials: "same-origin",
    };
    if (body !== undefined) init.body = JSON.stringify(body);
    if (signal) init.signal = signal;
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      if (signal?.aborted) throw error;
      throw new ApiError(0, "network", `The server did not answer (${/** @type {Error} */ (error).message})`);
    }
    if (!response.ok) {
      const error = await errorOf(response);
      if (error.auth && !quiet) this.onRefused(error);
      throw error;
    }
    return response.status === 204 ? null : await response.json();
  }
}

/** A panel's status line: what went right, in words.
 * @param {HTMLElement} status @param {string} text */
export function sayDone(status, text) {
  status.dataset.kind = "ok";
  status.textContent = text;
}

/** A panel's status line: what failed and why ("Couldn't <what>: <the server's message>"); nothing
 * when the key was refused (the page is back at the sign-in form then).
 * @param {HTMLElement} status @param {string} what @param {unknown} error */
export function sayFailed(status, what, error) {
  if (error instanceof ApiError && error.auth) return;
  status.dataset.kind = "error";
  status.textContent = `Couldn't ${what}: ${/** @type {Error} */ (error).message}`;
}
