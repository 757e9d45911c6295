/**
 * Display names as every client will show them: NFC, without control, format (bidi overrides,
 * zero-width characters), separator or unpaired surrogate characters, runs of whitespace made one
 * space, trimmed, at most 64 characters (code points, so no pair is cut).
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
