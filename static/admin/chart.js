// @ts-check
/**
 * A time-series line chart in plain SVG: the last 15 minutes, one `<path>` per line, grid lines
 * and labels on round numbers and clock times. The SVG's coordinates are its size in CSS pixels
 * (its `viewBox` follows the element's width), so text is never stretched; colours and dashes
 * come from CSS classes, so both themes restyle it without redrawing. No library, no inline
 * style: the page's CSP allows neither, and a few paths a second need none.
 */
import { niceCeiling } from "./format.js";

const SVG_NS = "http://www.w3.org/2000/svg";
/** The window the chart shows. */
export const WINDOW_MS = 15 * 60 * 1000;
const HEIGHT = 200;
const MARGIN = { top: 22, right: 14, bottom: 24, left: 48 };
/** Two points further apart than this are not joined (the stream was down in between). */
const GAP_MS = 2500;

/**
 * @typedef {{ t: number, in: number, out: number, p50: number | null, p99: number | null }} Point
 * @typedef {{ key: "in" | "out" | "p50" | "p99", className: string, area?: boolean }} Line
 *   `area`: the line is drawn over a filled area down to zero (the larger of a chart's two series,
 *   so that the two read apart without relying on colour).
 */

/**
 * @template {keyof SVGElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, string | number>} [attributes]
 * @returns {SVGElementTagNameMap[K]}
 */
function svgEl(tag, attributes = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

/** `HH:MM` in local time. @param {number} ms */
function hhmm(ms) {
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

export class LineChart {
  #svg;
  #lines;
  #unit;
  #format;
  #floor;
  #grid = svgEl("g", { class: "chart-grid" });
  #labels = svgEl("g", { class: "chart-labels" });
  /** @type {Map<string, SVGPathElement>} */
  #paths = new Map();
  /** @type {Map<string, SVGPathElement>} */
  #areas = new Map();
  #empty = svgEl("text", { class: "chart-empty", "text-anchor": "middle" });

  /**
   * @param {SVGSVGElement} svg
   * @param {{ lines: Line[], unit: string, format: (n: number) => string, floor: number }} options
   *   `unit`: the y axis's title; `floor`: the smallest top of the y axis (so that an idle service
   *   does not draw noise full height).
   */
  constructor(svg, options) {
    this.#svg = svg;
    this.#lines = options.lines;
    this.#unit = options.unit;
    this.#format = options.format;
    this.#floor = options.floor;
    this.#empty.textContent = "Waiting for data…";
    svg.replaceChildren(this.#grid, this.#labels);
    for (const line of this.#lines) {
      if (!line.area) continue;
      const area = svgEl("path", { class: `series-area ${line.className}` });
      this.#areas.set(line.key, area);
      svg.append(area);
    }
    for (const line of this.#lines) {
      const path = svgEl("path", { class: `series ${line.className}`, fill: "none", "stroke-linejoin": "round" });
      this.#paths.set(line.key, path);
      svg.append(path);
    }
    svg.append(this.#empty);
  }

  /**
   * Draws `points` (oldest first), the window ending at `end` (the server's time).
   * @param {Point[]} points
   * @param {number} end
   */
  draw(points, end) {
    const width = Math.max(260, Math.round(this.#svg.getBoundingClientRect().width || 600));
    this.#svg.setAttribute("viewBox", `0 0 ${width} ${HEIGHT}`);
    const start = end - WINDOW_MS;
    const visible = points.filter((p) => p.t >= start && p.t <= end);
    const plotW = width - MARGIN.left - MARGIN.right;
    const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
    let max = 0;
    for (const p of visible) {
      for (const { key } of this.#lines) {
        const v = p[key];
        if (typeof v === "number" && v > max) max = v;
      }
    }
    const top = niceCeiling(max, this.#floor);
    const x = (/** @type {number} */ t) => MARGIN.left + ((t - start) / WINDOW_MS) * plotW;
    const y = (/** @type {number} */ v) => MARGIN.top + plotH - (v / top) * plotH;

    // Grid and y labels: five lines on round numbers, the unit above them.
    const grid = [];
    const labels = [];
    for (let i = 0; i <= 4; i++) {
      const value = (top * i) / 4;
      const gy = y(value).toFixed(1);
      grid.push(svgEl("line", { x1: MARGIN.left, x2: width - MARGIN.right, y1: gy, y2: gy }));
      const label = svgEl("text", { x: MARGIN.left - 6, y: gy, "text-anchor": "end", "dominant-baseline": "middle" });
      label.textContent = this.#format(value);
      labels.push(label);
    }
    const unit = svgEl("text", { x: MARGIN.left - 6, y: 10, "text-anchor": "end", class: "chart-unit" });
    unit.textContent = this.#unit;
    labels.push(unit);
    // x labels: clock times on whole minutes, spaced for the width.
    const stepMin = [1, 2, 3, 5, 15].find((m) => (m * 60_000 / WINDOW_MS) * plotW >= 72) ?? 15;
    const step = stepMin * 60_000;
    for (let t = Math.ceil(start / step) * step; t <= end; t += step) {
      const gx = x(t).toFixed(1);
      grid.push(svgEl("line", { x1: gx, x2: gx, y1: MARGIN.top, y2: MARGIN.top + plotH, class: "chart-vgrid" }));
      const label = svgEl("text", { x: gx, y: HEIGHT - 6, "text-anchor": "middle" });
      label.textContent = hhmm(t);
      labels.push(label);
    }
    grid.push(svgEl("line", {
      x1: MARGIN.left,
      x2: width - MARGIN.right,
      y1: MARGIN.top + plotH,
      y2: MARGIN.top + plotH,
      class: "chart-axis",
    }));
    this.#grid.replaceChildren(...grid);
    this.#labels.replaceChildren(...labels);

    // The lines: broken where a value is missing or the stream was down.
    const base = (MARGIN.top + plotH).toFixed(1);
    for (const { key } of this.#lines) {
      /** @type {string[][]} */
      const segments = [];
      let previous = -Infinity;
      /** @type {string[] | null} */
      let segment = null;
      for (const p of visible) {
        const v = p[key];
        if (typeof v !== "number" || p.t - previous > GAP_MS) segment = null;
        previous = p.t;
        if (typeof v !== "number") continue;
        if (!segment) segments.push(segment = []);
        segment.push(`${x(p.t).toFixed(1)} ${y(v).toFixed(1)}`);
      }
      // A lone point is a short dash, so that it shows.
      const d = segments.map((s) => `M${s.join("L")}${s.length === 1 ? "h0.5" : ""}`).join("");
      this.#paths.get(key)?.setAttribute("d", d || "M0 0");
      const area = segments.map((s) => {
        const first = s[0]?.split(" ")[0];
        const last = s.at(-1)?.split(" ")[0];
        return `M${first} ${base}L${s.join("L")}L${last} ${base}Z`;
      }).join("");
      this.#areas.get(key)?.setAttribute("d", area || "M0 0");
    }
    this.#empty.setAttribute("x", String(MARGIN.left + plotW / 2));
    this.#empty.setAttribute("y", String(MARGIN.top + plotH / 2));
    this.#empty.setAttribute("visibility", visible.length ? "hidden" : "visible");
  }
}
