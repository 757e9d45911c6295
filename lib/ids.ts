/**
 * Identifier generators: connection ids, message ids, node ids and guest users. Random enough to
 * be unique across isolates and restarts without coordination.
 */

const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";
const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** Random bytes drawn from the CSPRNG 4 KiB at a time, each used once: an id costs no call of its
 * own (a connect makes three to five of them). */
const POOL = new Uint8Array(4096);
let poolAt = POOL.length;

/** Where `n` (at most POOL's length) fresh random bytes start in POOL. */
function take(n: number): number {
  if (poolAt + n > POOL.length) {
    crypto.getRandomValues(POOL);
    poolAt = 0;
  }
  const at = poolAt;
  poolAt += n;
  return at;
}

export function randomId(length = 12): string {
  const at = take(length);
  let out = "";
  for (let i = at; i < at + length; i++) out += ALPHABET[(POOL[i] as number) % 36];
  return out;
}

/** Bytes as lower-case hex. */
export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** `length` random bytes as hex (epochs, a generated secret). */
export function randomHex(length: number): string {
  return hex(crypto.getRandomValues(new Uint8Array(length)));
}

export const connectionId = (): string => `c-${randomId(12)}`;
/** Message ids: 20 base-36 characters, a random prefix of 12 (about 62 bits, drawn again every
 * 36^8 ids) and a counter of 8 from a random start. Unique across isolates and restarts without
 * coordination, and made without a call for random bytes and a string per character (this runs
 * once per publish). */
const ID_COUNTER_SPAN = 36 ** 8;
let idPrefix = "";
let idCounter = ID_COUNTER_SPAN;

export function messageId(): string {
  if (idCounter >= ID_COUNTER_SPAN) {
    idPrefix = randomId(12);
    // From a random start, so that an id doesn't tell how many came before it.
    idCounter = crypto.getRandomValues(new Uint32Array(1))[0] as number;
  }
  return idPrefix + (ID_COUNTER_SPAN + idCounter++).toString(36).slice(1);
}

export const nodeId = (): string => `n-${randomId(8)}`;

/** An unguessable session id (Engine.IO sessions, Socket.IO sockets): 15 random bytes, base64url
 * (20 characters), the form Socket.IO's own ids take. */
export function sessionId(): string {
  const at = take(15);
  let out = "";
  for (let i = at; i < at + 15; i += 3) {
    const n = ((POOL[i] as number) << 16) | ((POOL[i + 1] as number) << 8) | (POOL[i + 2] as number);
    out += BASE64URL[n >> 18]! + BASE64URL[(n >> 12) & 63]! + BASE64URL[(n >> 6) & 63]! + BASE64URL[n & 63]!;
  }
  return out;
}
export const guestId = (): string => `guest-${randomId(10)}`;

const ADJECTIVES = [
  "Amber",
  "Brave",
  "Calm",
  "Deft",
  "Eager",
  "Fuzzy",
  "Gentle",
  "Happy",
  "Jolly",
  "Keen",
  "Lucky",
  "Merry",
  "Nimble",
  "Plucky",
  "Quiet",
  "Swift",
];
const ANIMALS = [
  "Otter",
  "Falcon",
  "Panda",
  "Lynx",
  "Heron",
  "Koala",
  "Marten",
  "Puffin",
  "Badger",
  "Gecko",
  "Ibis",
  "Wombat",
  "Yak",
  "Zebra",
  "Newt",
  "Robin",
];

export function guestName(): string {
  const at = take(2);
  const [a, b] = [POOL[at] as number, POOL[at + 1] as number];
  return `${ADJECTIVES[a % ADJECTIVES.length]} ${ANIMALS[b % ANIMALS.length]}`;
}
