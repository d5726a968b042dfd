// @ts-check
/** Broker-config helpers shared by the guided start and the settings: JSON merge patches (RFC 7396),
 *  the WCAG contrast check, the origin check, and the live widget preview. */
import * as API from './api.js';
import { h } from './dom.js';
import { t } from './i18n.js';

/** The merge patch that turns `before` into `after` (null deletes a key; arrays are replaced whole).
 * @param {any} before @param {any} after @returns {any} undefined when nothing changed */
export function diff(before, after) {
  const isObj = (/** @type {any} */ v) => v && typeof v === 'object' && !Array.isArray(v);
  if (!isObj(before) || !isObj(after)) return JSON.stringify(before) === JSON.stringify(after) ? undefined : after;
  /** @type {Record<string, any>} */
  const out = {};
  for (const k of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (!(k in after)) { out[k] = null; continue; }
    if (!(k in before)) { out[k] = after[k]; continue; }
    const d = diff(before[k], after[k]);
    if (d !== undefined) out[k] = d;
  }
  return Object.keys(out).length ? out : undefined;
}

/** Would this patch leave the widget with no allowed page? @param {any} config @param {any} patch */
export function takesOffline(config, patch) {
  if (!patch || !('allowedOrigins' in patch)) return false;
  const before = config.allowedOrigins || [];
  const after = patch.allowedOrigins || [];
  return before.length > 0 && after.length === 0;
}

/** Send a merge patch, after a confirmation when it takes the widget offline.
 * @param {any} ctx @param {any} patch @param {(o: any) => Promise<boolean>} confirm */
export async function patchConfig(ctx, patch, confirm) {
  if (takesOffline(ctx.broker.config, patch)) {
    const ok = await confirm({ title: t('config.offlineTitle'), body: [t('config.offlineText')],
      confirm: t('config.offlineConfirm'), cancel: t('common.cancel'), danger: true });
    if (!ok) return null;
  }
  const r = await API.api('PATCH', `/api/v1/brokers/${ctx.brokerId}/config`, patch, { contentType: 'application/merge-patch+json' });
  if (r.ok) ctx.broker = r.data;
  return r;
}

/** @param {string} hex */
function lum(hex) {
  const c = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255)
    .map((v) => (v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
  return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
}
/** WCAG 2 contrast ratio. @param {string} a @param {string} b */
export function contrast(a, b) {
  const x = lum(a), y = lum(b);
  return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05);
}

/** What the widget will do with this colour, in words (it is the widget's own rule, app.js applyTheme).
 * @param {string} colour @param {boolean} dark */
export function contrastReport(colour, dark) {
  if (!/^#[0-9a-f]{6}$/i.test(colour)) return [{ ok: false, text: t('brand.badColour') }];
  const bg = dark ? '#0f141a' : '#ffffff';
  const onWhite = contrast(colour, '#ffffff'), onBg = contrast(colour, bg);
  const r = (/** @type {number} */ x) => x.toFixed(1);
  return [
    onWhite >= 4.5 ? { ok: true, text: t('brand.textOk', { ratio: r(onWhite) }) }
      : { ok: false, text: t('brand.textDark', { ratio: r(onWhite) }) },
    onBg >= 3 ? { ok: true, text: t('brand.uiOk', { ratio: r(onBg) }) }
      : { ok: false, text: t('brand.uiLow', { ratio: r(onBg) }) },
  ];
}

/** Is the page's origin on the list? The widget's own rule: exact origin, lower case, no trailing slash.
 * @param {string} pageUrl @param {string[]} origins @returns {{ok: boolean, origin: string} | null} */
export function originAllowed(pageUrl, origins) {
  let u;
  try { u = new URL(pageUrl); } catch (e) { return null; }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return null;
  const origin = u.origin.toLowerCase();
  return { ok: origins.map((o) => o.replace(/\/$/, '').toLowerCase()).includes(origin), origin };
}

/** The widget itself, in the broker's saved config, restyled live (the widget's `setTheme` message).
 * @param {any} ctx */
export function preview(ctx) {
  const box = h('div', { class: 'preview', id: 'preview' });
  const note = h('p', { class: 'hint', id: 'preview-note', text: t('preview.note') });
  /** @type {HTMLIFrameElement | null} */
  let frame = null;
  let ready = false;
  /** @type {any} */
  let pending = null;
  function send() {
    if (!frame || !ready || !pending || !frame.contentWindow) return;
    frame.contentWindow.postMessage({ fxr: 1, type: 'setTheme', wid: 'preview', payload: pending }, location.origin);
  }
  window.addEventListener('message', (e) => {
    if (!frame || e.source !== frame.contentWindow || e.origin !== location.origin) return;
    const m = e.data;
    if (m && m.fxr === 1 && m.type === 'ready') { ready = true; box.dataset.ready = '1'; send(); }
    if (m && m.fxr === 1 && m.type === 'resize' && m.payload && m.payload.height) {
      frame.setAttribute('height', String(Math.min(900, Math.max(300, m.payload.height))));
    }
  });
  async function load() {
    ready = false;
    delete box.dataset.ready;
    const r = await API.api('POST', `/api/v1/brokers/${ctx.brokerId}/widget/preview`);
    if (!r.ok) {
      box.replaceChildren(h('p', { class: 'banner warn', text: r.problem?.detail || t('error.generic') }));
      return;
    }
    frame = /** @type {HTMLIFrameElement} */ (h('iframe', {
      src: r.data.frameUrl + '&wid=preview', title: t('preview.title'),
      sandbox: 'allow-scripts allow-same-origin allow-forms', allow: '',
    }));
    box.replaceChildren(frame);
  }
  return {
    el: h('section', { 'aria-labelledby': 'preview-h' }, h('h2', { id: 'preview-h', text: t('preview.heading') }), note, box),
    load,
    /** @param {{primaryColor?: string, theme?: string}} o */
    style(o) { pending = { ...(pending || {}), ...o }; send(); },
  };
}

export const SNIPPET = (/** @type {string} */ base, /** @type {string} */ key, /** @type {string} */ slug) =>
  `<script src="${base}/widget.js" data-key="${key}" async></script>\n<div id="risk-calculator" data-broker="${slug}"></div>`;
