/**
 * Starts the real server (routes/serve/server.ts) on 127.0.0.1 with an ephemeral port, for
 * integration tests, and connects clients to it.
 */
import type { Clock } from "../lib/clock.ts";
import { type Config, configWith, type LimitsConfig } from "../lib/config.ts";
import { type RunningServer, startServer } from "../routes/serve/server.ts";
import { type RunningCluster, startCluster } from "../routes/serve/cluster.ts";
import { type Frame, TestClient } from "./_client.ts";

export interface TestServerOptions extends Partial<Omit<Config, "limits">> {
  limits?: Partial<LimitsConfig>;
  clock?: Clock;
  /** Use Deno KV (at `kvPath`, default `:memory:`) instead of the memory store. @default false */
  kv?: boolean;
  heartbeat?: boolean;
}

export interface TestServer extends RunningServer {
  ws(path?: string): string;
  /** A JSON client on `/ws` that has received its `welcome`. */
  client(query?: string): Promise<TestClient<Frame>>;
  /** A JSON client that has joined `room` (its `joined` frame is consumed). */
  joined(room: string, query?: string): Promise<TestClient<Frame>>;
  fetch(path: string, init?: RequestInit): Promise<Response>;
}

export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const { clock, kv = false, heartbeat, ...overrides } = options;
  // No leave grace unless a test asks: most tests expect a closed connection's leave at once.
  const config = configWith({ port: 0, hostname: "127.0.0.1", kvPath: ":memory:", leaveGraceMs: 0, ...overrides });
  const server = await startServer({
    config,
    memory: !kv,
    ...(clock ? { clock } : {}),
    ...(heartbeat === undefined ? {} : { heartbeat }),
  });
  const ws = (path = "/ws") => server.url.replace(/^http/, "ws") + path;
  const client = async (query = "") => {
    const c = await TestClient.json(ws(`/ws${query}`));
    c.welcome = await c.next((f) => f.type === "welcome");
    return c;
  };
  return {
    ...server,
    ws,
    client,
    async joined(room, query = "") {
      const c = await client(query);
      const reply = await c.request({ type: "join", room });
      if (reply.type !== "joined") throw new Error(`join failed: ${JSON.stringify(reply)}`);
      return c;
    },
    fetch: (path, init) => fetch(server.url + path, init),
  };
}

export function postJson(server: TestServer, path: string, body: unknown, headers: Record<string, string> = {}) {
  return server.fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** Two servers that share one set of rooms as two processes would: on one Redis (`redisUrl`), or
 * as Deno Deploy instances on one KV file (in a fresh directory). Drained (and the KV removed) on
 * dispose. */
export async function twoServers(
  shared: { redisUrl: string } | "kv",
  options: TestServerOptions = {},
): Promise<{ servers: [TestServer, TestServer] } & AsyncDisposable> {
  const dir = shared === "kv" ? await Deno.makeTempDir() : undefined;
  const both: TestServerOptions = shared === "kv"
    ? { ...options, kv: true, kvPath: `${dir}/shared.kv`, sequencer: "kv" }
    : { ...options, kv: true, redisUrl: shared.redisUrl };
  const one = await startTestServer(both);
  const two = await startTestServer(both).catch(async (error) => {
    await one.drain();
    throw error;
  });
  return {
    servers: [one, two],
    async [Symbol.asyncDispose]() {
      await one.drain();
      await two.drain();
      if (dir) await Deno.remove(dir, { recursive: true });
    },
  };
}

/** A process of two isolates (`ROOMCAST_WORKERS=2`) on 127.0.0.1, history in memory and the
 * per-address limits off, with `overrides`. */
export function twoWorkers(overrides: Partial<Omit<Config, "limits">> = {}): Promise<RunningCluster> {
  return startCluster({
    config: configWith({
      port: 0,
      hostname: "127.0.0.1",
      workers: 2,
      kvPath: ":memory:",
      connectBurst: 0,
      maxConnectionsPerIp: 0,
      ...overrides,
    }),
    memory: true,
  });
}
