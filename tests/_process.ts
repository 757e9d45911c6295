/**
 * Child processes that print "listening on http://host:port" once they serve (main.ts, and the
 * bench's reference servers): read their stdout up to that line. Used by tests and `deno task bench`.
 */

/** Reads `reader` until a "listening on http://…" line; returns the URL. Throws if the process
 * ends first or `timeoutMs` passes, with what it printed. */
export async function listeningUrl(
  reader: ReadableStreamDefaultReader<string>,
  what: string,
  timeoutMs = 30_000,
): Promise<string> {
  const pattern = /listening on (http:\/\/[^\s:]+:\d+)/;
  const deadline = Date.now() + timeoutMs;
  let out = "";
  while (!pattern.test(out)) {
    if (Date.now() > deadline) throw new Error(`${what} did not start: ${out}`);
    const { value, done } = await reader.read();
    if (done) throw new Error(`${what} exited: ${out}`);
    out += value;
  }
  return pattern.exec(out)?.[1] as string;
}

export interface MainProcess {
  child: Deno.ChildProcess;
  /** Its stdout after the "listening on" line. */
  reader: ReadableStreamDefaultReader<string>;
  url: string;
  /** Everything it wrote to stderr so far (when started with `stderr: "piped"`). */
  stderr(): string;
}

/** Runs main.ts with `env` and waits for its "listening on" line: with every permission, or
 * (`task`) through `deno task start` itself, with the permissions the task grants. `ulimit` runs it
 * under that file-descriptor limit (soft and hard), `softUlimit` under that soft limit only
 * (through `sh`). */
export async function startMain(
  env: Record<string, string>,
  options: {
    ulimit?: number;
    softUlimit?: number;
    stderr?: "inherit" | "piped";
    noFlags?: boolean;
    task?: boolean;
  } = {},
): Promise<MainProcess> {
  const main = new URL("../main.ts", import.meta.url).pathname;
  // `noFlags`: as Deno Deploy runs it, with no --unstable-* flag (deno.json lists what it uses).
  const flags = options.noFlags ? [] : ["--unstable-kv", "--unstable-net"];
  const deno = options.task ? [Deno.execPath(), "task", "start"] : [Deno.execPath(), "run", ...flags, "-A", main];
  const stderr = options.stderr ?? "inherit";
  // The project's folder, where `deno task` finds deno.json.
  const cwd = new URL("../", import.meta.url).pathname;
  const limit = options.ulimit !== undefined
    ? `ulimit -n ${options.ulimit}`
    : options.softUlimit !== undefined
    ? `ulimit -Sn ${options.softUlimit}`
    : undefined;
  const command = limit === undefined
    ? new Deno.Command(deno[0] as string, { args: deno.slice(1), env, stdout: "piped", stderr, cwd })
    : new Deno.Command("sh", {
      args: ["-c", `${limit} && exec "$@"`, "sh", ...deno],
      env,
      cwd,
      stdout: "piped",
      stderr,
    });
  const child = command.spawn();
  let errors = "";
  if (stderr === "piped") {
    child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({ write: (text) => void (errors += text) }),
    ).catch(() => {});
  }
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  return { child, reader, url: await listeningUrl(reader, "main.ts"), stderr: () => errors };
}

/** Ends a `startMain` process with `signal` and waits for it; its exit status. */
export async function stopMain(main: MainProcess, signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
  try {
    main.child.kill(signal);
  } catch {
    // Gone already.
  }
  const status = await main.child.status;
  await main.reader.cancel().catch(() => {});
  return status;
}
