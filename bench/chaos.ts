/**
 * `deno task chaos`: a soak with crashes (not in CI). Runs main.ts on a KV file for a minute while
 * HTTP and WebSocket publishers write to one room and readers follow it, reconnecting now and then
 * with their last position; every few seconds the server is killed with SIGKILL and restarted on
 * the same file. At the end it reads the whole history back and prints what was acknowledged,
 * read back, lost and duplicated, and what the readers saw. Lost acknowledged-durable messages
 * (HTTP 201 always; WebSocket acks with `--sequencer=kv`), duplicates and reader gaps must be 0:
 * otherwise it exits with 1. Every loop is bounded in time; traffic stays on 127.0.0.1.
 *
 * Options: --seconds=60, --sequencer=local|kv, --kill-every=6 (seconds, ± half), --workers=N
 * (`ROOMCAST_WORKERS`: publishers and readers then land on different Workers).
 */
import { freePort } from "../routes/serve/cluster.ts";
import { startMain, stopMain } from "../tests/_process.ts";
import type { MainProcess } from "../tests/_process.ts";

const args = new Map(Deno.args.map((a) => {
  const [k, v] = a.replace(/^--/, "").split("=");
  return [k ?? "", v ?? "true"];
}));
const seconds = Number(args.get("seconds") ?? 60);
const sequencer = args.get("sequencer") ?? "local";
const killEvery = Number(args.get("kill-every") ?? 6);
const workers = args.get("workers") ?? "1";
const ROOM = "chaos";

interface Ack {
  id: string;
  offset: number;
  durable: boolean;
}

const acks: Ack[] = [];
const readerIssues: string[] = [];
/** What readers were delivered: offset → id. */
const delivered = new Map<number, string>();
let deliveries = 0;
let recoveredTrue = 0;
let recoveredFalse = 0;
let crashes = 0;

const dir = await Deno.makeTempDir();
const port = freePort();
const base = `http://127.0.0.1:${port}`;
const env = {
  PORT: String(port),
  HOSTNAME: "127.0.0.1",
  ROOMCAST_KV_PATH: `${dir}/chaos.kv`,
  ROOMCAST_SEQUENCER: sequencer,
  ROOMCAST_WORKERS: workers,
  ROOMCAST_HISTORY_LIMIT: "100000",
  ROOMCAST_PUBLISH_RATE: "1000000/1s",
  ROOMCAST_USER_PUBLISH_RATE: "1000000/1s",
  ROOMCAST_CONNECT_RATE: "0",
  ROOMCAST_MAX_CONNECTIONS_PER_IP: "0",
};
const deadline = Date.now() + seconds * 1000;
const running = () => Date.now() < deadline;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let server: MainProcess = await startMain(env, { stderr: "piped" });
const logs: string[] = [];

async function chaosMonkey(): Promise<void> {
  while (running()) {
    await sleep(killEvery * 1000 * (0.5 + Math.random()));
    if (!running()) break;
    logs.push(server.stderr());
    await stopMain(server, "SIGKILL");
    crashes++;
    server = await startMain(env, { stderr: "piped" });
  }
}

async function httpPublisher(n: number): Promise<void> {
  for (let i = 0; running() && i < 1_000_000; i++) {
    try {
      const response = await fetch(`${base}/api/rooms/${ROOM}/messages`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ data: { http: n, i } }),
      });
      if (response.status === 201) {
        const { id, offset } = await response.json();
        acks.push({ id, offset, durable: true });
      } else await response.body?.cancel();
      await sleep(2);
    } catch {
      await sleep(50); // down: being restarted
    }
  }
}

/** Opens a WebSocket and hands it each frame; resolves when it closes (or fails to open). */
function socket(onOpen: (ws: WebSocket) => void, onFrame: (ws: WebSocket, frame: Record<string, unknown>) => void) {
  return new Promise<void>((resolve) => {
    const ws = new WebSocket(`${base.replace("http", "ws")}/ws`);
    ws.onopen = () => onOpen(ws);
    ws.onmessage = (e) => onFrame(ws, JSON.parse(e.data));
    ws.onclose = () => resolve();
    ws.onerror = () => {};
  });
}

async function wsPublisher(n: number): Promise<void> {
  let i = 0;
  while (running()) {
    await socket((ws) => ws.send(JSON.stringify({ type: "join", room: ROOM, ref: "join" })), (ws, frame) => {
      if (frame.type === "ping") ws.send('{"type":"pong"}');
      if (frame.type === "ack" && typeof frame.id === "string") {
        acks.push({ id: frame.id, offset: frame.offset as number, durable: sequencer === "kv" });
      }
      if ((frame.type === "joined" || frame.type === "ack") && running()) {
        setTimeout(() => {
          if (ws.readyState === WebSocket.OPEN) {
            ws.send(JSON.stringify({ type: "publish", room: ROOM, data: { ws: n, i: i++ } }));
          }
        }, 3);
      }
      if (!running()) ws.close();
    });
    await sleep(50);
  }
}

