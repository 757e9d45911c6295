/**
 * The load generator: runs one scenario against one server and prints its figures as one JSON
 * line. It runs in its own process (bench/run.ts starts it), talks to 127.0.0.1 only, and every
 * loop is bounded in count and in time.
 *
 * Usage: deno run -A bench/loadgen.ts '{"target":"bare","base":"ws://127.0.0.1:9000","scenario":"fanout",...}'
 */
import { type BenchClient, createClient, type Target } from "./clients.ts";
import { cpuMs as processCpuMs, rssKb as processRssKb } from "./proc.ts";

export type Scenario = "fanout" | "maxfanout" | "chat" | "idle" | "storm";

export interface Spec {
  target: Target;
  base: string;
  /** Where there are several servers (roomcast-kv2): clients alternate between them. */
  bases?: string[];
  scenario: Scenario;
  /** Server process id, to read its RSS. */
  pid: number;
  /** Every server process, for CPU time (`pid` if absent). */
  pids?: number[];
  clients: number;
  /** fanout: messages/s from the publisher; chat: messages/s per client. */
  rate: number;
  /** Seconds of publishing. */
  seconds: number;
  /** chat: clients per room. */
  roomSize: number;
  /** maxfanout: messages in flight. */
  inflight: number;
}

export interface Result {
  deliveries: number;
  deliveriesPerSec: number;
  expected: number;
  lost: number;
  p50: number;
  p99: number;
  /** p99 of the deliveries that arrived in each second of the run (diagnostics, not in the table). */
  p99PerSecond: number[];
  max: number;
  rssMb: number;
  kbPerConnection: number;
  connectsPerSec: number;
  reconnects: number;
  /** fan-out: the publisher's reconnects. It too is closed with 4008 when it doesn't read its acks
   * (it shares this overloaded process with the receivers); what it had in flight then is never
   * stored, and this client doesn't resend it (static/roomcast.js rejects those publishes). */
  publisherReconnects: number;
  /** roomcast only, from its /metrics: messages appended to Deno KV, and in how many commits. */
  kvAppends: number;
  kvBatches: number;
  kvAppendMs: number;
  published: number;
  seconds: number;
  /** Server CPU time (user + system, every process of the target) while the load ran, and per
   * delivery: what moves least on a shared box. */
  cpuMs: number;
  cpuUsPerDelivery: number;
  /** storm: server CPU, and the load generator's own, per connection made. */
  cpuUsPerConnect: number;
  clientCpuUsPerConnect: number;
}

const SETUP_CONCURRENCY = 100;
const DRAIN_MS = 15_000;

/** Resident memory of the server processes (all of them when clients are spread over several). */
function rssKb(spec: Spec): number {
  return (spec.pids ?? [spec.pid]).reduce((kb, pid) => kb + processRssKb(pid), 0);
}

