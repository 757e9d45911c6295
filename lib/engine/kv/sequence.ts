/**
 * One room as the local sequencer (local_sequencer.ts) numbers it: its epoch and offsets, the reservation
 * its stored meta holds above every offset handed out, the appends waiting for a reservation, and
 * the counts behind `flush` (appends numbered, and of those, filed or given up).
 */
import { highWater, type Meta, number, type Pending } from "./format.ts";
import type { CachedMeta } from "./history.ts";
import { type Holes, keptHoles, withHole } from "../store.ts";

/** Offsets a local sequencer reserves beyond what it has handed out, at least and at most: twice
 * what the room used since its last reservation. A crash skips at most this many offsets more than
 * it lost (and the history window, counted in offsets, shows that many fewer messages). */
const RESERVE_MIN = 64;
const RESERVE_MAX = 4096;

export class Sequence {
  loaded = false;
  loading: Promise<void> | undefined = undefined;
  epoch = "";
  /** The last offset handed out. */
  assigned = 0;
  /** The last offset stored (by this process's commits, or as the meta said when loaded). */
  durable = 0;
  /** Offsets up to here are reserved in the stored meta: handing them out needs no commit. */
  reserved = 0;
  /** The size of the last reservation, and the offsets handed out since it was made. */
  step = RESERVE_MIN;
  sinceReserved = 0;
  versionstamp: string | null = null;
  /** Offsets handed out that will never be stored (see `Holes`). */
  holes: Holes = [];
  /** Appends waiting for the load or for a larger reservation, in call order. */
  waiting: Pending[] = [];
  /** For `flush`: appends numbered, and of those, filed under the room's keys or given up. */
  numbered = 0;
  settled = 0;
  #flushes: { target: number; resolve(): void }[] = [];
  /** When it was last appended to or asked for (clock ms). */
  used = 0;

  /** Whether this process has stored a reservation in the room's meta (so has a meta to give
   * back); a room only read has not. */
  reservedHere = false;

  /** `firstEpoch`: the room's epoch while it has no meta. */
  constructor(readonly room: string, readonly firstEpoch: string) {}

  /** An append can have its offset now: the room is loaded, nothing waits before it, and offsets
   * are reserved. */
  get numberable(): boolean {
    return this.loaded && this.waiting.length === 0 && this.assigned < this.reserved;
  }

  /** Hands out the next offset to `p`. If the message can't be numbered (its JSON can't be made),
   * this throws and nothing changes: no offset is used up. */
  number(p: Pending): void {
    number(p, this.epoch, this.assigned + 1);
    this.assigned += 1;
    this.numbered += 1;
    this.sinceReserved += 1;
  }

  /** Takes the stored meta as this room's state. In the same epoch nothing handed out is handed
   * out again; nothing above the high-water mark is reserved until a commit says so. */
  adopt({ value, versionstamp }: CachedMeta): void {
    const high = value ? highWater(value) : 0;
    if (this.loaded && (value === null || value.epoch === this.epoch)) {
      this.assigned = Math.max(this.assigned, high);
      this.durable = value?.offset ?? this.durable;
      for (let i = 0; i < (value?.holes?.length ?? 0); i += 2) {
        this.holes = withHole(this.holes, value?.holes?.[i] as number, value?.holes?.[i + 1] as number);
      }
    } else {
      this.epoch = value?.epoch ?? this.firstEpoch;
      this.assigned = high;
      this.durable = value?.offset ?? 0;
      this.holes = value?.holes ?? [];
    }
    this.reserved = this.assigned;
    this.versionstamp = versionstamp;
    this.loaded = true;
  }

  /** These offsets were handed out and will never be stored. */
  lost(offsets: number[]): void {
    for (const offset of offsets) this.holes = withHole(this.holes, offset, offset);
  }

  /** The meta to write when the reservation runs low (or was never stored), else `undefined`. */
  reservation(historyLimit: number): Required<Meta> | undefined {
    const needed = this.assigned + this.waiting.length;
    if (this.reserved - needed >= this.step / 2 && this.versionstamp !== null) return undefined;
    const step = Math.min(RESERVE_MAX, Math.max(RESERVE_MIN, 2 * (this.sinceReserved + this.waiting.length)));
    return { ...this.#meta(historyLimit), reserved: needed + step };
  }

  /** The meta as this room stands: what is stored, and the holes that still matter. */
  #meta(historyLimit: number): Omit<Required<Meta>, "reserved"> {
    this.holes = keptHoles(this.holes, this.assigned, historyLimit);
    return { epoch: this.epoch, offset: this.durable, holes: [...this.holes] };
  }

  /** A commit stored `meta` (from `reservation`) as of `versionstamp`. */
  reservationCommitted(meta: Required<Meta>, versionstamp: string | null): void {
    this.reservedHere = true;
    this.versionstamp = versionstamp;
    this.step = meta.reserved - this.reserved;
    this.sinceReserved = 0;
    this.reserved = meta.reserved;
  }

  /** The meta that gives the reservation back: what is stored, nothing above what was handed out. */
  released(historyLimit: number): Required<Meta> {
    return { ...this.#meta(historyLimit), reserved: this.assigned };
  }

  /** Nothing waits for an offset and every append is filed or given up. */
  get quiet(): boolean {
    return this.waiting.length === 0 && this.settled === this.numbered;
  }

  /** `n` more appends are filed or given up: the flushes they complete resolve. True while other
   * flushes still wait. */
  settle(n: number): boolean {
    this.settled += n;
    if (this.#flushes.length === 0) return false;
    const ready = this.#flushes.filter((f) => f.target <= this.settled);
    this.#flushes = this.#flushes.filter((f) => f.target > this.settled);
    for (const f of ready) f.resolve();
    return this.#flushes.length > 0;
  }

  /** Resolves once every append made so far is filed or given up; `undefined` if that is so now. */
  flushed(): Promise<void> | undefined {
    const target = this.numbered + this.waiting.length;
    if (this.settled >= target) return undefined;
    return new Promise((resolve) => this.#flushes.push({ target, resolve }));
  }
}
