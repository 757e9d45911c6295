/**
 * `deno task profile`: where a connection's bytes and microseconds go. Starts one server (`bare`,
 * `roomcast` or `roomcast-socketio`, as `deno task bench` does) with the V8 inspector on 127.0.0.1,
 * and through it:
 *
 * - **heap**: a heap snapshot after a full GC before and after `--clients` idle connections (each
 *   joined to a room of ten, as the idle scenario holds them), diffed by constructor: the live
 *   bytes per connection, the 15 biggest kinds first;
 * - **CPU**: a sampling CPU profile of a connect storm of `--clients` (each with its join): self
 *   time by function and by file, the 20 biggest first.
 *
 * - **alloc** (only when asked): what a connect storm allocates, by function (sampled, garbage included).
 *
 * Options: --target=roomcast (default), --clients=2000, --only=heap|cpu|alloc, --detail (the heap by object shape
 * and holder instead of by constructor). Prints text; writes nothing.
 */
import { freePort } from "../routes/serve/cluster.ts";
import type { Spec } from "./loadgen.ts";
import { runLoad, spawnListening } from "./proc.ts";
import type { Target } from "./clients.ts";

const args = new Map(Deno.args.map((a) => {
  const [k, v = "true"] = a.replace(/^--/, "").split("=");
  return [k as string, v];
}));
const target = (args.get("target") ?? "roomcast") as Target;
const clients = Number(args.get("clients") ?? 2000);
const only = args.get("only");
/** --detail: objects by shape and holder instead of by constructor. */
const detail = args.has("detail");
const root = new URL("../", import.meta.url).pathname;
const startTask: string = JSON.parse(await Deno.readTextFile(`${root}deno.json`)).tasks.start;
const v8Flags = startTask.match(/--v8-flags=\S+/g) ?? [];

/** A Chrome DevTools Protocol session over the inspector's WebSocket. */
class Inspector {
  #next = 0;
  readonly #waiting = new Map<number, (value: Record<string, unknown>) => void>();
  readonly #listeners = new Map<string, (params: Record<string, unknown>) => void>();
  private constructor(readonly socket: WebSocket) {
    socket.onmessage = (e) => {
      const message = JSON.parse(e.data as string);
      if (message.id !== undefined) this.#waiting.get(message.id)?.(message.result ?? message);
      else this.#listeners.get(message.method)?.(message.params);
    };
  }

  static async open(url: string): Promise<Inspector> {
    const socket = new WebSocket(url);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = reject;
    });
    return new Inspector(socket);
  }

  call(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = ++this.#next;
    return new Promise((resolve) => {
      this.#waiting.set(id, resolve);
      this.socket.send(JSON.stringify({ id, method, params }));
    });
  }

  on(method: string, listener: (params: Record<string, unknown>) => void): void {
    this.#listeners.set(method, listener);
  }
}