async function reader(n: number): Promise<void> {
  let position: { epoch: string; offset: number } | undefined;
  while (running()) {
    const stayMs = 1000 + Math.random() * 2000;
    await socket((ws) => {
      ws.send(JSON.stringify(position ? { type: "join", room: ROOM, since: position } : { type: "join", room: ROOM }));
      setTimeout(() => ws.close(), stayMs);
    }, (ws, frame) => {
      if (frame.type === "ping") ws.send('{"type":"pong"}');
      if (frame.type === "joined") {
        if (frame.recovered) recoveredTrue++;
        else {
          recoveredFalse++;
          position = { epoch: frame.epoch as string, offset: frame.offset as number };
        }
      }
      if (frame.type === "message") {
        deliveries++;
        const offset = frame.offset as number;
        const at = position?.offset ?? offset - 1;
        if (position && frame.epoch !== position.epoch) {
          readerIssues.push(`reader ${n}: epoch changed without a joined`);
        } else if (offset !== at + 1) readerIssues.push(`reader ${n}: got ${offset} after ${at}`);
        const known = delivered.get(offset);
        if (known !== undefined && known !== frame.id) {
          readerIssues.push(`offset ${offset} named ${known} and ${frame.id}`);
        }
        delivered.set(offset, frame.id as string);
        position = { epoch: frame.epoch as string, offset };
      }
    });
    await sleep(20 + Math.random() * 100);
  }
}

console.log(
  `chaos: ${seconds} s, sequencer ${sequencer}, kill -9 every ~${killEvery} s, KV ${dir}/chaos.kv, ${base}`,
);
await Promise.all([
  chaosMonkey(),
  httpPublisher(0),
  httpPublisher(1),
  wsPublisher(0),
  wsPublisher(1),
  reader(0),
  reader(1),
  reader(2),
]);

// Read everything back, after a clean restart (the last process may just have started).
const history: { id: string; offset: number }[] = [];
for (let after = 0, pages = 0; pages < 10_000; pages++) {
  const page = await (await fetch(`${base}/api/rooms/${ROOM}/messages?after=${after}&limit=100`)).json();
  if (page.messages.length === 0) break;
  history.push(...page.messages);
  after = page.messages.at(-1).offset;
}
logs.push(server.stderr());
await stopMain(server);
await Deno.remove(dir, { recursive: true });

const byOffset = new Map(history.map((m) => [m.offset, m.id]));
const ids = new Set(history.map((m) => m.id));
const duplicated = history.length - ids.size +
  history.filter((m, i) => i > 0 && m.offset <= (history[i - 1]?.offset ?? 0)).length;
const durable = acks.filter((a) => a.durable);
const lostDurable = durable.filter((a) => byOffset.get(a.offset) !== a.id);
const notDurable = acks.filter((a) => !a.durable);
const lostOther = notDurable.filter((a) => byOffset.get(a.offset) !== a.id);
const mismatched = acks.filter((a) => byOffset.has(a.offset) && byOffset.get(a.offset) !== a.id).length +
  [...delivered].filter(([offset, id]) => byOffset.has(offset) && byOffset.get(offset) !== id).length;
const crashLogs = logs.join("").split("\n").filter((line) => /Uncaught|unhandled/i.test(line));

const rows: [string, number | string][] = [
  ["crashes (kill -9) and restarts", crashes],
  ["acknowledged, durable (HTTP 201" + (sequencer === "kv" ? ", WebSocket acks" : "") + ")", durable.length],
  ["  read back", durable.length - lostDurable.length],
  ["  lost (must be 0)", lostDurable.length],
  ...(sequencer === "kv" ? [] : [
    ["acknowledged, not durable (WebSocket acks, local sequencer)", notDurable.length] as [string, number],
    ["  read back", notDurable.length - lostOther.length] as [string, number],
    ["  lost in a crash (their offsets stay unused)", lostOther.length] as [string, number],
  ]),
  ["messages in history", history.length],
  ["duplicated (must be 0)", duplicated],
  ["an offset naming two messages (must be 0)", mismatched],
  ["reader deliveries", deliveries],
  ["reader rejoins: recovered / told recovered: false", `${recoveredTrue} / ${recoveredFalse}`],
  ["reader gaps or repeats without recovered: false (must be 0)", readerIssues.length],
  ["uncaught errors in the server's log (must be 0)", crashLogs.length],
];
const width = Math.max(...rows.map(([label]) => label.length));
for (const [label, value] of rows) console.log(`${label.padEnd(width)}  ${value}`);
for (const issue of [...readerIssues, ...crashLogs].slice(0, 10)) console.log(`  ${issue}`);
const failed = lostDurable.length + duplicated + mismatched + readerIssues.length + crashLogs.length > 0;
console.log(failed ? "chaos: FAILED" : "chaos: ok");
Deno.exit(failed ? 1 : 0);
