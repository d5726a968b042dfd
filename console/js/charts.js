// @ts-check
/** Small SVG charts (no library: a line and a bar chart are a few dozen lines, and a chart library would be
 *  the console's largest file). Colours are CSS variables with light and dark values, series also differ by
 *  dash pattern (not colour alone), and every chart has a table of the same numbers for screen readers
 *  and keyboard users (a <details> under it). */
import { h } from './dom.js';
import { num, day, t } from './i18n.js';

const W = 640, H = 220, L = 48, R = 12, TOP = 12, B = 28;

/** The value axis: a step of 1, 2 or 5 times a power of ten, at most five steps up to the top. A count axis
 *  (`whole`) steps by whole numbers (0, 1, 2 rather than 0, 0.3, 0.5 for a count of 1).
 * @param {number} max @param {boolean} whole
 * @returns {{top: number, step: number, digits: number}} digits: the fraction digits a tick label needs */
export function scale(max, whole) {
  const raw = (max > 0 ? max : 1) / 5;
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  let step = (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  if (whole) step = Math.max(1, Math.round(step));
  const top = Math.max(1, Math.ceil((max > 0 ? max : 1) / step - 1e-9)) * step;
  return { top, step, digits: Math.max(0, -Math.floor(Math.log10(step) + 1e-9)) };
}

/**
 * @param {{id: string, title: string, labels: string[], series: {name: string, values: (number | null)[]}[],
 *   kind?: 'line' | 'bar', unit?: string, digits?: number}} o labels are ISO period starts
 */
export function chart(o) {
  const all = o.series.flatMap((s) => s.values.filter((v) => v !== null)).map(Number);
  const axis = scale(Math.max(0, ...all), (o.digits ?? 0) === 0);
  const top = axis.top;
  const n = Math.max(1, o.labels.length);
  const x = (/** @type {number} */ i) => L + (n === 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (n - 1));
  const y = (/** @type {number} */ v) => TOP + (H - TOP - B) * (1 - v / top);
  const titleId = o.id + '-t', descId = o.id + '-d';
  const parts = [h('title', { id: titleId, text: o.title }),
    h('desc', { id: descId, text: t('usage.chartDesc', { n: o.labels.length }) })];
  for (let k = 0; k * axis.step <= top + axis.step / 2; k++) {
    const v = k * axis.step;
    parts.push(h('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }),
      h('text', { class: 'tick', x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, num(v, axis.digits)));
  }
  const step = Math.max(1, Math.ceil(n / 6));
  o.labels.forEach((l, i) => {
    if (i % step === 0) parts.push(h('text', { x: x(i), y: H - 8, 'text-anchor': 'middle' }, day(l)));
  });
  parts.push(h('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
  if (o.kind === 'bar') {
    const bw = Math.max(2, ((W - L - R) / n) * 0.6);
    o.series[0].values.forEach((v, i) => {
      if (v) parts.push(h('rect', { class: 'b1', x: x(i) - bw / 2, y: y(v), width: bw, height: H - B - y(v) }));
    });
  } else {
    o.series.forEach((s, k) => {
      let d = '';
      s.values.forEach((v, i) => { if (v !== null) d += `${d && s.values[i - 1] !== null ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`; });
      if (d) parts.push(h('path', { class: `s${k + 1}`, d }));
      s.values.forEach((v, i) => { if (v !== null && n <= 62) parts.push(h('circle', { class: `dot${k + 1}`, cx: x(i), cy: y(v), r: 2.5 })); });
    });
  }
  const svg = h('svg', { class: 'chart', id: o.id, viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': `${titleId} ${descId}`,
    'data-points': String(o.series[0].values.filter((v) => v !== null).length) }, parts);
  const legend = o.series.length > 1 || o.kind !== 'bar' ? h('ul', { class: 'legend' },
    o.series.map((s, k) => h('li', null, h('span', { class: `key k${k + 1}`, 'aria-hidden': 'true' }), s.name))) : null;
  const rows = o.labels.map((l, i) => h('tr', null, h('th', { scope: 'row', text: day(l) }),
    o.series.map((s) => h('td', { class: 'num', text: s.values[i] === null ? '—' : num(/** @type {number} */ (s.values[i]), o.digits ?? 0) }))));
  return h('figure', { class: 'card' }, h('figcaption', null, h('h3', { text: o.title })), svg, legend,
    h('details', null, h('summary', { text: t('usage.asTable') }), h('div', { class: 'table-wrap' }, h('table', null,
      h('thead', null, h('tr', null, h('th', { scope: 'col', text: t('usage.period') }), o.series.map((s) => h('th', { scope: 'col', class: 'num', text: s.name })))),
      h('tbody', null, rows)))));
}
