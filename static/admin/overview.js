// @ts-check
/**
 * The service as a whole: connections, rooms and nodes now (from the overview, then every tick),
 * connections by transport, a table of the nodes (isolates and processes), and the state of the
 * proxy backends' circuit breakers (from the overview only).
 */
import { byId, cell, row, setAttr, setText, syncChildren } from "./dom.js";
import { count, duration, transportsText } from "./format.js";

/**
 * @typedef {{ node: string, process: string, connections: number, transports: Record<string, number>,
 *   rooms: number, uptimeS: number, ageMs: number }} NodeInfo
 * @typedef {{ connections: number, transports: Record<string, number>, rooms: number, nodes: NodeInfo[] }} Snapshot
 * @typedef {{ url: boolean, state?: string, calls?: number, failures?: number }} ProxyKind
 */

const PROXY_KINDS = ["connect", "subscribe", "publish"];
const PROXY_STATES = {
  closed: "closed: calls go through",
  open: "open: the backend failed repeatedly, calls are refused",
  "half-open": "half-open: one call is trying",
};

export class Overview {
  #connections = byId("stat-connections");
  #rooms = byId("stat-rooms");
  #nodeCount = byId("stat-nodes");
  #transports = byId("transports");
  #nodes = byId("nodes-body");
  #proxy = byId("proxy");
  #version = byId("version");

  /** @param {Snapshot} s */
  show(s) {
    setText(this.#connections, count(s.connections));
    setText(this.#rooms, count(s.rooms));
    const nodes = Array.isArray(s.nodes) ? s.nodes : [];
    setText(this.#nodeCount, count(nodes.length));
    setText(this.#transports, transportsText(s.transports));
    const sorted = [...nodes].sort((a, b) => `${a.process} ${a.node}`.localeCompare(`${b.process} ${b.node}`));
    syncChildren(this.#nodes, sorted, () => row(7), (tr, n) => {
      setText(cell(tr, 0), n.node);
      setText(cell(tr, 1), n.process);
      setText(cell(tr, 2), count(n.connections));
      setText(cell(tr, 3), transportsText(n.transports));
      setText(cell(tr, 4), count(n.rooms));
      setText(cell(tr, 5), duration(n.uptimeS));
      setText(cell(tr, 6), `${count(n.ageMs)} ms ago`);
      for (const i of [2, 4, 5, 6]) cell(tr, i).classList.add("num");
      cell(tr, 0).classList.add("mono");
    });
  }

  /** @param {Record<string, ProxyKind> | undefined} proxy */
  showProxy(proxy) {
    syncChildren(this.#proxy, PROXY_KINDS, () => {
      const div = document.createElement("div");
      div.className = "proxy-item";
      div.append(document.createElement("dt"), document.createElement("dd"));
      return div;
    }, (div, kind) => {
      const [dt, dd] = /** @type {[HTMLElement, HTMLElement]} */ ([...div.children]);
      const p = proxy?.[kind];
      setText(dt, kind);
      let text = "not set";
      let state = "off";
      if (p?.url) {
        state = p.state ?? "unknown";
        const words = PROXY_STATES[/** @type {keyof typeof PROXY_STATES} */ (state)] ?? state;
        text = `${words} (${count(p.calls ?? 0)} calls, ${count(p.failures ?? 0)} failures)`;
      }
      setText(dd, text);
      setAttr(dd, "data-state", state);
    });
  }

  /** @param {string | undefined} version @param {string | undefined} engine */
  showVersion(version, engine) {
    setText(this.#version, [version && `v${version}`, engine && `store: ${engine}`].filter(Boolean).join(" · "));
  }
}
