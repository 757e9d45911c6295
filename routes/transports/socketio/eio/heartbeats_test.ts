import assert from "node:assert/strict";
import { type Beat, type Beating, Heartbeats } from "./heartbeats.ts";

/** A session that records its beats and keeps one deadline per kind, as EngineSocket does. */
class Session implements Beating {
  readonly dues = new Map<Beat, number>();
  readonly beats: [string, Beat, number][] = [];
  constructor(readonly name: string, readonly started: number) {}
  beatDue(beat: Beat): number | undefined {
    return this.dues.get(beat);
  }
  onBeat(beat: Beat): void {
    this.dues.delete(beat);
    this.beats.push([this.name, beat, performance.now() - this.started]);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("Heartbeats: each deadline fires once, in time; set again or cleared, the old one never does", async () => {
  const heartbeats = new Heartbeats({ pingInterval: 60, pingTimeout: 30 });
  try {
    const start = performance.now();
    const [a, b, c, d] = ["a", "b", "c", "d"].map((name) => new Session(name, start)) as [
      Session,
      Session,
      Session,
      Session,
    ];
    a.dues.set("ping", heartbeats.set(a, "ping"));
    await sleep(10);
    b.dues.set("ping", heartbeats.set(b, "ping"));
    c.dues.set("ping", heartbeats.set(c, "ping"));
    d.dues.set("expect", heartbeats.set(d, "expect"));
    await sleep(20);
    // b's ping set again (a pong came): its first deadline passes without a beat.
    b.dues.set("ping", heartbeats.set(b, "ping"));
    // c's cleared (the session closed).
    c.dues.delete("ping");
    await sleep(150);
    assert.equal(a.beats.length, 1);
    assert.equal(b.beats.length, 1);
    assert.equal(c.beats.length, 0);
    assert.deepEqual(d.beats.map(([, beat]) => beat), ["expect"]);
    const at = (s: Session) => s.beats[0]?.[2] as number;
    assert.ok(at(a) >= 59 && at(a) < 59 + 40, `a at ${at(a)} ms`);
    assert.ok(at(b) >= 89, `b at ${at(b)} ms: its second deadline, not its first`);
    assert.ok(at(d) >= 99, `d at ${at(d)} ms: pingInterval + pingTimeout after it was set`);
    // A pong deadline, after a ping: its own queue's delay.
    const e = new Session("e", performance.now());
    e.dues.set("pong", heartbeats.set(e, "pong"));
    await sleep(80);
    assert.ok((e.beats[0]?.[2] ?? 0) >= 29);
  } finally {
    heartbeats.stop();
  }
});

Deno.test("Heartbeats: thousands of sessions, a few timers; stop ends them", async () => {
  const heartbeats = new Heartbeats({ pingInterval: 20, pingTimeout: 20 });
  const start = performance.now();
  const sessions = Array.from({ length: 5000 }, (_, i) => new Session(`s${i}`, start));
  for (const s of sessions) s.dues.set("ping", heartbeats.set(s, "ping"));
  await sleep(80);
  assert.equal(sessions.filter((s) => s.beats.length === 1).length, 5000);
  for (const s of sessions) s.dues.set("pong", heartbeats.set(s, "pong"));
  heartbeats.stop();
  await sleep(60);
  assert.equal(sessions.filter((s) => s.beats.length === 2).length, 0, "nothing fires after stop");
});
