/** What /proc says of a process (Linux): its CPU time and resident memory. */

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
