/** What /proc says of a process (Linux): its CPU time and resident memory; running the load
 * generator (bench/loadgen.ts) as a process of its own; and starting a server process. */
import type { Result, Spec } from "./loadgen.ts";
import { listeningUrl } from "../tests/_process.ts";

/** CPU time (ms) of process `pid` so far, every thread (so every Worker): utime + stime, in clock
 * ticks of 10 ms. */
export function cpuMs(pid: number | "self"): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Resident memory (KiB) of process `pid`. */
export function rssKb(pid: number | "self"): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

/** Runs bench/loadgen.ts on `spec` in its own process (file-descriptor limit raised) and returns its
 * result line. */
export async function runLoad(spec: Spec): Promise<Result> {
  const output = await new Deno.Command("sh", {
    args: [
      "-c",
      'ulimit -Sn $(ulimit -Hn) 2>/dev/null; exec "$@"',
      "sh",
      Deno.execPath(),
      "run",
      "-A",
      new URL("./loadgen.ts", import.meta.url).pathname,
      JSON.stringify(spec),
    ],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const text = new TextDecoder().decode(output.stdout).trim().split("\n").at(-1) ?? "";
  if (!output.success || !text.startsWith("{")) throw new Error(`load generator failed (${output.code}): ${text}`);
  return JSON.parse(text);
}

/** Spawns `command` with the file-descriptor limit raised to the hard limit, waits for its
 * "listening on" line and keeps draining its stdout (a full pipe would block it). */
export async function spawnListening(
  command: string[],
  env: Record<string, string>,
  what: string,
  stderr: "inherit" | "null",
): Promise<{ child: Deno.ChildProcess; url: string }> {
  const child = new Deno.Command("sh", {
    args: ["-c", 'ulimit -Sn $(ulimit -Hn) 2>/dev/null; exec "$@"', "sh", ...command],
    env,
    stdout: "piped",
    stderr,
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const url = await listeningUrl(reader, what);
  (async () => {
    while (!(await reader.read()).done) { /* discard */ }
  })().catch(() => {});
  return { child, url };
}
