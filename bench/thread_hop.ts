/**
 * `deno task bench:hop`: what one message from one isolate to another costs in CPU when each
 * message wakes the receiver (the case of chat, where messages are spread out in time), the floor
 * under any design that serves one room from two isolates. The main thread sends one message per
 * timer tick (about 500 a second here) to a Worker by `postMessage`, by `BroadcastChannel`, and by
 * the cheapest wake there is, with no data at all: a counter in a SharedArrayBuffer that the Worker
 * awaits with `Atomics.waitAsync` and the main thread bumps with `Atomics.notify`. The same ticks
 * sending nothing are the baseline. Prints the extra process CPU per message, median of three
 * rounds of 5 s each.
 */
import { cpuMs } from "./proc.ts";

const SECONDS = 5;
const ROUNDS = 3;

const source = `
  const channel = new BroadcastChannel("hop");
  let received = 0;
  channel.onmessage = () => { received++; };
  async function ring(counter) {
    let seen = 0;
    for (;;) {
      const wait = Atomics.waitAsync(counter, 0, seen);
      if (wait.async) await wait.value;
      const now = Atomics.load(counter, 0);
      received += now - seen;
      seen = now;
    }
  }
  self.onmessage = (e) => {
    if (e.data === "count") postMessage(received);
    else if (e.data instanceof SharedArrayBuffer) ring(new Int32Array(e.data));
    else received++;
  };
`;

/** One Worker, one channel and one shared counter for every round. */
const worker = new Worker(URL.createObjectURL(new Blob([source], { type: "text/javascript" })), { type: "module" });
const channel = new BroadcastChannel("hop");
const counter = new Int32Array(new SharedArrayBuffer(4));
worker.postMessage(counter.buffer);

/** How many messages the Worker has received so far. */
function received(): Promise<number> {
  worker.postMessage("count");
  return new Promise<number>((resolve) => worker.onmessage = (e) => resolve(e.data));
}

type Mode = "none" | "postMessage" | "BroadcastChannel" | "Atomics.notify";

async function round(mode: Mode): Promise<{ sent: number; us: number }> {
  await new Promise((resolve) => setTimeout(resolve, 300));
  const first = await received();
  const before = cpuMs("self");
  const start = performance.now();
  let sent = 0;
  await new Promise<void>((done) => {
    const timer = setInterval(() => {
      if (mode === "postMessage") worker.postMessage(sent);
      else if (mode === "BroadcastChannel") channel.postMessage(sent);
      else if (mode === "Atomics.notify") {
        Atomics.add(counter, 0, 1);
        Atomics.notify(counter, 0);
      }
      sent++;
      if (performance.now() - start >= SECONDS * 1000) {
        clearInterval(timer);
        done();
      }
    }, 1);
  });
  const cpu = cpuMs("self") - before;
  // BroadcastChannel and postMessage are not ordered with each other: let the last ones land.
  await new Promise((resolve) => setTimeout(resolve, 200));
  const arrived = await received() - first;
  if (mode !== "none" && arrived !== sent) throw new Error(`${mode}: ${arrived} of ${sent} arrived`);
  return { sent, us: (cpu * 1000) / sent };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

const results: Record<string, number> = {};
for (const mode of ["none", "postMessage", "BroadcastChannel", "Atomics.notify"] as const) {
  const rounds = [];
  for (let i = 0; i < ROUNDS; i++) rounds.push(await round(mode));
  results[mode] = median(rounds.map((r) => r.us));
  console.log(`${mode}: ${rounds.map((r) => `${r.sent} ticks, ${r.us.toFixed(1)} µs`).join("; ")}`);
}
worker.terminate();
channel.close();
const base = results.none ?? 0;
console.log(
  `CPU per cross-isolate message, one message per wake: postMessage ${
    ((results.postMessage ?? 0) - base).toFixed(1)
  } µs, BroadcastChannel ${((results.BroadcastChannel ?? 0) - base).toFixed(1)} µs, Atomics.notify (a wake, no data) ${
    ((results["Atomics.notify"] ?? 0) - base).toFixed(1)
  } µs (median of ${ROUNDS})`,
);
