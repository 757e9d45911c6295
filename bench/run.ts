/**
 * `deno task bench`: runs each scenario against the bare reference server, roomcast (default and
 * batched protocol) and Socket.IO 4 on Node, in the same run, alternating, each on a fresh server
 * process on 127.0.0.1. The load generator is its own process (bench/loadgen.ts). Prints one table
 * with ratios to the bare server and writes bench/RESULTS.md.
 *
 * Options: --quick (shorter, smaller), --scale=N (multiply client counts), --rounds=N (median of N),
 * --only=fanout20,chat, --targets=bare,roomcast, --no-write (don't touch RESULTS.md), --workers=N
 * (roomcast with ROOMCAST_WORKERS=N), --v8-flags=F|none (roomcast's V8 flags instead of the start task's).
 * Targets not run by default: roomcast-proxy (a publish proxy on a local backend), roomcast-2w, -kv2, -kv2i,
 * -redis, -redis2, -sio-official, -pusher-stored, bare-ack.
 */
import type { Result, Scenario, Spec } from "./loadgen.ts";
import { BENCH_PUSHER_APP, type Target } from "./clients.ts";
import { startRedis } from "../tests/_redis.ts";
import { runLoad, spawnListening } from "./proc.ts";
import { freePort } from "../routes/serve/cluster.ts";

interface ScenarioSpec {
  key: string;
  title: string;
  scenario: Scenario;
  clients: number;
  rate: number;
  seconds: number;
  roomSize: number;
  inflight: number;
}

const args = new Map(Deno.args.map((a) => {
  const arg = a.replace(/^--/, "");
  const at = arg.indexOf("=");
  return at === -1 ? [arg, "true"] : [arg.slice(0, at), arg.slice(at + 1)];
}));
const quick = args.has("quick");
const scale = Number(args.get("scale") ?? 1);
const rounds = Number(args.get("rounds") ?? 1);
const root = new URL("../", import.meta.url).pathname;

const n = (clients: number) => Math.max(10, Math.round(clients * scale * (quick ? 0.2 : 1)));
const s = (seconds: number) => quick ? Math.max(3, seconds / 3) : seconds;

const SCENARIOS: ScenarioSpec[] = [
  {
    key: "fanout20",
    title: "fan-out 20 msg/s",
    scenario: "fanout",
    clients: n(1000),
    rate: 20,
    seconds: s(10),
    roomSize: 0,
    inflight: 0,
  },
  {
    key: "fanout200",
    title: "fan-out 200 msg/s (overload)",
    scenario: "fanout",
    clients: n(1000),
    rate: 200,
    seconds: s(10),
    roomSize: 0,
    inflight: 0,
  },
  {
    key: "maxfanout",
    title: "max fan-out, 100 in flight",
    scenario: "maxfanout",
    clients: n(1000),
    rate: 0,
    seconds: s(10),
    roomSize: 0,
    inflight: 100,
  },
  {
    key: "chat",
    title: "chat, rooms of 10, 1 msg/s each",
    scenario: "chat",
    clients: n(2000),
    rate: 1,
    seconds: s(20),
    roomSize: 10,
    inflight: 0,
  },
  {
    key: "idle",
    title: "idle connections",
    scenario: "idle",
    clients: n(5000),
    rate: 0,
    seconds: 2,
    roomSize: 0,
    inflight: 0,
  },
  {
    key: "storm",
    title: "connect storm",
    scenario: "storm",
    clients: n(5000),
    rate: 0,
    seconds: 0,
    roomSize: 0,
    inflight: 0,
  },
];

const ALL_TARGETS: Target[] = [
  "bare",
  "roomcast",
  "roomcast-batch",
  "roomcast-socketio",
  "socketio",
  "roomcast-pusher",
];
const targets = (args.get("targets")?.split(",") ?? ALL_TARGETS) as Target[];
const only = args.get("only")?.split(",");
const scenarios = SCENARIOS.filter((sc) => !only || only.includes(sc.key));

/** roomcast runs with the V8 flags `deno task start` gives it (deno.json), unless `--v8-flags=…`
 * (or `--v8-flags=none`) says otherwise for an experiment. The references run with none. */
const startTask: string = JSON.parse(await Deno.readTextFile(`${root}deno.json`)).tasks.start;
const roomcastV8Flags = args.get("v8-flags") === "none"
  ? []
  : args.has("v8-flags")
  ? [`--v8-flags=${args.get("v8-flags")}`]
  : startTask.match(/--v8-flags=\S+/g) ?? [];

