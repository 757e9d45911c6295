/**
 * Inputs for fuzzing, from a seeded generator (the same seed gives the same inputs): random and
 * structure-aware mutations of valid frames and bodies. `FUZZ_SEED` picks the seed (fixed in CI;
 * `random` draws one; it is printed so that a failure can be replayed) and `FUZZ_SCALE` multiplies
 * the counts (`deno task fuzz`: a random seed, ten times the inputs).
 */

const seed = Deno.env.get("FUZZ_SEED");
export const FUZZ_SEED = seed === "random"
  ? crypto.getRandomValues(new Uint32Array(1))[0] as number
  : Number(seed ?? 20261130);
export const FUZZ_SCALE = Math.max(1, Number(Deno.env.get("FUZZ_SCALE") ?? 1));

/** mulberry32: small, fast, good enough to pick mutations. */
export class Random {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(max: number): number {
    return Math.floor(this.next() * max);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

/** Valid client frames of the JSON protocol, the mutations' starting points. */
export const VALID_FRAMES: Record<string, unknown>[] = [
  { type: "join", room: "fuzz" },
  { type: "join", room: "fuzz-2", since: { epoch: "abc", offset: 3 }, ref: 1 },
  { type: "leave", room: "fuzz-2", ref: "x" },
  { type: "publish", room: "fuzz", data: { text: "hi", n: [1, 2, { deep: true }] }, ref: 2 },
  { type: "publish", room: "fuzz", data: "plain" },
  { type: "direct", to: "someone", data: { text: "psst" } },
  { type: "signal", room: "fuzz", event: "typing", data: { on: true } },
  { type: "history", room: "fuzz", before: 10, limit: 5 },
  { type: "history", room: "fuzz", after: 0 },
  { type: "presence", room: "fuzz" },
  { type: "ping", ref: 9 },
  { type: "pong" },
];

/** Valid HTTP bodies (for the publish, direct, broadcast and token endpoints). */
export const VALID_BODIES: Record<string, unknown>[] = [
  { data: { text: "hello" } },
  { data: "x", from: { id: "bot", name: "Bot" } },
  { data: [1, 2, 3] },
  { sub: "u-1", name: "Ann", rooms: ["a", "b-*"], ttl: 60 },
];

const WEIRD_STRINGS = [
  "",
  " ",
  "\u0000",
  "\u202Eevil",
  "\u200B",
  "\uD800",
  "\uDFFF\uD800",
  "💥".repeat(40),
  "a".repeat(200),
  "<script>alert(1)</script>",
  "../../etc/passwd",
  "fuzz",
  "fuzz-2",
  "*",
  "__proto__",
  "constructor",
  "\n",
  "\r\n",
  '"',
  "\\",
];

function weirdValue(random: Random, depth = 0): unknown {
  switch (random.int(12)) {
    case 0:
      return null;
    case 1:
      return random.pick([0, -1, 1.5, 1e308, -1e308, 2 ** 53, -(2 ** 53) - 2, 4294967297]);
    case 2:
      return random.pick([true, false]);
    case 3:
    case 4:
      return random.pick(WEIRD_STRINGS);
    case 5: {
      // Nested deeper than the limit now and then.
      let value: unknown = 0;
      for (let i = random.int(random.chance(0.2) ? 80 : 8); i > 0; i--) {
        value = random.chance(0.5) ? [value] : { a: value };
      }
      return value;
    }
    case 6:
      return Array.from({ length: random.int(random.chance(0.1) ? 12_000 : 5) }, () => 0);
    case 7:
      return depth < 3 ? { [random.pick(WEIRD_STRINGS)]: weirdValue(random, depth + 1) } : {};
    case 8:
      return depth < 3 ? [weirdValue(random, depth + 1), weirdValue(random, depth + 1)] : [];
    case 9:
      return { epoch: random.pick(WEIRD_STRINGS), offset: weirdValue(random, 3) };
    case 10:
      return "x".repeat(random.pick([10, 1000, 70_000]));
    default:
      return random.pick(["join", "leave", "publish", "direct", "signal", "history", "presence", "ping", "pong"]);
  }
}

/** A structure-aware mutation: fields replaced, removed or added; `type` swapped. */
function mutateObject(random: Random, base: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = structuredClone(base);
  for (let n = 1 + random.int(3); n > 0; n--) {
    const keys = Object.keys(out);
    const key = random.chance(0.7) && keys.length ? random.pick(keys) : random.pick([
      "type",
      "room",
      "data",
      "ref",
      "since",
      "to",
      "event",
      "limit",
      "before",
      "after",
      "from",
      "sub",
      "rooms",
      "ttl",
      "name",
      random.pick(WEIRD_STRINGS),
    ]);
    if (random.chance(0.2)) delete out[key];
    else out[key] = weirdValue(random);
  }
  return out;
}

/** A text-level mutation: characters flipped, inserted or cut, segments repeated. */
function mutateText(random: Random, text: string): string {
  let out = text;
  for (let n = 1 + random.int(4); n > 0; n--) {
    const at = random.int(out.length + 1);
    switch (random.int(6)) {
      case 0:
        out = out.slice(0, at) + out.slice(at + 1 + random.int(5));
        break;
      case 1:
        out = out.slice(0, at) + random.pick(["{", "}", "[", "]", '"', ",", ":", "\\", "\n", "\u0000", "é"]) +
          out.slice(at);
        break;
      case 2:
        out = out.slice(0, at);
        break;
      case 3:
        out = out.slice(0, at) + out.slice(at, at + 8).repeat(random.int(50)) + out.slice(at);
        break;
      case 4:
        out = out.slice(0, at) + String.fromCharCode(random.int(0x10000)) + out.slice(at);
        break;
      default:
        out = random.pick(["[".repeat(6000) + "]".repeat(6000), "null", "[]", "1e999", '{"type":"join"}', out]);
    }
  }
  return out;
}

/** The next fuzzed text: a valid base mutated by structure, by text, or both. */
export function fuzzText(random: Random, bases: readonly Record<string, unknown>[]): string {
  const base = random.pick(bases);
  const structured = random.chance(0.7) ? mutateObject(random, base) : base;
  const text = JSON.stringify(structured);
  return random.chance(0.4) ? mutateText(random, text) : text;
}
