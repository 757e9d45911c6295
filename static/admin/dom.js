// @ts-check
/**
 * The dashboard's DOM helpers: finding elements, building them from text (never from HTML), and
 * writing text only when it changes (so a live region is not re-announced every second and a
 * redraw does not churn the page). Untrusted text (room and user names, message data) only ever
 * goes through `textContent` or an attribute.
 */

/** The element with `id`, or an error naming it. @param {string} id */
export function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`Missing #${id}`);
  return el;
}

/**
 * An element with a class and, optionally, text.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {string} [className]
 * @param {string} [text]
 * @returns {HTMLElementTagNameMap[K]}
 */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A `type="button"` button with a class and text. @param {string} className @param {string} text */
export function button(className, text) {
  const b = el("button", className, text);
  b.type = "button";
  return b;
}

/** Sets `node`'s text when it differs from what it shows. @param {Node} node @param {string} text */
export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/** Sets (or, with null, removes) an attribute when it differs. @param {Element} node @param {string} name
 * @param {string | null} value */
export function setAttr(node, name, value) {
  if (value === null) {
    if (node.hasAttribute(name)) node.removeAttribute(name);
  } else if (node.getAttribute(name) !== value) node.setAttribute(name, value);
}

/** Shows `text` in `node` (a status or error line), hidden when empty. @param {HTMLElement} node
 * @param {string} text */
export function showLine(node, text) {
  setText(node, text);
  node.hidden = !text;
}

/** A `<time>` element showing `HH:MM:SS` (local), the full date as its title. @param {number} ms */
export function timeEl(ms, className = "time") {
  const when = new Date(ms);
  const t = el("time", className, clockSeconds(when));
  t.dateTime = when.toISOString();
  t.title = when.toLocaleString();
  return t;
}

/** `HH:MM:SS` in local time. @param {Date} date */
export function clockSeconds(date) {
  const pad = (/** @type {number} */ n) => String(n).padStart(2, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/**
 * Makes `parent` hold one child per item, reusing the children it has (so focus inside a row
 * survives a refresh): `create` makes a child, `update` fills it with an item.
 * @template T
 * @template {Element} E
 * @param {Element} parent
 * @param {readonly T[]} items
 * @param {() => E} create
 * @param {(child: E, item: T, index: number) => void} update
 */
export function syncChildren(parent, items, create, update) {
  while (parent.children.length > items.length) parent.lastElementChild?.remove();
  items.forEach((item, index) => {
    let child = /** @type {E | undefined} */ (parent.children[index]);
    if (!child) {
      child = create();
      parent.append(child);
    }
    update(child, item, index);
  });
}

/** A table row of `n` empty cells. @param {number} n */
export function row(n) {
  const tr = el("tr");
  for (let i = 0; i < n; i++) tr.append(el("td"));
  return tr;
}

/** The `index`th cell of a row. @param {Element} tr @param {number} index */
export function cell(tr, index) {
  return /** @type {HTMLTableCellElement} */ (tr.children[index]);
}
