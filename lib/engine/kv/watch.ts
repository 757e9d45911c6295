/**
 * Watches Deno KV keys for a changing set of subjects (rooms), where `kv.watch` takes at most ten
 * keys a call: subjects are packed into groups whose keys fit one call, each group one watch
 * stream, restarted when its subjects change (changes are applied together, SETTLE_MS after the
 * first). A key counts as changed when its versionstamp differs from the last one seen (watch
 * merges rapid changes and reports only the latest), and `changed(subject, index, entry)` is
 * called with the key's index in `keysOf(subject)`. A subject's first report counts as a change
 * where its key exists: what changed before its stream started is not missed.
 *
 * A stream that fails is reported to `trouble` and started again after RETRY_MS (longer after
 * failures in a row); one that ends is started again the same way, unreported. At most
 * `maxSubjects` subjects are watched; the others wait for a place, and their owner's poll is all
 * they have meanwhile. Watching is the fast path only: callers poll too.
 */

/** kv.watch's limit on keys per call. */
export const KEYS_PER_WATCH = 10;
const SETTLE_MS = 50;
/** A failed stream starts again after RETRY_MS, doubled for each failure in a row up to RETRY_MAX_MS. */
const RETRY_MS = 1000;
const RETRY_MAX_MS = 30_000;

export interface KvWatchOptions {
  kv: Deno.Kv;
  /** The keys watched for a subject: at most KEYS_PER_WATCH, the same ones every call. */
  keysOf(subject: string): Deno.KvKey[];
  changed(subject: string, index: number, entry: Deno.KvEntryMaybe<unknown>): void;
  trouble(error: unknown): void;
  maxSubjects: number;
}

interface Group {
  subjects: string[];
  keys: number;
  /** The running stream's reader; replaced on each start. */
  reader: ReadableStreamDefaultReader<Deno.KvEntryMaybe<unknown>[]> | undefined;
  /** Failures since its stream last reported. */
  failures: number;
}

export class KvWatch {
  readonly #options: KvWatchOptions;
  readonly #groups: Group[] = [];
  readonly #groupOf = new Map<string, Group>();
  /** Subjects over `maxSubjects`, in the order they came. */
  readonly #waiting = new Set<string>();
  /** Per watched subject, the versionstamps last seen, by key index. */
  readonly #seen = new Map<string, (string | null)[]>();
  readonly #dirty = new Set<Group>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #retries = new Set<ReturnType<typeof setTimeout>>();
  /** The streams' read loops, until they end. */
  readonly #loops = new Set<Promise<void>>();
  #closed = false;

  constructor(options: KvWatchOptions) {
    this.#options = options;
  }

  /** Watch streams open (or about to be). */
  get streams(): number {
    return this.#groups.length;
  }

  /** Subjects watched; the rest wait for a place. */
  get watched(): number {
    return this.#groupOf.size;
  }

  add(subject: string): void {
    if (this.#closed || this.#groupOf.has(subject) || this.#waiting.has(subject)) return;
    if (this.#groupOf.size >= this.#options.maxSubjects) {
      this.#waiting.add(subject);
      return;
    }
    const n = this.#options.keysOf(subject).length;
    let group = this.#groups.find((g) => g.keys + n <= KEYS_PER_WATCH);
    if (!group) this.#groups.push(group = { subjects: [], keys: 0, reader: undefined, failures: 0 });
    group.subjects.push(subject);
    group.keys += n;
    this.#groupOf.set(subject, group);
    this.#changedGroup(group);
  }

  delete(subject: string): void {
    if (this.#waiting.delete(subject)) return;
    const group = this.#groupOf.get(subject);
    if (!group) return;
    this.#groupOf.delete(subject);
    this.#seen.delete(subject);
    group.subjects = group.subjects.filter((s) => s !== subject);
    group.keys -= this.#options.keysOf(subject).length;
    this.#changedGroup(group);
    const [next] = this.#waiting;
    if (next !== undefined) {
      this.#waiting.delete(next);
      this.add(next);
    }
  }

  /** Stops every stream; resolves once their reads ended. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    for (const timer of this.#retries) clearTimeout(timer);
    for (const group of this.#groups) this.#stop(group);
    this.#groups.length = 0;
    this.#groupOf.clear();
    this.#waiting.clear();
    await Promise.all(this.#loops);
  }

  #changedGroup(group: Group): void {
    this.#dirty.add(group);
    this.#timer ??= setTimeout(() => this.#apply(), SETTLE_MS);
  }

  /** Restarts the streams of the groups whose subjects changed; drops the empty ones. */
  #apply(): void {
    this.#timer = undefined;
    for (const group of this.#dirty) {
      this.#stop(group);
      if (group.subjects.length > 0) this.#start(group);
      else if (this.#groups.includes(group)) this.#groups.splice(this.#groups.indexOf(group), 1);
    }
    this.#dirty.clear();
  }

  #stop(group: Group): void {
    group.reader?.cancel().catch(() => {});
    group.reader = undefined;
  }

  #start(group: Group): void {
    if (this.#closed || !this.#groups.includes(group)) return;
    const subjects = [...group.subjects];
    const keys = subjects.flatMap((s) => this.#options.keysOf(s));
    let reader: ReadableStreamDefaultReader<Deno.KvEntryMaybe<unknown>[]>;
    try {
      reader = this.#options.kv.watch(keys).getReader();
    } catch (error) {
      return this.#failed(group, error);
    }
    group.reader = reader;
    const loop = this.#read(group, reader, subjects).finally(() => this.#loops.delete(loop));
    this.#loops.add(loop);
  }

  async #read(
    group: Group,
    reader: ReadableStreamDefaultReader<Deno.KvEntryMaybe<unknown>[]>,
    subjects: string[],
  ): Promise<void> {
    try {
      for (;;) {
        const { value: entries, done } = await reader.read();
        if (group.reader !== reader) return;
        if (done) {
          // The stream ended without an error (the KV, or the platform, closed it): started again,
          // and what changed meanwhile is told by the new stream's first report.
          if (!this.#closed) this.#retry(group);
          return;
        }
        group.failures = 0;
        let at = 0;
        for (const subject of subjects) {
          const n = this.#options.keysOf(subject).length;
          // A subject deleted since this stream started is skipped (and no longer seen).
          if (this.#groupOf.get(subject) === group) this.#compare(subject, entries.slice(at, at + n));
          at += n;
        }
      }
    } catch (error) {
      if (group.reader === reader && !this.#closed) this.#failed(group, error);
    }
  }

  #compare(subject: string, entries: Deno.KvEntryMaybe<unknown>[]): void {
    let seen = this.#seen.get(subject);
    if (!seen) this.#seen.set(subject, seen = entries.map(() => null));
    entries.forEach((entry, i) => {
      if (entry.versionstamp === seen[i]) return;
      seen[i] = entry.versionstamp;
      this.#options.changed(subject, i, entry);
    });
  }

  #failed(group: Group, error: unknown): void {
    this.#options.trouble(error);
    this.#retry(group);
  }

  /** Starts the group's stream again after a pause, longer after each failure in a row. */
  #retry(group: Group): void {
    group.reader = undefined;
    const wait = Math.min(RETRY_MS * 2 ** group.failures++, RETRY_MAX_MS);
    const timer = setTimeout(() => {
      this.#retries.delete(timer);
      if (group.reader === undefined && !this.#dirty.has(group)) this.#start(group);
    }, wait);
    this.#retries.add(timer);
  }
}