interface Server {
  base: string;
  pid: number;
  /** Every server there is (roomcast-kv2 runs two). */
  bases: string[];
  pids: number[];
  stop(): Promise<void>;
}

/** Starts a server child with a raised file-descriptor limit and waits for its "listening" line. */
async function startProcess(
  target: Target,
  env: Record<string, string>,
  script = [`${root}main.ts`],
): Promise<Server> {
  const deno = Deno.execPath();
  const command: string[] = target === "bare" || target === "bare-ack"
    ? [deno, "run", "-A", `${root}bench/bare_server.ts`, ...(target === "bare-ack" ? ["--ack"] : [])]
    : target === "socketio"
    ? ["node", `${root}bench/node/socketio_server.mjs`]
    : [deno, "run", "-A", "--unstable-kv", "--unstable-net", ...roomcastV8Flags, ...script];
  const { child, url } = await spawnListening(command, env, target, "inherit");
  const base = url.replace(/^http/, "ws");
  return {
    base,
    pid: child.pid,
    bases: [base],
    pids: [child.pid],
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }, 6000);
      await child.status;
      clearTimeout(timer);
    },
  };
}

/** The target's server: one process, or (roomcast-kv2) two on one KV file. */
async function startServer(target: Target, kvDir: string): Promise<Server> {
  const env: Record<string, string> = {
    PORT: "0",
    HOSTNAME: "127.0.0.1",
    ROOMCAST_KV_PATH: args.get("kv") ?? `${kvDir}/bench-${crypto.randomUUID()}.kv`,
    // Every load-generator client comes from 127.0.0.1: the per-address limits would throttle
    // the bench, not an attacker.
    ROOMCAST_PUBLISH_RATE: "1000000/1s",
    ROOMCAST_SIGNAL_BURST: "100000",
    ROOMCAST_USER_PUBLISH_RATE: "1000000/1s",
    ROOMCAST_USER_SIGNAL_BURST: "10000000",
    ROOMCAST_JOIN_RATE: "1000000/1s",
    ROOMCAST_CONNECT_RATE: "0",
    ROOMCAST_MAX_CONNECTIONS_PER_IP: "0",
    ROOMCAST_WORKERS: target === "roomcast-2w" ? "2" : args.get("workers") ?? "1",
    ROOMCAST_SIO_LAYER: target === "roomcast-sio-official" ? "official" : "own",
    ROOMCAST_PUSHER_APPS: `${BENCH_PUSHER_APP.id}:${BENCH_PUSHER_APP.key}:${BENCH_PUSHER_APP.secret}`,
    ROOMCAST_PUSHER_CLIENT_EVENT_RATE: "1000000/1s",
  };
  if (target === "roomcast-redis" || target === "roomcast-redis2") {
    const redis = await startRedis({ fsync: "everysec" });
    const withRedis = { ...env, ROOMCAST_REDIS_URL: redis.url };
    const servers = [await startProcess(target, withRedis)];
    if (target === "roomcast-redis2") servers.push(await startProcess(target, withRedis));
    // Redis' own CPU and memory count as the server's.
    return several(servers, () => redis[Symbol.asyncDispose](), redis.pid);
  }
  if (target === "roomcast-proxy") {
    // A publish proxy on a local backend that allows everything (bench/proxy_backend.ts): each
    // publish waits for its call. The backend's CPU is the app's, not counted as the server's.
    const deno = Deno.execPath();
    const { child, url } = await spawnListening(
      [deno, "run", "-A", `${root}bench/proxy_backend.ts`],
      {},
      "backend",
      "inherit",
    );
    const server = await startProcess(target, { ...env, ROOMCAST_PROXY_PUBLISH_URL: `${url}/publish` });
    return several([server], async () => {
      child.kill("SIGTERM");
      await child.status;
    });
  }
  if (target === "roomcast-kv2i") {
    // Two Deploy-mode instances as isolates of one process (bench/kv_instances.ts): their watch
    // sees each other's writes, as on Deploy's KV.
    const ports = [freePort(), freePort()];
    const server = await startProcess(target, env, [`${root}bench/kv_instances.ts`, ...ports.map(String)]);
    return { ...server, bases: ports.map((port) => `ws://127.0.0.1:${port}`) };
  }
  if (target !== "roomcast-kv2") return await startProcess(target, env);
  const shared = { ...env, ROOMCAST_SEQUENCER: "kv", ROOMCAST_WORKERS: "1" };
  return several([await startProcess(target, shared), await startProcess(target, shared)]);
}

