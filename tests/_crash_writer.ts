/**
 * A process that uses the local sequencer and dies like a crash: it stores `durable` messages in
 * room "c" (waiting for each commit), then has `lost` more numbered (as if delivered) and exits at
 * once, before they are committed. Prints `{"offsets":[…]}`, every offset it handed out.
 * Usage: deno run -A --unstable-kv tests/_crash_writer.ts <kv path> <durable> <lost>
 */
import { ManualClock } from "../lib/clock.ts";
import { openKvStore } from "../lib/engine/kv/open.ts";
import type { NewMessage } from "../lib/protocol.ts";

const [path = "", durable = "0", lost = "0"] = Deno.args;
const clock = new ManualClock();
const store = await openKvStore(path, { historyLimit: 1000, historyTtlMs: undefined, clock, sequencer: "local" });
const message = (i: number): NewMessage => ({
  type: "message",
  room: "c",
  id: `crash-${i}`,
  from: { id: "w", name: "Writer" },
  data: i,
  ts: clock.now(),
});
const offsets: number[] = [];
for (let i = 1; i <= Number(durable); i++) {
  const stored = Promise.withResolvers<void>();
  const m = (await store.append(message(i), (error) => error ? stored.reject(error) : stored.resolve())).message;
  await stored.promise;
  offsets.push(m.offset);
}
for (let i = 1; i <= Number(lost); i++) offsets.push((await store.append(message(1000 + i))).message.offset);
console.log(JSON.stringify({ offsets }));
Deno.exit(0);
