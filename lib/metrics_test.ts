import assert from "node:assert/strict";
import { Counter, gatherMetricsTexts, Histogram, mergeMetricsTexts } from "./metrics.ts";

Deno.test("mergeMetricsTexts: series summed by name and labels, the process's memory the largest, families once", () => {
  const texts = [0, 1].map((i) => {
    const errors = new Counter("roomcast_errors_total", "Errors", "code");
    errors.incLabel("bad_request", 2 + i);
    if (i === 1) errors.incLabel("forbidden");
    const latency = new Histogram("roomcast_store_append_seconds", "Latency", [0.01, 0.1]);
    latency.observe(0.005 * (i + 1));
    latency.observe(0.05);
    return `# roomcast: isolate ${i}\n` + errors.render() + latency.render() +
      `# HELP roomcast_process_resident_bytes RSS\n# TYPE roomcast_process_resident_bytes gauge\n` +
      `roomcast_process_resident_bytes ${1000 + i}\n`;
  });
  assert.equal(
    mergeMetricsTexts(texts),
    [
      "# roomcast: isolate 0",
      "# roomcast: isolate 1",
      "# HELP roomcast_errors_total Errors",
      "# TYPE roomcast_errors_total counter",
      'roomcast_errors_total{code="bad_request"} 5',
      'roomcast_errors_total{code="forbidden"} 1',
      "# HELP roomcast_store_append_seconds Latency",
      "# TYPE roomcast_store_append_seconds histogram",
      'roomcast_store_append_seconds_bucket{le="0.01"} 2',
      'roomcast_store_append_seconds_bucket{le="0.1"} 4',
      'roomcast_store_append_seconds_bucket{le="+Inf"} 4',
      "roomcast_store_append_seconds_sum 0.115",
      "roomcast_store_append_seconds_count 4",
      "# HELP roomcast_process_resident_bytes RSS",
      "# TYPE roomcast_process_resident_bytes gauge",
      "roomcast_process_resident_bytes 1001",
      "",
    ].join("\n"),
  );
});

Deno.test("mergeMetricsTexts: one text comes back as it was; garbage lines are dropped", () => {
  const one = new Counter("roomcast_deliveries_total", "Frames sent");
  one.inc(7);
  assert.equal(mergeMetricsTexts([one.render()]), one.render());
  assert.equal(mergeMetricsTexts(["not a metric line\n{}\n", one.render()]), one.render());
});

Deno.test("gatherMetricsTexts: a Worker that hangs or fails is named and left out, the others still count", async () => {
  const text = (connections: number) => `# TYPE roomcast_connections gauge\nroomcast_connections ${connections}\n`;
  const started = performance.now();
  const merged = await gatherMetricsTexts(text(1), [
    { name: "w1", text: () => Promise.resolve(text(2)) },
    // Never answers (a Worker whose event loop is stuck).
    { name: "w2", text: () => new Promise<string>(() => {}) },
    { name: "w3", text: () => Promise.reject(new Error("closed\nfor good")) },
  ], 50);
  const waited = performance.now() - started;
  assert.ok(waited >= 45 && waited < 1000, `waited ${waited} ms for the stuck Worker, not longer`);
  assert.match(merged, /^roomcast_connections 3$/m, "the coordinator's and w1's figures are summed");
  assert.match(merged, /^# roomcast: worker w2 did not answer$/m);
  assert.match(merged, /^# roomcast: worker w3 did not answer \(Error: closed for good\)$/m);
});
