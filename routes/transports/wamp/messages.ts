/**
 * WAMP v2 messages as roomcast maps them: type codes, ids, what a PUBLISH stores and what an EVENT
 * carries, and roomcast's error codes as WAMP error URIs.
 */

/** Message type codes (WAMP v2 Basic Profile). */
export const W = {
  HELLO: 1,
  WELCOME: 2,
  ABORT: 3,
  CHALLENGE: 4,
  AUTHENTICATE: 5,
  GOODBYE: 6,
  ERROR: 8,
  PUBLISH: 16,
  PUBLISHED: 17,
  SUBSCRIBE: 32,
  SUBSCRIBED: 33,
  UNSUBSCRIBE: 34,
  UNSUBSCRIBED: 35,
  EVENT: 36,
  CALL: 48,
  RESULT: 50,
  REGISTER: 64,
  REGISTERED: 65,
  UNREGISTER: 66,
  UNREGISTERED: 67,
  INVOCATION: 68,
  YIELD: 70,
} as const;

const MAX_ID = 2 ** 53;

export function randomId(): number {
  const [a = 0, b = 0] = crypto.getRandomValues(new Uint32Array(2));
  return ((a & 0x1fffff) * 2 ** 32 + b) % MAX_ID || 1;
}

/** A message id (a string) as a WAMP publication id: the same number on every node. */
export function publicationId(id: string): number {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) % MAX_ID;
  return h || 1;
}

export const isId = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0;
export const isDict = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** What a PUBLISH stores: its only argument (empty kwargs count as none), or `{args, kwargs}`. */
export function storedPayload(args: unknown, kwargs: unknown): unknown {
  const list = Array.isArray(args) ? args : [];
  const keywords = isDict(kwargs) && Object.keys(kwargs).length > 0;
  if (list.length === 1 && !keywords) return list[0];
  return { args: list, kwargs: isDict(kwargs) ? kwargs : {} };
}

/** A message's data as an EVENT's arguments (the inverse of `storedPayload`). */
export function eventPayload(data: unknown): unknown[] {
  if (isDict(data) && Object.keys(data).length === 2 && Array.isArray(data.args) && isDict(data.kwargs)) {
    return Object.keys(data.kwargs).length > 0 ? [data.args, data.kwargs] : [data.args];
  }
  return [[data]];
}

/** roomcast's error code as a WAMP error URI. */
export function wampError(code: string): string {
  switch (code) {
    case "forbidden":
    case "unauthorized":
      return "wamp.error.not_authorized";
    case "bad_request":
      return "wamp.error.invalid_argument";
    default:
      return `roomcast.error.${code}`;
  }
}
