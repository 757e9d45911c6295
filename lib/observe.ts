/**
 * What the dashboard (routes/admin.ts, docs/ADMIN.md) shows of one isolate, and the merge of every
 * isolate's reports into the service's picture. Each isolate keeps, at next to no cost, one point per
 * second for 15 minutes (messages in, deliveries out, a delivery-latency histogram); only while a
 * dashboard watches (told over the backplane) does it also note joins, leaves and publishes (the
 * tail, sampled) and each room's publishes, and report all of it every second. No I/O here.
 */
import type { Clock } from "./clock.ts";
import type { Metrics } from "./metrics.ts";

/** Latency buckets (ms): bucket i holds values up to `BOUNDS[i]`, the last one anything above. */
const BOUNDS: number[] = [];
for (let b = 0.05; b < 60_000; b *= Math.SQRT2) BOUNDS.push(Number(b.toPrecision(3)));
const BUCKETS = BOUNDS.length + 1;

/** A second of one isolate, or of the service: `lat` is the latency histogram, sparse
 * (`[bucket, count, bucket, count, …]`). */
export interface Point {
  t: number;
  in: number;
  out: number;
  lat: number[];
}

export interface TailEntry {
  t: number;
  kind: "join" | "leave" | "publish";
  room: string;
  user: string;
  node: string;
  transport: string;
}

/** One isolate's report, every second while a dashboard watches. */
export interface NodeReport {
  node: string;
  process: string;
  startedAt: number;
  connections: number;
  transports: Record<string, number>;
  rooms: number;
  point: Point;
  tail: TailEntry[];
  tailDropped: number;
  /** Rooms published to in that second: `[room, publishes, newest offset]`. */
  activity: [string, number, number][];
}

/** What the isolate's own figures are, read once a second. */
export interface NodeFigures {
  connections: number;
  transports: Record<string, number>;
  rooms: number;
}

/** Seconds of points kept. */
export const SERIES_SECONDS = 900;
/** How long a dashboard's watch lasts unless renewed (it renews every few seconds). */
export const WATCH_MS = 10_000;
/** Tail entries an isolate reports per second (the rest are counted). */
const TAIL_PER_SECOND = 50;
/** Rooms an isolate reports activity for per second. */
const ACTIVITY_PER_SECOND = 2000;

export interface ObserverOptions {
  node: string;
  process: string;
  clock: Clock;
  metrics: Metrics;
}

/** One isolate's side. */
export class Observer {
  readonly node: string;
  readonly process: string;
  readonly startedAt: number;
  readonly #clock: Clock;
  readonly #metrics: Metrics;
  readonly #ring: Point[] = [];
  #hist = new Array<number>(BUCKETS).fill(0);
  #seen = 0;
  #lastIn = 0;
  #lastOut = 0;
  #watchedUntil = -Infinity;
  #tail: TailEntry[] = [];
  #tailDropped = 0;
  #activity = new Map<string, [number, number]>();

  constructor(options: ObserverOptions) {
    this.node = options.node;
    this.process = options.process;
    this.#clock = options.clock;
    this.#metrics = options.metrics;
    this.startedAt = options.clock.now();
    this.#lastIn = options.metrics.messagesIn.value;
    this.#lastOut = options.metrics.deliveries.value;
  }

  /** Whether a dashboard watches (joins, leaves and publishes are noted). */
  get watched(): boolean {
    return this.#clock.now() < this.#watchedUntil;
  }

  /** A dashboard watches for the next WATCH_MS; true when none did before. */
  watch(): boolean {
    const now = this.#clock.now();
    const fresh = now >= this.#watchedUntil;
    this.#watchedUntil = now + WATCH_MS;
    return fresh;
  }

  /** A message reached this isolate's room `ms` after it was published. */
  latency(ms: number): void {
    this.#hist[bucketOf(ms)]!++;
    this.#seen++;
  }

  /** A join, leave or publish; noted only while a dashboard watches. */
  note(kind: TailEntry["kind"], room: string, user: string, transport: string): void {
    if (!this.watched) return;
    if (this.#tail.length >= TAIL_PER_SECOND) {
      this.#tailDropped++;
      return;
    }
    this.#tail.push({ t: this.#clock.now(), kind, room, user, node: this.node, transport });
  }

