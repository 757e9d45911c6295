/**
 * Issue "hardening", item 3: a `kill -9` under load lost every message of a room that had been
 * answered 201. Numbering resumes above the dead process's reservation (offsets it may have
 * handed out), and retention counted offsets, so the stored messages fell out of the window and
 * the next publish deleted them. Now the offsets a crash loses are recorded as holes and retention
 * counts messages. These tests `kill -9` a real server (main.ts) under HTTP and WebSocket
 * publishing and check, after a restart on the same KV file, every message whose storage was
 * acknowledged: HTTP 201 always, WebSocket acks with `ROOMCAST_SEQUENCER=kv`.
 */
import assert from "node:assert/strict";
import type { Sequencer } from "../../lib/config.ts";
import { isType, TestClient } from "../_client.ts";
import { type MainProcess, startMain, stopMain } from "../_process.ts";
import { breathe, quiet } from "../_wait.ts";

interface Acked {
  id: string;
  offset: number;
  epoch: string;
  /** Whether the acknowledgement promised it is stored. */
  durable: boolean;
}

interface Stored {
  id: string;
  offset: number;
  data: unknown;
}

const ROOM = "crash";

function env(dir: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PORT: "0",
    HOSTNAME: "127.0.0.1",
    ROOMCAST_KV_PATH: `${dir}/rc.kv`,
    ROOMCAST_PUBLISH_RATE: "1000000/1s",
    ...extra,
  };
}

async function post(url: string, data: unknown): Promise<Response> {
  return await fetch(`${url}/api/rooms/${ROOM}/messages`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ data }),
  });
}

/** Every message of the room's history, oldest first, paging forward. */
async function history(url: string): Promise<{ epoch: string; messages: Stored[] }> {
  const messages: Stored[] = [];
  let epoch = "";
  for (let after = 0, pages = 0; pages < 1000; pages++) {
    const response = await fetch(`${url}/api/rooms/${ROOM}/messages?after=${after}&limit=100`);
    assert.equal(response.status, 200, `history after ${after}`);
    const page = await response.json();
    epoch = page.epoch;
    if (page.messages.length === 0) break;
    messages.push(...page.messages);
    after = page.messages.at(-1).offset;
  }
  return { epoch, messages };
}

/** The history is a strictly increasing run of offsets naming distinct messages, and every
 * acknowledged message is in it, at its offset, unless more than `limit` newer messages are kept
 * (retention counts messages). Acks that did not promise storage may be missing (lost by the
 * crash), but their offset never names another message. */
function check(stored: Stored[], acked: Acked[], limit: number): void {
  const offsets = stored.map((m) => m.offset);
  for (let i = 1; i < offsets.length; i++) {
    assert.ok(
      (offsets[i] as number) > (offsets[i - 1] as number),
      `offsets increase: ${offsets[i - 1]}, ${offsets[i]}`,
    );
  }
  assert.equal(new Set(stored.map((m) => m.id)).size, stored.length, "no message is stored twice");
  assert.ok(stored.length <= limit, `${stored.length} messages kept, limit ${limit}`);
  const byOffset = new Map(stored.map((m) => [m.offset, m]));
  let missing = 0;
  for (const ack of acked) {
    const there = byOffset.get(ack.offset);
    if (there) {
      assert.equal(there.id, ack.id, `offset ${ack.offset} names the message acked with it`);
      continue;
    }
    const newer = stored.filter((m) => m.offset > ack.offset).length;
    if (ack.durable && newer < limit) {
      missing++;
      if (missing <= 3) console.error(`durable message ${ack.id} at offset ${ack.offset} is missing (${newer} newer)`);
    }
  }
  assert.equal(missing, 0, `${missing} acknowledged-durable messages are missing`);
}

interface Load {
  httpLoops: number;
  wsPublishers: number;
  /** Pause between one loop's publishes (ms); 0: as fast as answers come. */
  pauseMs: number;
}

/** Publishes from `load.httpLoops` HTTP loops and `load.wsPublishers` WebSocket publishers until
 * `stop` resolves (the server is killed); returns every acknowledgement received. */
async function publish(server: MainProcess, load: Load, wsDurable: boolean, stop: Promise<void>): Promise<Acked[]> {
  const acked: Acked[] = [];
  let stopped = false;
  stop.then(() => stopped = true);
  const pause = () => load.pauseMs > 0 ? breathe(load.pauseMs) : Promise.resolve();
  const http = async (loop: number) => {
    for (let i = 0; i < 5000 && !stopped; i++) {
      try {
        const response = await post(server.url, { loop, i });
        if (response.status !== 201) {
          await response.body?.cancel();
          continue;
        }
        const { id, offset, epoch } = await response.json();
        acked.push({ id, offset, epoch, durable: true });
      } catch {
        return; // the server is gone
      }
      await pause();
    }
  };
  const ws = async (n: number) => {
    const c = await TestClient.json(`${server.url.replace("http", "ws")}/ws?name=p${n}`);
    await c.next(isType("welcome"));
    await c.request({ type: "join", room: ROOM });
    for (let i = 0; i < 5000 && !stopped; i++) {
      c.send({ type: "publish", room: ROOM, data: { ws: n, i }, ref: i });
      try {
        const ack = await c.next((f) => f.ref === i, 2000);
        if (ack.type === "ack") acked.push({ id: ack.id, offset: ack.offset, epoch: ack.epoch, durable: wsDurable });
      } catch {
        break; // the server is gone
      }
      await pause();
    }
    await c.closed.catch(() => {});
  };
  await Promise.all([
    ...Array.from({ length: load.httpLoops }, (_, i) => http(i)),
    ...Array.from({ length: load.wsPublishers }, (_, i) => ws(i)),
  ]);
  return acked;
}

