/**
 * Display names as every client will show them: NFC, without control, format (bidi overrides,
 * zero-width characters), separator or unpaired surrogate characters, runs of whitespace made one
 * space, trimmed, at most 64 characters (code points, so no pair is cut). Names a client chooses
 * can't be the backend's ("server", "system", "roomcast", or one that looks like them).
 */

export const MAX_NAME_LENGTH = 64;

/** Characters a name can't hold: controls (Cc), format characters (Cf: bidi controls, zero-width
 * space and joiners, BOM, soft hyphen…), line and paragraph separators, lone surrogates. */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;
const HAS_INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;

/** The name as shown, or `undefined` when nothing visible is left. */
export function normalizeName(text: string): string | undefined {
  const clean = text.normalize("NFC").replace(INVISIBLE, "").replace(/\s+/gu, " ").trim();
  if (!clean) return undefined;
  const points = [...clean];
  return points.length <= MAX_NAME_LENGTH ? clean : points.slice(0, MAX_NAME_LENGTH).join("").trimEnd();
}

/** Whether an id (a JWT `sub`, a backend's `from.id`) is 1–128 characters with nothing invisible. */
export function isCleanId(value: unknown): value is string {
  return typeof value === "string" && value.length > 0 && value.length <= 128 && !HAS_INVISIBLE.test(value);
}

/** Names only the backend may use (its HTTP publishes come from "server"), compared by skeleton. */
const RESERVED = new Set(["server", "system", "roomcast"]);

/** Letters that look like Latin ones (Cyrillic, Greek, digits, fullwidth forms go by NFKC). */
const CONFUSABLE: Record<string, string> = {
  "а": "a",
  "е": "e",
  "о": "o",
  "р": "p",
  "с": "c",
  "у": "y",
  "х": "x",
  "ѕ": "s",
  "і": "i",
  "ј": "j",
  "ԁ": "d",
  "ԍ": "g",
  "һ": "h",
  "ү": "y",
  "м": "m",
  "т": "t",
  "в": "b",
  "к": "k",
  "н": "h",
  "ο": "o",
  "α": "a",
  "ε": "e",
  "ι": "i",
  "κ": "k",
  "ν": "v",
  "ρ": "p",
  "τ": "t",
  "υ": "u",
  "χ": "x",
  "γ": "y",
  "μ": "m",
  "0": "o",
  "1": "l",
  "3": "e",
  "4": "a",
  "5": "s",
  "7": "t",
  "|": "l",
  "ı": "i",
};

/** What a name looks like: NFKC, lower case, look-alike letters made Latin, accents and everything
 * but letters dropped. */
export function nameSkeleton(name: string): string {
  return [...name.normalize("NFKC").toLowerCase()].map((c) => CONFUSABLE[c] ?? c).join("")
    .normalize("NFD").replace(/[^a-z]/g, "");
}

/** Whether a client may not call itself `name`: it looks like one of the backend's names. */
export function isReservedName(name: string): boolean {
  return RESERVED.has(nameSkeleton(name));
}

/** A name a client chose (`?name=`, Socket.IO's `auth.name`), normalised; `undefined` when nothing
 * visible is left or it is reserved for the backend (the client gets a generated one). */
export function clientName(text: string): string | undefined {
  const name = normalizeName(text);
  return name === undefined || isReservedName(name) ? undefined : name;
}