  /** A publish stored at `offset` in `room`; counted only while a dashboard watches. */
  published(room: string, offset: number): void {
    if (!this.watched) return;
    const seen = this.#activity.get(room);
    if (seen) {
      seen[0]++;
      if (offset > seen[1]) seen[1] = offset;
    } else if (this.#activity.size < ACTIVITY_PER_SECOND) this.#activity.set(room, [1, offset]);
  }

  /** Closes the second that ended at `t + 1000` into the series; while watched, the report to send. */
  tick(t: number, figures: () => NodeFigures): NodeReport | undefined {
    const messagesIn = this.#metrics.messagesIn.value;
    const deliveries = this.#metrics.deliveries.value;
    const point: Point = {
      t,
      in: messagesIn - this.#lastIn,
      out: deliveries - this.#lastOut,
      lat: this.#seen ? sparse(this.#hist) : [],
    };
    this.#lastIn = messagesIn;
    this.#lastOut = deliveries;
    if (this.#seen) this.#hist.fill(0);
    this.#seen = 0;
    this.#ring.push(point);
    if (this.#ring.length > SERIES_SECONDS) this.#ring.shift();
    const tail = this.#tail;
    const tailDropped = this.#tailDropped;
    const activity = [...this.#activity].map(([room, [n, head]]) => [room, n, head] as [string, number, number]);
    this.#tail = [];
    this.#tailDropped = 0;
    this.#activity.clear();
    if (!this.watched) return undefined;
    return {
      node: this.node,
      process: this.process,
      startedAt: this.startedAt,
      ...figures(),
      point,
      tail,
      tailDropped,
      activity,
    };
  }

  /** The last 15 minutes of this isolate. */
  series(): Point[] {
    return [...this.#ring];
  }
}

export function bucketOf(ms: number): number {
  let lo = 0;
  let hi = BOUNDS.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ms <= BOUNDS[mid]!) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

function sparse(hist: number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < hist.length; i++) if (hist[i]) out.push(i, hist[i]!);
  return out;
}

/** The `q` quantile (0–1) of a sparse histogram, in ms (a bucket's upper bound; the last bucket's
 * lower one), or null when it is empty. */
export function quantile(lat: number[], q: number): number | null {
  let total = 0;
  for (let i = 1; i < lat.length; i += 2) total += lat[i]!;
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (let i = 0; i < lat.length; i += 2) {
    seen += lat[i + 1]!;
    if (seen >= rank) return BOUNDS[lat[i]!] ?? BOUNDS[BOUNDS.length - 1]!;
  }
  return BOUNDS[BOUNDS.length - 1]!;
}

/** Two sparse histograms added. */
export function addLatency(a: number[], b: number[]): number[] {
  if (a.length === 0) return b;
  if (b.length === 0) return a;
  const sum = new Map<number, number>();
  for (const lat of [a, b]) {
    for (let i = 0; i < lat.length; i += 2) sum.set(lat[i]!, (sum.get(lat[i]!) ?? 0) + lat[i + 1]!);
  }
  return [...sum].sort((x, y) => x[0] - y[0]).flat();
}

/** A second as the dashboard plots it. */
export interface PlotPoint {
  t: number;
  in: number;
  out: number;
  p50: number | null;
  p99: number | null;
}

/** Node reports more than this old are no longer shown. */
export const NODE_STALE_MS = 5000;
/** How long a room's newest offset heard in a report stands for its depth. */
const DEPTH_HEARD_MS = 15_000;
/** Seconds over which a room's rate is averaged. */
const RATE_SECONDS = 10;

/** The service as the isolate serving a dashboard hears it: every isolate's reports merged. */
export class ServiceView {
  readonly #clock: Clock;
  readonly #nodes = new Map<string, { report: NodeReport; at: number }>();
  /** Per second: the points merged so far, and which isolates they came from. */
  readonly #series = new Map<number, { point: Point; from: Set<string> }>();
  /** Per room: publishes per second (last RATE_SECONDS) and the newest offset seen. */
  readonly #rooms = new Map<string, { counts: Map<number, number>; head: number; t: number; at: number }>();
  #tail: TailEntry[] = [];
  #tailDropped = 0;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** An isolate's last 15 minutes (sent once when it starts being watched). */
  history(node: string, points: Point[]): void {
    for (const point of points) this.#merge(node, point);
  }

  report(report: NodeReport): void {
    const now = this.#clock.now();
    this.#nodes.set(report.node, { report, at: now });
    this.#merge(report.node, report.point);
    for (const [room, n, head] of report.activity) {
      let entry = this.#rooms.get(room);
      if (!entry) this.#rooms.set(room, entry = { counts: new Map(), head, t: report.point.t, at: now });
      entry.counts.set(report.point.t, (entry.counts.get(report.point.t) ?? 0) + n);
      // The newest second's head wins (a reset starts a room's offsets again).
      if (report.point.t >= entry.t) {
        entry.head = report.point.t > entry.t ? head : Math.max(head, entry.head);
        entry.t = report.point.t;
      }
      entry.at = now;
    }
    for (const entry of report.tail) {
      if (this.#tail.length < TAIL_PER_SECOND) this.#tail.push(entry);
      else this.#tailDropped++;
    }
    this.#tailDropped += report.tailDropped;
    if (this.#series.size > SERIES_SECONDS + 60) this.#prune(now);
  }

  #merge(node: string, point: Point): void {
    const seen = this.#series.get(point.t);
    if (!seen) {
      this.#series.set(point.t, { point: { ...point }, from: new Set([node]) });
      return;
    }
    if (seen.from.has(node)) return;
    seen.from.add(node);
    seen.point.in += point.in;
    seen.point.out += point.out;
    seen.point.lat = addLatency(seen.point.lat, point.lat);
  }

  #prune(now: number): void {
    const oldest = now - (SERIES_SECONDS + 1) * 1000;
    for (const t of this.#series.keys()) if (t < oldest) this.#series.delete(t);
    for (const [room, entry] of this.#rooms) if (now - entry.at > 10 * 60_000) this.#rooms.delete(room);
  }

  /** The isolates heard from lately. */
  nodes(): (Omit<NodeReport, "point" | "tail" | "tailDropped" | "activity"> & { uptimeS: number; ageMs: number })[] {
    const now = this.#clock.now();
    const out = [];
    for (const [node, { report, at }] of this.#nodes) {
      if (now - at > NODE_STALE_MS) {
        if (now - at > 60_000) this.#nodes.delete(node);
        continue;
      }
      const { point: _p, tail: _t, tailDropped: _d, activity: _a, ...figures } = report;
      out.push({ ...figures, uptimeS: Math.round((now - report.startedAt) / 1000), ageMs: now - at });
    }
    return out.sort((a, b) => a.node < b.node ? -1 : 1);
  }

  /** The last 15 minutes, oldest first. */
  series(): PlotPoint[] {
    const oldest = this.#clock.now() - SERIES_SECONDS * 1000;
    return [...this.#series.entries()]
      .filter(([t]) => t >= oldest)
      .sort((a, b) => a[0] - b[0])
      .map(([, { point }]) => plotted(point));
  }

  /** The merged point of second `t`. */
  point(t: number): PlotPoint {
    const seen = this.#series.get(t);
    return seen ? plotted(seen.point) : { t, in: 0, out: 0, p50: null, p99: null };
  }

  /** The tail heard since the last call, and how many entries were left out. */
  takeTail(): { tail: TailEntry[]; tailDropped: number } {
    const taken = { tail: this.#tail, tailDropped: this.#tailDropped };
    this.#tail = [];
    this.#tailDropped = 0;
    return taken;
  }

  /** A room's publishes per second over the last 10 s, and its newest offset where heard within
   * DEPTH_HEARD_MS (else null: the store knows). */
  room(room: string): { rate: number | null; depth: number | null } {
    const entry = this.#rooms.get(room);
    if (!entry) return { rate: null, depth: null };
    const depth = this.#clock.now() - entry.at <= DEPTH_HEARD_MS ? entry.head : null;
    const since = this.#clock.now() - (RATE_SECONDS + 1) * 1000;
    let n = 0;
    for (const [t, count] of entry.counts) {
      if (t >= since) n += count;
      else entry.counts.delete(t);
    }
    return { rate: n / RATE_SECONDS, depth };
  }
}

function plotted(point: Point): PlotPoint {
  return { t: point.t, in: point.in, out: point.out, p50: quantile(point.lat, 0.5), p99: quantile(point.lat, 0.99) };
}