/** Several server processes as one target: clients spread over them; `after` runs once they stop. */
function several(servers: Server[], after: () => Promise<void> = () => Promise.resolve(), extra?: number): Server {
  const [first] = servers as [Server];
  return {
    base: first.base,
    pid: first.pid,
    bases: servers.map((s) => s.base),
    pids: [...servers.map((s) => s.pid), ...(extra === undefined ? [] : [extra])],
    stop: async () => {
      await Promise.all(servers.map((s) => s.stop()));
      await after();
    },
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

function medianResult(results: Result[]): Result {
  const first = results[0] as Result;
  const out = { ...first };
  for (const key of Object.keys(first) as (keyof Result)[]) {
    if (key !== "p99PerSecond") out[key] = median(results.map((r) => r[key]));
  }
  return out;
}

async function ensureSocketIo(): Promise<void> {
  if (!targets.includes("socketio")) return;
  try {
    await Deno.stat(`${root}bench/node/node_modules/socket.io`);
  } catch {
    console.log("installing socket.io for the Node column (npm ci in bench/node)…");
    const ok = await new Deno.Command("npm", { args: ["ci", "--no-audit", "--no-fund"], cwd: `${root}bench/node` })
      .output();
    if (!ok.success) throw new Error("npm ci in bench/node failed");
  }
}

type Row = { label: string; values: Map<Target, number>; unit: string; better: "higher" | "lower"; digits: number };

function rowsFor(sc: ScenarioSpec, results: Map<Target, Result>): Row[] {
  const row = (label: string, pick: (r: Result) => number, unit: string, better: Row["better"], digits = 0): Row => ({
    label: `${sc.title}: ${label}`,
    values: new Map([...results].map(([t, r]) => [t, pick(r)])),
    unit,
    better,
    digits,
  });
  switch (sc.scenario) {
    case "fanout":
      return [
        row("deliveries/s", (r) => r.deliveriesPerSec, "/s", "higher"),
        row("not received 15 s after the end", (r) => r.lost, "", "lower"),
        row("p50 latency", (r) => r.p50, "ms", "lower", 1),
        row("p99 latency", (r) => r.p99, "ms", "lower", 1),
        row("max latency", (r) => r.max, "ms", "lower", 1),
        row("server RSS at end", (r) => r.rssMb, "MB", "lower"),
        row("reconnects (4008 → recover)", (r) => r.reconnects, "", "lower"),
        row("publisher reconnects (4008)", (r) => r.publisherReconnects, "", "lower"),
        // roomcast: sent by the publisher, never stored (in flight when it was closed).
        row("publishes not stored", (r) => r.kvAppends > 0 ? Math.max(0, r.published - r.kvAppends) : 0, "", "lower"),
        row("KV appends/s", (r) => r.kvAppends / (r.seconds || 1), "/s", "higher"),
        row("KV mean commit", (r) => r.kvAppendMs, "ms", "lower", 2),
      ];
    case "maxfanout":
      return [
        row("deliveries/s", (r) => r.deliveriesPerSec, "/s", "higher"),
        row("server CPU per delivery", (r) => r.cpuUsPerDelivery, "µs", "lower", 2),
        row("server RSS at end", (r) => r.rssMb, "MB", "lower"),
      ];
    case "chat":
      return [
        row("deliveries/s", (r) => r.deliveriesPerSec, "/s", "higher"),
        row("not received 15 s after the end", (r) => r.lost, "", "lower"),
        row("p99 latency", (r) => r.p99, "ms", "lower", 1),
        row("server CPU per delivery", (r) => r.cpuUsPerDelivery, "µs", "lower", 2),
        row("server RSS at end", (r) => r.rssMb, "MB", "lower"),
        row("KV appends/s", (r) => r.kvAppends / (r.seconds || 1), "/s", "higher"),
        row("KV appends per commit", (r) => r.kvBatches ? r.kvAppends / r.kvBatches : 0, "", "higher", 1),
        row("KV mean commit", (r) => r.kvAppendMs, "ms", "lower", 2),
      ];
    case "idle":
      return [row("server RSS per connection (joined, rooms of 10)", (r) => r.kbPerConnection, "KiB", "lower", 1)];
    case "storm":
      return [
        row("connections/s (each with its join)", (r) => r.connectsPerSec, "/s", "higher"),
        row("server CPU per connection", (r) => r.cpuUsPerConnect, "µs", "lower"),
        row("load generator CPU per connection", (r) => r.clientCpuUsPerConnect, "µs", "lower"),
      ];
  }
}

function table(rows: Row[]): string {
  const cols = targets;
  const head = ["scenario / figure", ...cols, ...cols.filter((t) => t !== "bare").map((t) => `${t} ÷ bare`)];
  const lines = [`| ${head.join(" | ")} |`, `| ${head.map(() => "---").join(" | ")} |`];
  for (const r of rows) {
    const fmt = (v: number | undefined) =>
      v === undefined ? "–" : `${v.toFixed(r.digits)}${r.unit ? ` ${r.unit}` : ""}`;
    const bare = r.values.get("bare");
    const ratios = cols.filter((t) => t !== "bare").map((t) => {
      const v = r.values.get(t);
      return bare && v !== undefined && bare > 0 ? `${(v / bare).toFixed(2)}×` : "–";
    });
    lines.push(`| ${[r.label, ...cols.map((t) => fmt(r.values.get(t))), ...ratios].join(" | ")} |`);
  }
  return lines.join("\n");
}

async function commit(): Promise<string> {
  const git = async (...a: string[]) =>
    new TextDecoder().decode((await new Deno.Command("git", { args: a, cwd: root, stdout: "piped" }).output()).stdout)
      .trim();
  const head = await git("rev-parse", "--short", "HEAD");
  const dirty = (await git("status", "--porcelain", "--untracked-files=no")) ? "+uncommitted" : "";
  return `${head}${dirty}`;
}

async function main(): Promise<void> {
  await ensureSocketIo();
  const kvDir = await Deno.makeTempDir({ prefix: "roomcast-bench-" });
  const rows: Row[] = [];
  try {
    for (const sc of scenarios) {
      const all = new Map<Target, Result[]>();
      for (let round = 0; round < rounds; round++) {
        const order = round % 2 === 0 ? targets : [...targets].reverse();
        for (const target of order) {
          const server = await startServer(target, kvDir);
          try {
            const spec: Spec = {
              ...sc,
              target,
              base: server.base,
              bases: server.bases,
              pid: server.pid,
              pids: server.pids,
            };
            const result = await runLoad(spec);
            all.set(target, [...(all.get(target) ?? []), result]);
            console.log(`${sc.key.padEnd(10)} ${target.padEnd(15)} ${JSON.stringify(result)}`);
          } finally {
            await server.stop();
          }
        }
      }
      rows.push(...rowsFor(sc, new Map([...all].map(([t, r]) => [t, medianResult(r)]))));
    }
  } finally {
    await Deno.remove(kvDir, { recursive: true });
  }
  const out = table(rows);
  console.log(`\n${out}\n`);
  if (args.has("no-write")) return;
  const cpu = /model name\s*:\s*(.+)/.exec(await Deno.readTextFile("/proc/cpuinfo"))?.[1] ?? "unknown CPU";
  const header = `## ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC, commit ${await commit()}\n\n` +
    `${navigator.hardwareConcurrency} cores (${cpu}), Deno ${Deno.version.deno}, ` +
    `${
      quick ? "quick run" : "full run"
    }, scale ${scale}, rounds ${rounds} (median), load generator in its own process.\n\n`;
  const path = `${root}bench/RESULTS.md`;
  let previous = "";
  try {
    previous = await Deno.readTextFile(path);
  } catch { /* first run */ }
  const intro = "# Benchmark results\n\nNewest first. Re-run with `deno task bench` (options: `--quick`, " +
    "`--only=maxfanout,chat`, `--targets=bare,roomcast`,\n`--rounds=3`, `--no-write`; bench/run.ts says the rest).\n\n";
  const older = previous.indexOf("\n## ");
  const body = older >= 0 ? previous.slice(older) : "";
  await Deno.writeTextFile(path, `${intro}${header}${out}\n${body}`);
  console.log(`wrote ${path}`);
}

if (import.meta.main) await main();
