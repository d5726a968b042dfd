// @ts-check
/** DOM helpers. Every page is built with createElement and text nodes, never innerHTML: whatever an API
 *  answer contains (a broker's name, an email) is text, so it cannot become markup. */

/**
 * @param {string} tag
 * @param {Record<string, any> | null} [props] attributes; `on<event>` functions become listeners;
 *   `text` sets textContent; false/null/undefined attributes are left out
 * @param {...(Node | string | number | null | undefined | false | Array<any>)} children
 * @returns {HTMLElement}
 */
export function h(tag, props, ...children) {
  const svg = ['svg', 'g', 'path', 'line', 'rect', 'text', 'circle', 'polyline', 'title', 'desc'].includes(tag);
  const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = String(v);
    else if (k === 'value' && 'value' in el) /** @type {any} */ (el).value = v;
    else if (k === 'checked' && 'checked' in el) /** @type {any} */ (el).checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return /** @type {HTMLElement} */ (el);
}

/** @param {Element} el @param {any[]} children */
function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** @param {string} id */
export const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** Replace an element's children. @param {Element} el @param {...any} children */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** Tell screen readers (polite live region). @param {string} message */
export function announce(message) {
  const s = $('status');
  s.textContent = '';
  setTimeout(() => { s.textContent = message; }, 30);
}

/** A unique id for label/aria links. */
let counter = 0;
export const uid = (prefix = 'f') => `${prefix}-${++counter}`;

/**
 * A labelled field with its error slot (problem+json errors land in the slot whose data-field matches).
 * @param {string} label
 * @param {HTMLElement} input needs a `name` (the API field, dotted) for errors to find it
 * @param {string} [hint]
 */
export function field(label, input, hint) {
  const id = input.id || (input.id = uid());
  const errId = id + '-e', hintId = hint ? id + '-h' : '';
  input.setAttribute('aria-describedby', [hintId, errId].filter(Boolean).join(' '));
  const inline = input.getAttribute('type') === 'checkbox';
  return h('div', { class: inline ? 'fld inline' : 'fld' },
    inline ? input : null,
    h('label', { for: id, text: label }),
    inline ? null : input,
    hint ? h('small', { class: 'hint', id: hintId, text: hint }) : null,
    h('small', { class: 'err', id: errId, 'data-error-for': input.getAttribute('name') || '' }));
}

/** Copy text with the Clipboard API, announce the result. @param {string} text @param {string} done */
export async function copy(text, done) {
  try {
    await navigator.clipboard.writeText(text);
    announce(done);
    return true;
  } catch (e) {
    return false;
  }
}

/**
 * A modal confirmation (native <dialog>: focus moves in and is kept there, Escape cancels).
 * @param {{title: string, body: (string | Node)[], confirm: string, cancel: string, danger?: boolean}} o
 * @returns {Promise<boolean>}
 */
export function confirmDialog(o) {
  return new Promise((resolve) => {
    const titleId = uid('dlg');
    const dlg = /** @type {HTMLDialogElement} */ (h('dialog', { 'aria-labelledby': titleId },
      h('h2', { id: titleId, text: o.title }),
      ...o.body.map((b) => (typeof b === 'string' ? h('p', { text: b }) : b)),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: o.danger ? 'danger' : '', 'data-ok': '', onclick: () => close(true) }, o.confirm),
        h('button', { type: 'button', class: 'secondary', onclick: () => close(false) }, o.cancel))));
    const opener = /** @type {HTMLElement | null} */ (document.activeElement);
    /** @param {boolean} v */
    function close(v) { dlg.close(); dlg.remove(); if (opener) opener.focus(); resolve(v); }
    dlg.addEventListener('cancel', (e) => { e.preventDefault(); close(false); });
    document.body.append(dlg);
    dlg.showModal();
  });
}

/** A table that turns into labelled cards on narrow screens.
 * @param {string[]} heads @param {any[][]} rows @param {{numeric?: number[], caption?: string}} [o] */
export function table(heads, rows, o = {}) {
  const num = new Set(o.numeric || []);
  return h('div', { class: 'table-wrap' }, h('table', { class: 'stack' },
    o.caption ? h('caption', { class: 'sr-only', text: o.caption }) : null,
    h('thead', null, h('tr', null, heads.map((x, i) => h('th', { scope: 'col', class: num.has(i) ? 'num' : null, text: x })))),
    h('tbody', null, rows.map((r) => h('tr', null, r.map((c, i) =>
      h('td', { class: num.has(i) ? 'num' : null, 'data-label': heads[i] }, c)))))));
}