async function startServer(): Promise<{ base: string; pid: number; inspector: Inspector; stop(): Promise<void> }> {
  const port = freePort();
  const inspect = `--inspect=127.0.0.1:${port}`;
  const deno = Deno.execPath();
  const command = target === "bare"
    ? [deno, "run", "-A", inspect, `${root}bench/bare_server.ts`]
    : [deno, "run", "-A", "--unstable-kv", "--unstable-net", inspect, ...v8Flags, `${root}main.ts`];
  const dir = await Deno.makeTempDir();
  const { child, url } = await spawnListening(
    command,
    {
      PORT: "0",
      HOSTNAME: "127.0.0.1",
      ROOMCAST_KV_PATH: `${dir}/profile.kv`,
      ROOMCAST_CONNECT_RATE: "0",
      ROOMCAST_MAX_CONNECTIONS_PER_IP: "0",
      ROOMCAST_JOIN_RATE: "1000000/1s",
    },
    target,
    "null",
  );
  const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const inspector = await Inspector.open(targets[0].webSocketDebuggerUrl);
  return {
    base: url.replace(/^http/, "ws"),
    pid: child.pid,
    inspector,
    async stop() {
      inspector.socket.close();
      child.kill("SIGKILL");
      await child.status;
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Self bytes by constructor name in a heap snapshot taken after a full GC. */
async function heapByKind(inspector: Inspector): Promise<Map<string, { bytes: number; count: number }>> {
  await inspector.call("HeapProfiler.collectGarbage");
  await inspector.call("HeapProfiler.collectGarbage");
  const chunks: string[] = [];
  inspector.on("HeapProfiler.addHeapSnapshotChunk", (p) => chunks.push(p.chunk as string));
  await inspector.call("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
  const snapshot = JSON.parse(chunks.join(""));
  const fields: string[] = snapshot.snapshot.meta.node_fields;
  const types: string[] = snapshot.snapshot.meta.node_types[0];
  const [typeAt, nameAt, sizeAt] = ["type", "name", "self_size"].map((f) => fields.indexOf(f)) as [
    number,
    number,
    number,
  ];
  const nodes: number[] = snapshot.nodes;
  const strings: string[] = snapshot.strings;
  const kinds = new Map<string, { bytes: number; count: number }>();
  const nameOf = (i: number) => {
    const type = types[nodes[i + typeAt] as number] as string;
    return type === "object" || type === "closure" ? strings[nodes[i + nameAt] as number] ?? "" : `(${type})`;
  };
  // With --detail: plain objects by their property names, everything else by what first holds it.
  const shapes = detail ? shapesOf(snapshot, nameOf) : undefined;
  for (let i = 0; i < nodes.length; i += fields.length) {
    const name = nameOf(i);
    const key = (shapes?.get(i / fields.length) ?? `${name}`).slice(0, 100);
    const kind = kinds.get(key) ?? { bytes: 0, count: 0 };
    kind.bytes += nodes[i + sizeAt] as number;
    kind.count++;
    kinds.set(key, kind);
  }
  return kinds;
}

/** Per node (by ordinal): `Object{a,b,c}` for a plain object's properties, or `<kind> in <holder>.<edge>` for
 * other kinds, from the first edge that points at it. */
// deno-lint-ignore no-explicit-any
function shapesOf(snapshot: any, nameOf: (i: number) => string): Map<number, string> {
  const fields: string[] = snapshot.snapshot.meta.node_fields;
  const edgeFields: string[] = snapshot.snapshot.meta.edge_fields;
  const edgeTypes: string[] = snapshot.snapshot.meta.edge_types[0];
  const nodes: number[] = snapshot.nodes;
  const edges: number[] = snapshot.edges;
  const strings: string[] = snapshot.strings;
  const countAt = fields.indexOf("edge_count");
  const [typeAt, nameAt, toAt] = ["type", "name_or_index", "to_node"].map((f) => edgeFields.indexOf(f)) as [
    number,
    number,
    number,
  ];
  const props = new Map<number, string[]>();
  const holder = new Map<number, string>();
  let e = 0;
  for (let i = 0; i < nodes.length; i += fields.length) {
    const from = i / fields.length;
    const own = nameOf(i);
    for (let k = 0; k < (nodes[i + countAt] as number); k++, e += edgeFields.length) {
      const type = edgeTypes[edges[e + typeAt] as number];
      const to = (edges[e + toAt] as number) / fields.length;
      const edge = type === "element" || type === "hidden"
        ? `[${edges[e + nameAt]}]`
        : strings[edges[e + nameAt] as number];
      if (type === "property" && own === "Object") {
        const list = props.get(from) ?? [];
        if (list.length < 6) list.push(edge as string);
        props.set(from, list);
      }
      if (!holder.has(to) && type !== "weak") holder.set(to, `${own}.${type === "element" ? "[i]" : edge}`);
    }
  }
  const out = new Map<number, string>();
  for (let n = 0; n < nodes.length / fields.length; n++) {
    const name = nameOf(n * fields.length);
    out.set(n, name === "Object" ? `Object{${(props.get(n) ?? []).join(",")}}` : `${name} in ${holder.get(n) ?? "?"}`);
  }
  return out;
}

const spec = (scenario: "idle" | "storm", server: { base: string; pid: number }): Spec => ({
  target,
  base: server.base,
  scenario,
  pid: server.pid,
  clients,
  rate: 0,
  seconds: scenario === "idle" ? 20 : 0,
  roomSize: 0,
  inflight: 0,
});

if (only !== "cpu" && only !== "alloc") {
  const server = await startServer();
  try {
    const before = await heapByKind(server.inspector);
    // The idle scenario holds its connections `seconds`: the second snapshot is taken meanwhile.
    const loading = runLoad(spec("idle", server));
    await new Promise((resolve) => setTimeout(resolve, 12_000));
    const after = await heapByKind(server.inspector);
    await loading;
    const rows = [...after].map(([kind, a]) => {
      const b = before.get(kind) ?? { bytes: 0, count: 0 };
      return { kind, bytes: (a.bytes - b.bytes) / clients, count: (a.count - b.count) / clients };
    }).sort((x, y) => y.bytes - x.bytes);
    const total = rows.reduce((sum, r) => sum + r.bytes, 0);
    console.log(`\n${target}: live heap per idle connection (joined, rooms of 10), ${clients} connections`);
    console.log(`total ${total.toFixed(0)} B per connection`);
    for (const r of rows.slice(0, detail ? 40 : 15)) {
      console.log(`${r.bytes.toFixed(0).padStart(7)} B  ${r.count.toFixed(2).padStart(6)} ×  ${r.kind}`);
    }
  } finally {
    await server.stop();
  }
}

if (only === "alloc") {
  // What a connect allocates, live or not (garbage grows the heap too): V8's sampling heap profiler
  // over a storm, keeping what it collected (includeObjectsCollectedBy*).
  const server = await startServer();
  try {
    const { inspector } = server;
    await inspector.call("HeapProfiler.enable");
    await inspector.call("HeapProfiler.startSampling", {
      samplingInterval: 1024,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    await runLoad(spec("storm", server));
    const { profile } = await inspector.call("HeapProfiler.stopSampling") as {
      profile: { head: AllocNode };
    };
    const byFunction = new Map<string, number>();
    let total = 0;
    const walk = (node: AllocNode) => {
      const { functionName, url, lineNumber } = node.callFrame;
      const key = `${functionName || "(anonymous)"} ${url.replace(/^.*\/(main|registry\.npmjs\.org)\//, "")}:${
        lineNumber + 1
      }`;
      byFunction.set(key, (byFunction.get(key) ?? 0) + node.selfSize);
      total += node.selfSize;
      for (const child of node.children) walk(child);
    };
    walk(profile.head);
    console.log(`\n${target}: bytes allocated per connection in a storm of ${clients} (sampled, collected or not)`);
    console.log(`total ${(total / clients).toFixed(0)} B per connection`);
    for (const [key, bytes] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
      console.log(`${(bytes / clients).toFixed(0).padStart(7)} B  ${key}`);
    }
  } finally {
    await server.stop();
  }
}

interface AllocNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: AllocNode[];
}

if (only !== "heap" && only !== "alloc") {
  const server = await startServer();
  try {
    const { inspector } = server;
    await inspector.call("Profiler.enable");
    await inspector.call("Profiler.setSamplingInterval", { interval: 100 });
    await inspector.call("Profiler.start");
    const result = await runLoad(spec("storm", server));
    const { profile } = await inspector.call("Profiler.stop") as {
      profile: {
        nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
        samples: number[];
        timeDeltas: number[];
      };
    };
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const byFunction = new Map<string, number>();
    const byFile = new Map<string, number>();
    let total = 0;
    profile.samples.forEach((id, i) => {
      const us = profile.timeDeltas[i] ?? 0;
      total += us;
      const frame = byId.get(id)?.callFrame;
      const file = frame?.url.replace(/^file:\/\/.*?\/(main|node_modules)\//, "$1/").replace(/^.*\/deno\//, "") ||
        "(native)";
      const fn = `${frame?.functionName || "(anonymous)"} ${file.split("/").slice(-2).join("/")}:${
        (frame?.lineNumber ?? 0) + 1
      }`;
      byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
      byFile.set(file, (byFile.get(file) ?? 0) + us);
    });
    const show = (title: string, map: Map<string, number>) => {
      console.log(`\n${title}`);
      for (const [name, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, 20)) {
        console.log(
          `${(100 * us / total).toFixed(1).padStart(5)} %  ${(us / clients).toFixed(1).padStart(6)} µs/conn  ${name}`,
        );
      }
    };
    console.log(
      `\n${target}: connect storm of ${clients} (each with its join): ${result.connectsPerSec?.toFixed(0)} /s; ` +
        `${(total / clients).toFixed(0)} µs of samples per connection (idle included)`,
    );
    show("self time by function", byFunction);
    show("self time by file", byFile);
  } finally {
    await server.stop();
  }
}