interface Scenario {
  name: string;
  sequencer: Sequencer;
  load: Load;
  loadMs: number;
}

const scenarios: Scenario[] = [
  { name: "flat out", sequencer: "local", load: { httpLoops: 4, wsPublishers: 2, pauseMs: 0 }, loadMs: 1200 },
  { name: "paced", sequencer: "local", load: { httpLoops: 2, wsPublishers: 2, pauseMs: 5 }, loadMs: 1000 },
  { name: "flat out", sequencer: "kv", load: { httpLoops: 4, wsPublishers: 2, pauseMs: 0 }, loadMs: 1200 },
];

for (const { name, sequencer, load, loadMs } of scenarios) {
  Deno.test(`kill -9 under load (${name}, sequencer ${sequencer}): every acknowledged-durable message survives`, async () => {
    const dir = await Deno.makeTempDir();
    const limit = 1000;
    const vars = env(dir, { ROOMCAST_SEQUENCER: sequencer });
    const first = await startMain(vars, { stderr: "piped" });
    // A reader that follows the room, to resume across the crash.
    const reader = await TestClient.json(`${first.url.replace("http", "ws")}/ws?name=reader`);
    await reader.next(isType("welcome"));
    const joined = await reader.request({ type: "join", room: ROOM });
    const killed = Promise.withResolvers<void>();
    const publishing = publish(first, load, sequencer === "kv", killed.promise);
    await quiet(loadMs, "the load runs this long before the kill");
    first.child.kill("SIGKILL");
    await first.child.status;
    killed.resolve();
    const acked = await publishing;
    await first.reader.cancel();
    const seen = reader.unread.filter(isType("message"));
    await reader.closed;
    assert.ok(acked.length > 50, `the load was real: ${acked.length} acks`);
    assert.doesNotMatch(first.stderr(), /Uncaught|unhandled/i);

    const second = await startMain(vars, { stderr: "piped" });
    try {
      const before = await history(second.url);
      assert.equal(before.epoch, joined.epoch, "the epoch survives the crash");
      check(before.messages, acked, limit);

      // The reader resumes from the last message it saw: exactly what it missed, or recovered:false.
      const last = seen.at(-1)?.offset ?? 0;
      const again = await TestClient.json(`${second.url.replace("http", "ws")}/ws?name=reader`);
      await again.next(isType("welcome"));
      const rejoined = await again.request({ type: "join", room: ROOM, since: { epoch: joined.epoch, offset: last } });
      if (rejoined.recovered) {
        const expected = before.messages.filter((m) => m.offset > last).map((m) => m.id);
        const replayed = [];
        for (let i = 0; i < expected.length; i++) replayed.push((await again.next(isType("message"))).id);
        assert.deepEqual(replayed, expected);
      }
      await again.close();

      // Publishing on after the restart deletes nothing that retention keeps.
      const after = await post(second.url, "after the crash");
      assert.equal(after.status, 201);
      const next = await after.json();
      assert.ok(next.offset > Math.max(0, ...acked.map((a) => a.offset)), "numbering continues above the crash");
      const final = await history(second.url);
      check(final.messages, [...acked, { ...next, durable: true }], limit);
      assert.equal(
        final.messages.length,
        Math.min(limit, before.messages.length + 1),
        "the window holds the newest messages up to the limit",
      );
      assert.doesNotMatch(second.stderr(), /Uncaught|unhandled/i);
    } finally {
      await stopMain(second);
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("kill -9 of an idle server: the window still counts messages, ?before= pages, nothing is deleted", async () => {
  const dir = await Deno.makeTempDir();
  const vars = env(dir, { ROOMCAST_HISTORY_LIMIT: "100" });
  const first = await startMain(vars);
  const acked: Acked[] = [];
  for (let i = 0; i < 100; i++) acked.push({ ...(await (await post(first.url, i)).json()), durable: true });
  await stopMain(first, "SIGKILL");

  const second = await startMain(vars);
  try {
    const { messages } = await history(second.url);
    assert.deepEqual(messages.map((m) => m.id), acked.map((a) => a.id), "all 100 are kept after the crash");
    const top = (acked.at(-1) as Acked).offset;
    const back = await (await fetch(`${second.url}/api/rooms/${ROOM}/messages?before=${top + 1}&limit=100`)).json();
    assert.equal(back.messages.length, 100);
    const older = await fetch(`${second.url}/api/rooms/${ROOM}/messages?before=1`);
    assert.equal(older.status, 200);
    assert.deepEqual((await older.json()).messages, []);
    const beyond = await fetch(`${second.url}/api/rooms/${ROOM}/messages?before=${top + 10_000}`);
    assert.equal(beyond.status, 200, "before= above the hole the crash left");
    assert.equal((await beyond.json()).messages.length, 50);

    // One more: the window keeps 100 messages, the oldest goes.
    const next = await (await post(second.url, "next")).json();
    const after = await history(second.url);
    assert.deepEqual(after.messages.map((m) => m.id), [...acked.slice(1).map((a) => a.id), next.id]);
  } finally {
    await stopMain(second);
    await Deno.remove(dir, { recursive: true });
  }
});
