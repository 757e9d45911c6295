/**
 * Identifier generators: connection ids, message ids, node ids and guest users. Random enough to
 * be unique across isolates and restarts without coordination.
 */

const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";

export function randomId(length = 12): string {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  let out = "";
  for (const b of bytes) out += ALPHABET[b % 36];
  return out;
}

export const connectionId = (): string => `c-${randomId(12)}`;
/** 20 base-36 characters: about 103 random bits, shorter on the wire than a UUID. */
export const messageId = (): string => randomId(20);
export const nodeId = (): string => `n-${randomId(8)}`;
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
  const [a = 0, b = 0] = crypto.getRandomValues(new Uint8Array(2));
  return `${ADJECTIVES[a % ADJECTIVES.length]} ${ANIMALS[b % ANIMALS.length]}`;
}