/** CPU time (ms) of the server processes so far. */
function cpuMs(spec: Spec): number {
  return (spec.pids ?? [spec.pid]).reduce((ms, pid) => ms + processCpuMs(pid), 0);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Opens `n` clients, `SETUP_CONCURRENCY` at a time, and waits for each to be ready. */
async function openClients(spec: Spec, n: number, room: (i: number) => string | undefined): Promise<BenchClient[]> {
  const clients: BenchClient[] = [];
  // With several bases, each room's clients take turns over them, so that every room spans them all.
  const turns = new Map<string | undefined, number>();
  for (let i = 0; i < n; i += SETUP_CONCURRENCY) {
    const wave = [];
    for (let j = i; j < Math.min(n, i + SETUP_CONCURRENCY); j++) {
      const name = room(j);
      const turn = turns.get(name) ?? 0;
      turns.set(name, turn + 1);
      const base = spec.bases ? spec.bases[turn % spec.bases.length] as string : spec.base;
      const client = createClient({ target: spec.target, base, room: name });
      clients.push(client);
      wave.push(client.ready);
    }
    await Promise.race([Promise.all(wave), sleep(30_000).then(() => Promise.reject(new Error("setup timed out")))]);
  }
  return clients;
}

/** Latency samples in ms, kept in a preallocated array, with the second of the run each arrived in. */
class Latencies {
  readonly #samples: Float64Array;
  readonly #seconds: Uint16Array;
  readonly #start = performance.now();
  #n = 0;
  constructor(capacity: number) {
    this.#samples = new Float64Array(capacity);
    this.#seconds = new Uint16Array(capacity);
  }
  add(ms: number): void {
    if (this.#n >= this.#samples.length) return;
    this.#seconds[this.#n] = Math.min(65535, Math.floor((performance.now() - this.#start) / 1000));
    this.#samples[this.#n++] = ms;
  }
  summary(): { p50: number; p99: number; max: number; p99PerSecond: number[] } {
    const p99PerSecond: number[] = [];
    const bySecond = new Map<number, number[]>();
    for (let i = 0; i < this.#n; i++) {
      const second = this.#seconds[i] as number;
      let list = bySecond.get(second);
      if (!list) bySecond.set(second, list = []);
      list.push(this.#samples[i] as number);
    }
    for (const [second, list] of [...bySecond].sort((a, b) => a[0] - b[0])) {
      list.sort((a, b) => a - b);
      p99PerSecond[second] = Math.round((list[Math.floor(0.99 * list.length)] ?? 0) * 10) / 10;
    }
    const sorted = this.#samples.subarray(0, this.#n).sort();
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
    return { p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] ?? 0, p99PerSecond };
  }
}

/** Payloads are `<seq>|<sent at, ms>`: cheap to make and to read back. */
const payload = (seq: number) => `${seq}|${performance.now().toFixed(3)}`;
const sentAt = (text: string) => Number(text.slice(text.indexOf("|") + 1));

/** Waits until `done()` or `ms` pass, checking every 20 ms. */
async function waitFor(done: () => boolean, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  while (!done() && performance.now() < deadline) await sleep(20);
}

/** Waits until `count()` stops changing for `quietMs` (setup chatter such as member events). */
async function settle(count: () => number, quietMs = 300, maxMs = 20_000): Promise<void> {
  const deadline = performance.now() + maxMs;
  let last = -1;
  while (performance.now() < deadline) {
    const now = count();
    if (now === last) return;
    last = now;
    await sleep(quietMs);
  }
}

function base(partial: Partial<Result>): Result {
  return {
    deliveries: 0,
    deliveriesPerSec: 0,
    expected: 0,
    lost: 0,
    p50: 0,
    p99: 0,
    p99PerSecond: [],
    max: 0,
    rssMb: 0,
    kbPerConnection: 0,
    connectsPerSec: 0,
    reconnects: 0,
    publisherReconnects: 0,
    kvAppends: 0,
    kvBatches: 0,
    kvAppendMs: 0,
    published: 0,
    seconds: 0,
    cpuMs: 0,
    cpuUsPerDelivery: 0,
    cpuUsPerConnect: 0,
    clientCpuUsPerConnect: 0,
    ...partial,
  };
}

async function fanout(spec: Spec, paced: boolean): Promise<Result> {
  const frames = { n: 0 };
  const receivers = await openClients(spec, spec.clients, () => "fan");
  const [publisher] = await openClients(spec, 1, () => "fan");
  if (!publisher) throw new Error("no publisher");
  for (const r of receivers) r.onPayload = () => frames.n++;
  await settle(() => frames.n);

  const maxMessages = paced ? Math.ceil(spec.rate * spec.seconds) : 1_000_000;
  const latencies = new Latencies(Math.min(maxMessages * spec.clients, 20_000_000));
  let delivered = 0;
  let sentinel = 0;
  let last = performance.now();
  for (const r of receivers) {
    r.onPayload = (text) => {
      delivered++;
      last = performance.now();
      latencies.add(last - sentAt(text));
    };
  }
  const first = receivers[receivers.length - 1]; // the last to join: in-flight is measured at the slowest
  if (first) {
    first.onPayload = (text) => {
      delivered++;
      sentinel++;
      last = performance.now();
      latencies.add(last - sentAt(text));
    };
  }

  const start = performance.now();
  const cpuBefore = cpuMs(spec);
  const end = start + spec.seconds * 1000;
  let sent = 0;
  while (performance.now() < end && sent < maxMessages) {
    const due = paced ? Math.min(maxMessages, Math.floor(((performance.now() - start) / 1000) * spec.rate) + 1) : sent;
    if (paced) {
      while (sent < due) publisher.publish(payload(++sent));
      await sleep(Math.max(1, Math.floor(500 / spec.rate)));
    } else {
      while (sent - sentinel < spec.inflight && sent < maxMessages) publisher.publish(payload(++sent));
      await sleep(0);
    }
  }
  const sendingEnded = performance.now();
  const expected = sent * spec.clients;
  await waitFor(() => delivered >= expected, paced ? DRAIN_MS : 2000);
  const cpu = cpuMs(spec) - cpuBefore;
  const rss = rssKb(spec);
  const elapsed = paced ? (last - start) / 1000 : (sendingEnded - start) / 1000;
  const reconnects = receivers.reduce((n, r) => n + r.reconnects, 0);
  for (const c of [...receivers, publisher]) c.close();
  return base({
    deliveries: delivered,
    deliveriesPerSec: delivered / elapsed,
    expected,
    lost: paced ? Math.max(0, expected - delivered) : 0,
    ...latencies.summary(),
    rssMb: rss / 1024,
    reconnects,
    publisherReconnects: publisher.reconnects,
    published: sent,
    seconds: elapsed,
    cpuMs: cpu,
    cpuUsPerDelivery: delivered ? (cpu * 1000) / delivered : 0,
  });
}

async function chat(spec: Spec): Promise<Result> {
  const rooms = Math.ceil(spec.clients / spec.roomSize);
  const clients = await openClients(spec, spec.clients, (i) => `chat-${i % rooms}`);
  const frames = { n: 0 };
  for (const c of clients) c.onPayload = () => frames.n++;
  await settle(() => frames.n);
  const perClient = Math.floor(spec.rate * spec.seconds);
  const expected = perClient * spec.clients * (spec.roomSize - 1);
  const latencies = new Latencies(expected);
  let delivered = 0;
  let last = performance.now();
  for (const c of clients) {
    c.onPayload = (text) => {
      delivered++;
      last = performance.now();
      latencies.add(last - sentAt(text));
    };
  }
  const start = performance.now();
  const cpuBefore = cpuMs(spec);
  const interval = 1000 / spec.rate;
  let seq = 0;
  let sent = 0;
  // Each client sends `perClient` messages, `interval` apart, the clients spread over one interval.
  while (sent < perClient * spec.clients && performance.now() < start + spec.seconds * 1000 + 5000) {
    const elapsed = performance.now() - start;
    const due = Math.min(perClient * spec.clients, Math.floor((elapsed / interval) * spec.clients));
    for (; sent < due; sent++) clients[sent % spec.clients]?.publish(payload(++seq));
    await sleep(2);
  }
  await waitFor(() => delivered >= expected, DRAIN_MS);
  const cpu = cpuMs(spec) - cpuBefore;
  const rss = rssKb(spec);
  const reconnects = clients.reduce((n, c) => n + c.reconnects, 0);
  for (const c of clients) c.close();
  const elapsed = (last - start) / 1000;
  return base({
    deliveries: delivered,
    deliveriesPerSec: delivered / elapsed,
    expected,
    lost: Math.max(0, expected - delivered),
    ...latencies.summary(),
    rssMb: rss / 1024,
    reconnects,
    published: sent,
    seconds: elapsed,
    cpuMs: cpu,
    cpuUsPerDelivery: delivered ? (cpu * 1000) / delivered : 0,
  });
}

/** Idle connections as users hold them: each joined to a room, rooms of 10. */
const tenPerRoom = (spec: Spec) => (i: number) => `idle-${i % Math.max(1, Math.ceil(spec.clients / 10))}`;

async function idle(spec: Spec): Promise<Result> {
  await sleep(500);
  const before = rssKb(spec);
  const clients = await openClients(spec, spec.clients, tenPerRoom(spec));
  // Idle means idle: give the server's GC time to settle after the connect burst.
  await sleep(spec.seconds * 1000);
  const after = rssKb(spec);
  for (const c of clients) c.close();
  return base({ rssMb: after / 1024, kbPerConnection: (after - before) / spec.clients });
}

async function storm(spec: Spec): Promise<Result> {
  const cpuBefore = cpuMs(spec);
  const mineBefore = processCpuMs(Deno.pid);
  const start = performance.now();
  // Connect and join, as a user's tab does.
  const clients = await openClients(spec, spec.clients, tenPerRoom(spec));
  const seconds = (performance.now() - start) / 1000;
  const cpu = cpuMs(spec) - cpuBefore;
  const mine = processCpuMs(Deno.pid) - mineBefore;
  for (const c of clients) c.close();
  return base({
    connectsPerSec: spec.clients / seconds,
    seconds,
    rssMb: rssKb(spec) / 1024,
    cpuMs: cpu,
    cpuUsPerConnect: (cpu * 1000) / spec.clients,
    clientCpuUsPerConnect: (mine * 1000) / spec.clients,
  });
}

async function scenario(spec: Spec): Promise<Result> {
  switch (spec.scenario) {
    case "fanout":
      return await fanout(spec, true);
    case "maxfanout":
      return await fanout(spec, false);
    case "chat":
      return await chat(spec);
    case "idle":
      return await idle(spec);
    case "storm":
      return await storm(spec);
  }
}

/** roomcast's own counters of its Deno KV appends. With the local sequencer a message is delivered
 * when it is numbered and counted when its commit is durable, a few ms later: the counters are read
 * again (for up to 3 s) until they count every publish, so that the last commit is not taken for a
 * lost one. */
async function kvFigures(
  spec: Spec,
  published: number,
): Promise<Pick<Result, "kvAppends" | "kvBatches" | "kvAppendMs">> {
  const deadline = performance.now() + 3000;
  for (;;) {
    const text = await (await fetch(`${spec.base.replace(/^ws/, "http")}/metrics`)).text();
    const read = (name: string) => Number(new RegExp(`^${name} ([\\d.e+-]+)$`, "m").exec(text)?.[1] ?? 0);
    const appends = read("roomcast_store_appends_total");
    if (appends < published && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      continue;
    }
    const batches = read("roomcast_store_append_seconds_count");
    return {
      kvAppends: appends,
      kvBatches: batches,
      kvAppendMs: batches ? (read("roomcast_store_append_seconds_sum") / batches) * 1000 : 0,
    };
  }
}

export async function run(spec: Spec): Promise<Result> {
  const result = await scenario(spec);
  if (!spec.target.startsWith("roomcast")) return result;
  // Fan-out's "publishes not stored" compares the two; a Deploy-mode target's /metrics is one of its instances'.
  const counted = spec.scenario === "fanout" && !spec.target.startsWith("roomcast-kv") ? result.published : 0;
  return { ...result, ...await kvFigures(spec, counted) };
}

if (import.meta.main) {
  const spec: Spec = JSON.parse(Deno.args[0] ?? "{}");
  const result = await run(spec);
  console.log(JSON.stringify(result));
  // Sockets closed above may still be finishing their close handshakes.
  setTimeout(() => Deno.exit(0), 500);
}
