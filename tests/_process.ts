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
