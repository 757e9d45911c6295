// @ts-check
/**
 * The last 15 minutes, second by second: the overview's `series`, then each tick's `point`, drawn
 * as two charts (messages in and deliveries out per second; p50 and p99 delivery latency in ms),
 * with the latest values in the stat cards, the legends and each chart's accessible name.
 */
import { LineChart, WINDOW_MS } from "./chart.js";
import { byId, setAttr, setText } from "./dom.js";
import { millis, rate } from "./format.js";

/** @typedef {import("./chart.js").Point} Point */

/** At most this many points are kept: the window at one a second. */
const MAX_POINTS = WINDOW_MS / 1000;

/** @param {any} p @returns {p is Point} */
function isPoint(p) {
  return p && typeof p.t === "number" && typeof p.in === "number" && typeof p.out === "number";
}

export class Plot {
  /** @type {Point[]} */
  #points = [];
  #end = 0;
  #frame = 0;
  #throughputSvg = /** @type {SVGSVGElement} */ (/** @type {unknown} */ (byId("chart-throughput")));
  #latencySvg = /** @type {SVGSVGElement} */ (/** @type {unknown} */ (byId("chart-latency")));
  #throughput = new LineChart(this.#throughputSvg, {
    lines: [{ key: "out", className: "series-out", area: true }, { key: "in", className: "series-in" }],
    unit: "per s",
    format: rate,
    floor: 5,
  });
  #latency = new LineChart(this.#latencySvg, {
    lines: [{ key: "p99", className: "series-p99", area: true }, { key: "p50", className: "series-p50" }],
    unit: "ms",
    format: millis,
    floor: 1,
  });
  /** Where each latest figure shows: its stat card, its legend. */
  #figures = {
    in: { stat: byId("stat-in"), legend: byId("legend-in") },
    out: { stat: byId("stat-out"), legend: byId("legend-out") },
    p50: { stat: byId("stat-p50"), legend: byId("legend-p50") },
    p99: { stat: byId("stat-p99"), legend: byId("legend-p99") },
  };

  constructor() {
    // Redrawn at the new width when the layout changes (a rotated phone, a resized window).
    const observer = new ResizeObserver(() => this.#schedule());
    observer.observe(this.#throughputSvg);
    observer.observe(this.#latencySvg);
  }

  /** The whole window at once (the overview's `series`), keeping later points already here.
   * @param {unknown} series @param {number} now */
  replace(series, now) {
    const fresh = Array.isArray(series) ? series.filter(isPoint) : [];
    const last = fresh.at(-1)?.t ?? -Infinity;
    this.#points = [...fresh, ...this.#points.filter((p) => p.t > last)];
    this.#end = Math.max(this.#end, now);
    this.#trim();
    this.#schedule();
  }

  /** One second more (a tick's `point`). @param {unknown} point @param {number} now */
  add(point, now) {
    if (isPoint(point)) {
      const last = this.#points.at(-1);
      if (!last || point.t > last.t) this.#points.push(point);
      else if (point.t === last.t) this.#points[this.#points.length - 1] = point;
    }
    this.#end = Math.max(this.#end, now);
    this.#trim();
    this.#schedule();
  }

  clear() {
    this.#points = [];
    this.#end = 0;
    this.#schedule();
  }

  #trim() {
    const start = this.#end - WINDOW_MS;
    const first = this.#points.findIndex((p) => p.t >= start);
    if (first > 0) this.#points.splice(0, first);
    if (this.#points.length > MAX_POINTS) this.#points.splice(0, this.#points.length - MAX_POINTS);
  }

  /** Draws at the next frame (once, however many points came). */
  #schedule() {
    if (this.#frame) return;
    this.#frame = requestAnimationFrame(() => {
      this.#frame = 0;
      this.#draw();
    });
  }

  #draw() {
    const end = this.#end || Date.now();
    this.#throughput.draw(this.#points, end);
    this.#latency.draw(this.#points, end);
    const last = this.#points.at(-1);
    const figures = {
      in: rate(last?.in),
      out: rate(last?.out),
      p50: millis(last?.p50),
      p99: millis(last?.p99),
    };
    for (const [key, text] of Object.entries(figures)) {
      const { stat, legend } = this.#figures[/** @type {keyof typeof figures} */ (key)];
      setText(stat, text);
      // The legend's latencies carry their unit (the stat cards say it in their label).
      setText(legend, key.startsWith("p") && text !== "–" ? `${text} ms` : text);
    }
    setAttr(
      this.#throughputSvg,
      "aria-label",
      last
        ? `Throughput, last 15 minutes. Latest second: ${figures.in} messages in, ${figures.out} deliveries out.`
        : "Throughput, last 15 minutes: no data yet.",
    );
    const latency = last && (last.p50 !== null || last.p99 !== null)
      ? `Latest second: p50 ${figures.p50} ms, p99 ${figures.p99} ms.`
      : "Latest second: no deliveries.";
    setAttr(this.#latencySvg, "aria-label", `Delivery latency, last 15 minutes. ${last ? latency : "No data yet."}`);
  }
}
