/**
 * The connection counts and rates every Worker of a process admits against (`ROOMCAST_WORKERS`):
 * see `SharedCounts`. lib/admission.ts uses them in place of its own where they are given.
 */
/** Int32s per slot of a table: the key's hash (two halves; 0, 0 is an empty slot), its open
 * connections, and its new connections: the window they are counted in, that window's and the
 * window before's. */
const SLOT = 6;
const COUNT = 2;
const WINDOW = 3;
const CURRENT = 4;
const PREVIOUS = 5;
/** A table's slots at most (two tables per Worker, 24 bytes a slot: 24 MB of address space per
 * Worker, touched only where addresses land). */
const MAX_SLOTS = 1 << 19;
/** Int32s before a region's tables: the Worker's total, and which table is live. */
const HEADER = 2;

/** What a Worker needs to count in the coordinator's `SharedCounts` (posted to it). */
export interface SharedCountsShare {
  buffer: SharedArrayBuffer;
  seeds: number[];
  regions: number;
  slots: number;
  /** The region this Worker counts in. */
  region: number;
}

/**
 * Counts shared by the Workers of a process, in a SharedArrayBuffer, so that these limits hold for
 * the process, whichever Worker a client reaches: the caps on all connections and per address,
 * the rate of new connections per address, and users' (or guest addresses') publish and signal
 * budgets (lib/budgets.ts). Each Worker counts in a region of its own, which only it writes and
 * which the coordinator clears when it dies (its connections went with it); a check sums every
 * region.
 *
 * A region holds the Worker's total and a hash table of keys (an address, or a budget's
 * principal and kind): open addressing keyed by a 64-bit hash of the key (with this process's
 * random seeds, so that no outsider can aim at a collision), sized for eight times the
 * connections the process allows (at most 512k slots). A slot holds the key's open connections
 * and its uses in the current window and the one before; a rate is a sliding window over them
 * (`rate`). A slot with no connection open and no use in those two windows stays until the table
 * is half used; then the Worker copies the others into its second table and switches to it, so
 * that a reader never sees a table half rewritten. Where one Worker holds more such keys than
 * three quarters of its table (at least six times the connection cap, 393,216 at most), a new key
 * is counted on that Worker alone.
 *
 * Lock-free: a Worker reads the sums, then raises its own counts. So the limits are exact for
 * uses that don't come at the same moment; Workers racing for the last place may each get it,
 * which passes a limit by at most one per other Worker.
 */
export class SharedCounts {
  readonly #buffer: SharedArrayBuffer;
  readonly #counts: Int32Array;
  readonly #seeds: Uint32Array;
  readonly #regions: number;
  readonly #slots: number;
  /** This isolate's region (the coordinator's: -1, it counts none). */
  readonly #region: number;
  /** Slots of the live table this Worker has used (live or fallen to zero). */
  #used = 0;
  /** Used slots at which the live table is compacted next: half of them, or, when more than
   * half are live, an eighth more than after the last compaction (no compaction per insert). */
  #compactAt = 0;
  /** The window of new connections last counted here (see `rate`). */
  #window = 0;
  /** Times this Worker's table was compacted (tests). */
  compactions = 0;

  /** The coordinator's, for `regions` Workers at a time and `maxConnections` in the process; or a
   * Worker's, from `share`. */
  constructor(init: { regions: number; maxConnections: number } | SharedCountsShare) {
    if ("buffer" in init) {
      this.#buffer = init.buffer;
      this.#seeds = Uint32Array.from(init.seeds);
      this.#regions = init.regions;
      this.#slots = init.slots;
      this.#region = init.region;
    } else {
      let slots = 1024;
      // Addresses, and users' and guests' rates, are at most three keys per connection.
      while (slots < 8 * init.maxConnections && slots < MAX_SLOTS) slots *= 2;
      this.#slots = slots;
      this.#regions = init.regions;
      this.#buffer = new SharedArrayBuffer(4 * this.#regionSize() * init.regions);
      this.#seeds = crypto.getRandomValues(new Uint32Array(2));
      this.#region = -1;
    }
    this.#counts = new Int32Array(this.#buffer);
  }

