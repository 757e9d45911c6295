/**
 * Counters, gauges and histograms with a Prometheus text renderer. The hub and engines count
 * into one `Metrics`; `/metrics` renders it. Increments are plain field updates (hot path).
 */

type Labels = Record<string, string>;

function labelText(labels: Labels | undefined): string {
  if (!labels) return "";
  const parts = Object.entries(labels).map(([k, v]) =>
    `${k}="${v.replace(/[\\"\n]/g, (c) => c === "\n" ? "\\n" : `\\${c}`)}"`
  );
  return parts.length ? `{${parts.join(",")}}` : "";
}

interface Metric {
  render(): string;
}

export class Counter implements Metric {
  value = 0;
  readonly #byLabel = new Map<string, number>();
  constructor(readonly name: string, readonly help: string, readonly label?: string) {}

  inc(n = 1): void {
    this.value += n;
  }

  /** Increments the series with this counter's label set to `value`. */
  incLabel(value: string, n = 1): void {
    this.#byLabel.set(value, (this.#byLabel.get(value) ?? 0) + n);
  }

  get(labelValue: string): number {
    return this.#byLabel.get(labelValue) ?? 0;
  }

  render(): string {
    const head = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} counter\n`;
    if (!this.label) return `${head}${this.name} ${this.value}\n`;
    const label = this.label;
    const rows = [...this.#byLabel].map(([v, n]) => `${this.name}${labelText({ [label]: v })} ${n}\n`);
    return head + rows.join("");
  }
}

export class Gauge implements Metric {
  constructor(readonly name: string, readonly help: string, readonly read: () => number) {}
  render(): string {
    return `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} gauge\n${this.name} ${this.read()}\n`;
  }
}

export class Histogram implements Metric {
  readonly #counts: number[];
  #sum = 0;
  #count = 0;
  constructor(readonly name: string, readonly help: string, readonly buckets: number[]) {
    this.#counts = buckets.map(() => 0);
  }

  observe(value: number): void {
    this.#sum += value;
    this.#count += 1;
    for (let i = 0; i < this.buckets.length; i++) {
      if (value <= (this.buckets[i] ?? Infinity)) this.#counts[i] = (this.#counts[i] ?? 0) + 1;
    }
  }

  get count(): number {
    return this.#count;
  }

  render(): string {
    const rows = this.buckets.map((le, i) => `${this.name}_bucket{le="${le}"} ${this.#counts[i]}\n`);
    return `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} histogram\n${rows.join("")}` +
      `${this.name}_bucket{le="+Inf"} ${this.#count}\n${this.name}_sum ${this.#sum}\n${this.name}_count ${this.#count}\n`;
  }
}

/** Every metric roomcast exposes. Gauges are registered by whoever owns the state they read. */
export class Metrics {
  readonly connectionsOpened = new Counter("roomcast_connections_opened_total", "Connections accepted");
  readonly messagesIn = new Counter("roomcast_messages_in_total", "Messages published (stored)");
  readonly framesIn = new Counter("roomcast_frames_in_total", "Frames received from clients");
  readonly deliveries = new Counter("roomcast_deliveries_total", "Frames sent to connections");
  readonly errors = new Counter("roomcast_errors_total", "Errors answered, by code", "code");
  readonly closes = new Counter("roomcast_closes_total", "Connections closed by the server, by reason", "reason");
  readonly refused = new Counter(
    "roomcast_connections_refused_total",
    "WebSocket and SSE connections refused before they opened, by reason (full, address, rate)",
    "reason",
  );
  readonly unexpected = new Counter(
    "roomcast_unexpected_errors_total",
    "Errors that no code path handled (bugs): logged, and the process went on",
  );
  readonly backplaneTrouble = new Counter(
    "roomcast_backplane_trouble_total",
    "Times the backplane said events between isolates may have been lost (rooms then caught up from the store)",
  );
  readonly acceptErrors = new Counter(
    "roomcast_accept_errors_total",
    "Times the server stopped accepting connections (out of file descriptors) and listened again",
  );
  readonly dropped = new Counter(
    "roomcast_dropped_total",
    "Frames not sent because their connection was closed for it (it recovers on rejoin), by reason",
    "reason",
  );
  readonly storeAppends = new Counter("roomcast_store_appends_total", "Messages appended to the store");
  readonly storeAppendSeconds = new Histogram(
    "roomcast_store_append_seconds",
    "Latency of one store append batch (its _count is the number of batches)",
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
  );
  readonly storeLost = new Counter(
    "roomcast_store_lost_total",
    "Messages delivered but not stored (local sequencer: a storage failure or another writer); recoveries across them answer recovered:false",
  );
  readonly #extra: Metric[] = [];

  gauge(name: string, help: string, read: () => number): void {
    this.#extra.push(new Gauge(name, help, read));
  }

  render(): string {
    const all: Metric[] = [
      ...this.#extra,
      this.connectionsOpened,
      this.messagesIn,
      this.framesIn,
      this.deliveries,
      this.errors,
      this.closes,
      this.refused,
      this.acceptErrors,
      this.backplaneTrouble,
      this.unexpected,
      this.dropped,
      this.storeAppends,
      this.storeAppendSeconds,
      this.storeLost,
    ];
    return all.map((m) => m.render()).join("");
  }
}
