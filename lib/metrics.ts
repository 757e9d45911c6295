/**
 * Counters, gauges and histograms with a Prometheus text renderer. The hub and engines count
 * into one `Metrics`; `/metrics` renders it. Increments are plain field updates (hot path).
 * With several Workers each isolate has its own; `/metrics` shows them merged (`mergeMetricsTexts`).
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
  readonly transportConnections = new Counter(
    "roomcast_transport_connections_total",
    "Connections accepted, by transport (ws, batch, raw, sse, socketio, pusher, stomp, wamp)",
    "transport",
  );
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
  readonly webhooks = new Counter(
    "roomcast_webhooks_total",
    "Webhook events: sent (the receiver answered 2xx), retried, dropped (kept past ROOMCAST_WEBHOOK_KEEP or the queue's cap)",
    "outcome",
  );
  readonly #extra: Metric[] = [];

  /** A metric rendered by its owner (labelled series the classes here do not model). */
  register(metric: Metric): void {
    this.#extra.push(metric);
  }

  gauge(name: string, help: string, read: () => number): void {
    this.#extra.push(new Gauge(name, help, read));
  }

  render(): string {
    const all: Metric[] = [
      ...this.#extra,
      this.connectionsOpened,
      this.transportConnections,
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
      this.webhooks,
    ];
    return all.map((m) => m.render()).join("");
  }
}

/** Process memory, so that an operator sees overload coming (the hub's own figures are in Metrics). */
function processMetrics(): string {
  const { rss, heapUsed, heapTotal, external } = Deno.memoryUsage();
  const gauge = (name: string, help: string, value: number) =>
    `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${name} ${value}\n`;
  return gauge("roomcast_process_resident_bytes", "Resident memory of the process", rss) +
    gauge("roomcast_process_heap_used_bytes", "JavaScript heap in use (every isolate's, with Workers)", heapUsed) +
    gauge("roomcast_process_heap_total_bytes", "JavaScript heap reserved, used or not", heapTotal) +
    gauge("roomcast_process_external_bytes", "Memory of JavaScript objects held outside the heap", external);
}

/** What this isolate's `/metrics` shows: its metrics and the process's memory. */
export function metricsText(metrics: Metrics): string {
  return metrics.render() + processMetrics();
}

/** Series that every isolate of a process reports alike: merged, they are the largest, not the sum
 * (the connection cap is the process's: the Workers count against it together). */
const SAME_IN_EVERY_ISOLATE = new Set(["roomcast_process_resident_bytes", "roomcast_connections_max"]);

/**
 * Merges the Prometheus texts of several isolates (`metricsText`) into one: each series (name and
 * labels) is the sum of its values, except those every isolate reports alike (the process's
 * resident memory, the connection cap), which are the largest. Families keep their first HELP and TYPE and the order
 * in which they first appear; comment lines are kept once.
 */
export function mergeMetricsTexts(texts: string[]): string {
  const families = new Map<string, { head: string[]; series: Map<string, number> }>();
  const comments = new Set<string>();
  const family = (name: string) => {
    let f = families.get(name);
    if (!f) families.set(name, f = { head: [], series: new Map() });
    return f;
  };
  for (const text of texts) {
    for (const line of text.split("\n")) {
      if (line === "") continue;
      const meta = /^# (HELP|TYPE) (\S+) /.exec(line);
      if (meta) {
        const f = family(meta[2] as string);
        if (!f.head.some((h) => h.startsWith(`# ${meta[1]} `))) f.head.push(line);
        continue;
      }
      if (line.startsWith("#")) {
        comments.add(line);
        continue;
      }
      const sample = /^([a-zA-Z_:][\w:]*)(\{.*\})? (\S+)$/.exec(line);
      if (!sample) continue;
      const [, name, labels = "", raw] = sample as unknown as [string, string, string | undefined, string];
      // A histogram's _bucket/_sum/_count belong to its family.
      const base = name.replace(/_(bucket|sum|count)$/, "");
      const f = families.has(base) ? family(base) : family(name);
      const key = name + labels;
      const value = Number(raw);
      const before = f.series.get(key);
      f.series.set(
        key,
        before === undefined ? value : SAME_IN_EVERY_ISOLATE.has(name) ? Math.max(before, value) : before + value,
      );
    }
  }
  let out = [...comments].map((c) => `${c}\n`).join("");
  for (const { head, series } of families.values()) {
    out += head.map((h) => `${h}\n`).join("");
    for (const [key, value] of series) out += `${key} ${value}\n`;
  }
  return out;
}

/** A source of a metrics text (a Worker, asked over RPC). */
export interface MetricsSource {
  name: string;
  text(): Promise<string>;
}

/**
 * `own` and every source's text, merged (`mergeMetricsTexts`). A source that fails, or does not
 * answer within `timeoutMs`, is left out and named in a comment line: one stuck isolate does not
 * hold `/metrics` up.
 */
export async function gatherMetricsTexts(own: string, sources: MetricsSource[], timeoutMs: number): Promise<string> {
  const texts = await Promise.all(sources.map(async ({ name, text }) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<string>((resolve) =>
      timer = setTimeout(() => resolve(`# roomcast: worker ${name} did not answer\n`), timeoutMs)
    );
    const answer = text().catch((error) =>
      `# roomcast: worker ${name} did not answer (${String(error).replace(/\n/g, " ")})\n`
    );
    return await Promise.race([answer, late]).finally(() => clearTimeout(timer));
  }));
  return mergeMetricsTexts([own, ...texts]);
}
