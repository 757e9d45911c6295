/**
 * A real `redis-server` (Debian's) for tests: on a free port on 127.0.0.1, in a temp dir, with
 * append-only persistence (fsync on every write) so that a stop and a restart keep what it had.
 * `redisTest` skips a test where redis-server is missing, except in CI (CI=true), where it fails.
 */
import { freePort } from "../routes/serve/cluster.ts";
import { RedisLink } from "../lib/engine/redis/link.ts";
import { skipping } from "./_skips.ts";
import { until } from "./_wait.ts";

const REDIS = "/usr/bin/redis-server";
export const haveRedis = (() => {
  try {
    return Deno.statSync(REDIS).isFile;
  } catch {
    return false;
  }
})();
const inCI = Deno.env.get("CI") === "true";

export interface RedisServer {
  url: string;
  port: number;
  /** Its process id while it runs. */
  readonly pid: number | undefined;
  /** Stops it (SIGTERM: it saves what it has) and waits. */
  stop(): Promise<void>;
  /** Kills it (SIGKILL): what its append-only file has is what it keeps. */
  kill(): Promise<void>;
  /** Starts it again on the same port and dir (with `args` added to its command line). */
  start(args?: string[]): Promise<void>;
  /** Kills it and starts it again with nothing: a Redis that lost its data. */
  wipe(): Promise<void>;
  /** Stops it and removes its dir. */
  [Symbol.asyncDispose](): Promise<void>;
}

function ready(port: number, ms = 10_000): Promise<void> {
  return until(
    async () => {
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        await conn.write(new TextEncoder().encode("PING\r\n"));
        const buf = new Uint8Array(64);
        const n = await conn.read(buf);
        conn.close();
        // Up: answering, or loading its data (which it says to every command).
        return n !== null && /^(\+PONG|-LOADING)/.test(new TextDecoder().decode(buf.subarray(0, n)));
      } catch {
        return false; // not yet
      }
    },
    ms,
    `redis-server on ${port} to start`,
  );
}

/** `fsync`: when the append-only file is synced (`always`: every write, what the tests use; the
 * bench uses `everysec`, Redis' default for append-only). */
export async function startRedis(options: { fsync?: "always" | "everysec" } = {}): Promise<RedisServer> {
  if (!haveRedis) {
    throw new Error(`${REDIS} is missing: install Debian's redis-server (apt-get install -y redis-server)`);
  }
  const dir = await Deno.makeTempDir({ prefix: "roomcast-redis-" });
  const port = freePort();
  let child: Deno.ChildProcess | undefined;
  const start = async (extra: string[] = []) => {
    child = new Deno.Command(REDIS, {
      args: [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        dir,
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        options.fsync ?? "always",
        "--protected-mode",
        "no",
        ...extra,
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    await ready(port);
  };
  const end = async (signal: Deno.Signal) => {
    if (!child) return;
    const running = child;
    child = undefined;
    try {
      running.kill(signal);
    } catch {
      // already gone
    }
    await running.status;
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get pid() {
      return child?.pid;
    },
    stop: () => end("SIGTERM"),
    kill: () => end("SIGKILL"),
    start,
    async wipe() {
      await end("SIGKILL");
      for await (const entry of Deno.readDir(dir)) await Deno.remove(`${dir}/${entry.name}`, { recursive: true });
      await start();
    },
    async [Symbol.asyncDispose]() {
      await end("SIGKILL");
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** A test that needs Redis: skipped where redis-server is missing, failing in CI. */
export function redisTest(
  name: string,
  fn: (redis: RedisServer) => Promise<void>,
  options: { sanitize?: boolean } = {},
): void {
  if (!haveRedis && !inCI) skipping("redis-server", "apt-get install -y redis-server");
  Deno.test({
    name,
    ignore: !haveRedis && !inCI,
    sanitizeOps: options.sanitize ?? false,
    sanitizeResources: options.sanitize ?? false,
    async fn() {
      await using redis = await startRedis();
      await fn(redis);
    },
  });
}

/** `n` open links to `redis`, one per node (as processes would have); close them when done. */
export async function openLinks(redis: RedisServer, n: number): Promise<RedisLink[]> {
  return await Promise.all(Array.from({ length: n }, async () => {
    const link = new RedisLink({ url: redis.url });
    await link.open();
    return link;
  }));
}