  /** What the Worker counting in `region` needs. */
  share(region: number): SharedCountsShare {
    return { buffer: this.#buffer, seeds: [...this.#seeds], regions: this.#regions, slots: this.#slots, region };
  }

  /** Forgets what the Worker of `region` counted (it died, and its connections with it). */
  clear(region: number): void {
    const base = region * this.#regionSize();
    this.#counts.fill(0, base, base + this.#regionSize());
  }

  /** Connections open in every Worker. */
  get total(): number {
    let sum = 0;
    for (let r = 0; r < this.#regions; r++) sum += Atomics.load(this.#counts, r * this.#regionSize());
    return sum;
  }

  /** `key`'s connections open in every Worker. */
  count(key: string): number {
    const [hi, lo] = this.#hash(key);
    let sum = 0;
    for (let r = 0; r < this.#regions; r++) {
      const slot = this.#find(this.#live(r), hi, lo);
      if (slot >= 0) sum += Atomics.load(this.#counts, slot + COUNT);
    }
    return sum;
  }

  /** Takes a slot for a connection of `key`, or says which cap refuses it (`maxPerAddress` 0: none). */
  take(key: string, maxConnections: number, maxPerAddress: number): "full" | "address" | undefined {
    if (this.total >= maxConnections) return "full";
    if (maxPerAddress > 0 && this.count(key) >= maxPerAddress) return "address";
    this.#add(key, 1);
    return undefined;
  }

  /** Gives back a slot `take` gave for `key`. */
  give(key: string): void {
    this.#add(key, -1);
  }

  #regionSize(): number {
    return HEADER + 2 * SLOT * this.#slots;
  }

  /** Where region `r`'s live table starts. */
  #live(r: number): number {
    const base = r * this.#regionSize();
    return base + HEADER + Atomics.load(this.#counts, base + 1) * SLOT * this.#slots;
  }

  /** The slot of (hi, lo) in the table at `table`, or -1 (probing stops at an empty slot). */
  #find(table: number, hi: number, lo: number): number {
    const mask = this.#slots - 1;
    for (let i = 0, at = lo & mask; i < this.#slots; i++, at = (at + 1) & mask) {
      const slot = table + at * SLOT;
      const h = Atomics.load(this.#counts, slot);
      const l = Atomics.load(this.#counts, slot + 1);
      if (h === hi && l === lo) return slot;
      if (h === 0 && l === 0) return -1;
    }
    return -1;
  }

  /** Counts a new connection of `key` against `burst` per `windowMs` in every Worker (a sliding
   * window: this window's count and the last one's, weighted by how much of it still overlaps),
   * or refuses it; `undefined` where this Worker's table has no room for `key` (then the caller
   * counts it alone). */
  rate(key: string, burst: number, windowMs: number, now: number): boolean | undefined {
    const window = Math.floor(now / windowMs) | 0;
    this.#window = window;
    const [hi, lo] = this.#hash(key);
    const { current, previous } = this.#windows(hi, lo, window);
    if (current + previous * (1 - (now % windowMs) / windowMs) >= burst) return false;
    const slot = this.#slot(hi, lo);
    if (slot < 0) return undefined;
    const age = (window - Atomics.load(this.#counts, slot + WINDOW)) | 0;
    if (age !== 0) {
      Atomics.store(this.#counts, slot + PREVIOUS, age === 1 ? Atomics.load(this.#counts, slot + CURRENT) : 0);
      Atomics.store(this.#counts, slot + CURRENT, 0);
      Atomics.store(this.#counts, slot + WINDOW, window);
    }
    Atomics.add(this.#counts, slot + CURRENT, 1);
    return true;
  }

  /** Milliseconds until `rate` would let one more of `key`'s in (0: now). */
  rateWaitMs(key: string, burst: number, windowMs: number, now: number): number {
    const window = Math.floor(now / windowMs) | 0;
    const [hi, lo] = this.#hash(key);
    const { current, previous } = this.#windows(hi, lo, window);
    const into = (now % windowMs) / windowMs;
    if (current + previous * (1 - into) < burst) return 0;
    // The last window's share shrinks as this one goes on; past it, this window's does.
    if (current < burst && previous > 0) return Math.ceil((1 - (burst - current) / previous - into) * windowMs) + 1;
    return Math.ceil((1 - into + 1 - burst / Math.max(current, 1)) * windowMs) + 1;
  }

  /** `key`'s new connections in every Worker: in `window`, and in the one before. */
  #windows(hi: number, lo: number, window: number): { current: number; previous: number } {
    let current = 0;
    let previous = 0;
    for (let r = 0; r < this.#regions; r++) {
      const slot = this.#find(this.#live(r), hi, lo);
      if (slot < 0) continue;
      const age = (window - Atomics.load(this.#counts, slot + WINDOW)) | 0;
      if (age === 0) {
        current += Atomics.load(this.#counts, slot + CURRENT);
        previous += Atomics.load(this.#counts, slot + PREVIOUS);
      } else if (age === 1) previous += Atomics.load(this.#counts, slot + CURRENT);
    }
    return { current, previous };
  }

  #add(key: string, n: number): void {
    if (this.#region < 0) throw new Error("the coordinator counts no connections");
    Atomics.add(this.#counts, this.#region * this.#regionSize(), n);
    const [hi, lo] = this.#hash(key);
    // A connection given back whose address has no slot (or none counted in it) was counted on
    // this Worker alone.
    const slot = n < 0 ? this.#find(this.#live(this.#region), hi, lo) : this.#slot(hi, lo);
    if (slot >= 0 && (n > 0 || Atomics.load(this.#counts, slot + COUNT) > 0)) {
      Atomics.add(this.#counts, slot + COUNT, n);
    }
  }

  /** This Worker's slot for (hi, lo), made if it has none; -1 where its table is full of live
   * addresses. */
  #slot(hi: number, lo: number): number {
    if (this.#region < 0) throw new Error("the coordinator counts no connections");
    const found = this.#find(this.#live(this.#region), hi, lo);
    if (found >= 0) return found;
    if (this.#used >= Math.max(this.#slots / 2, this.#compactAt)) this.#compact();
    if (this.#used >= (this.#slots * 3) / 4) return -1;
    this.#used++;
    return this.#insert(this.#live(this.#region), [hi, lo, 0, 0, 0, 0]);
  }

  /** Writes a new slot (its fields, hash last) into the table at `table`; the key is known to be
   * absent. Returns where. */
  #insert(table: number, fields: number[]): number {
    const mask = this.#slots - 1;
    for (let at = (fields[1] as number) & mask;; at = (at + 1) & mask) {
      const slot = table + at * SLOT;
      if (Atomics.load(this.#counts, slot) !== 0 || Atomics.load(this.#counts, slot + 1) !== 0) continue;
      for (let f = SLOT - 1; f >= 0; f--) Atomics.store(this.#counts, slot + f, fields[f] as number);
      return slot;
    }
  }

  /** Copies the live addresses into the other table and makes it the live one. */
  #compact(): void {
    const base = this.#region * this.#regionSize();
    const which = Atomics.load(this.#counts, base + 1);
    const from = this.#live(this.#region);
    const to = base + HEADER + (1 - which) * SLOT * this.#slots;
    this.#counts.fill(0, to, to + SLOT * this.#slots);
    let used = 0;
    for (let slot = from; slot < from + SLOT * this.#slots; slot += SLOT) {
      const fields = Array.from({ length: SLOT }, (_, f) => Atomics.load(this.#counts, slot + f));
      // Kept: an address with connections open, or with new ones in this window or the last.
      const recent = ((this.#window - (fields[WINDOW] as number)) | 0) <= 1 &&
        (fields[CURRENT] as number) + (fields[PREVIOUS] as number) > 0;
      if ((fields[COUNT] as number) <= 0 && !recent) continue;
      this.#insert(to, fields);
      used++;
    }
    Atomics.store(this.#counts, base + 1, 1 - which);
    this.#used = used;
    this.#compactAt = used + this.#slots / 8;
    this.compactions++;
  }

  /** Two 32-bit hashes of `key` from this process's seeds (FNV-1a, mixed by murmur3's finalizer);
   * never both 0, which marks an empty slot. */
  #hash(key: string): [number, number] {
    const one = (seed: number) => {
      let h = (2166136261 ^ seed) >>> 0;
      for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619);
      h ^= h >>> 16;
      h = Math.imul(h, 0x85ebca6b);
      h ^= h >>> 13;
      h = Math.imul(h, 0xc2b2ae35);
      return h ^ (h >>> 16);
    };
    return [one(this.#seeds[0] as number), one(this.#seeds[1] as number) | 1];
  }
}
