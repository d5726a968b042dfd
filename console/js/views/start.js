// @ts-check
/** Get live: brand, allowed origins, a publishable key, the embed snippet; the widget previewed beside it. */
import * as API from '../api.js';
import { h, mount, field, announce, copy, confirmDialog } from '../dom.js';
import { t } from '../i18n.js';
import { showProblem } from '../forms.js';
import { diff, contrastReport, originAllowed, preview, patchConfig, SNIPPET } from '../config.js';

const STEPS = ['brand', 'origins', 'key', 'snippet'];
/** A publishable key created in this visit (shown once by the API; kept in memory only for the snippet). */
let createdKey = '';

/** @param {HTMLElement} main @param {any} ctx @param {string[]} rest */
export async function render(main, ctx, rest) {
  const step = Math.max(0, STEPS.indexOf(rest[0] || 'brand'));
  const stepper = h('ol', { class: 'steps', 'aria-label': t('start.progress') }, STEPS.map((s, i) =>
    h('li', { class: i < step ? 'done' : null, 'aria-current': i === step ? 'step' : null },
      h('a', { href: `#/start/${s}` }, `${i + 1}. ${t('start.step.' + s)}`))));
  const body = h('div');
  mount(main, h('h1', { text: t('start.title') }), h('p', { class: 'lead', text: t('start.lead') }), stepper, body);
  const next = () => ctx.go(`#/start/${STEPS[Math.min(step + 1, STEPS.length - 1)]}`);
  await [brand, origins, key, snippet][step](body, ctx, next);
}

/** @param {HTMLElement} body @param {any} ctx @param {() => void} next */
async function brand(body, ctx, next) {
  const b = ctx.broker.config.branding || {};
  const colour = h('input', { type: 'color', id: 'brand-colour-picker', value: b.primaryColor || '#1f6feb', 'aria-label': t('brand.picker') });
  const hex = h('input', { name: 'branding.primaryColor', id: 'brand-colour', value: b.primaryColor || '#1f6feb', spellcheck: 'false', maxlength: '7' });
  const logo = h('input', { name: 'branding.logoUrl', type: 'url', value: b.logoUrl || '', placeholder: 'https://' });
  const dark = h('input', { name: 'branding.darkMode', type: 'checkbox', checked: !!b.darkMode });
  const report = h('ul', { id: 'contrast', class: 'hint', 'aria-live': 'polite' });
  const pv = preview(ctx);
  function update() {
    const c = /** @type {HTMLInputElement} */ (hex).value.trim();
    const d = /** @type {HTMLInputElement} */ (dark).checked;
    mount(report, contrastReport(c, d).map((x) => h('li', null, h('span', { class: x.ok ? 'badge ok' : 'badge bad' }, x.ok ? t('common.pass') : t('common.note')), ' ', x.text)));
    if (/^#[0-9a-f]{6}$/i.test(c)) pv.style({ primaryColor: c, theme: d ? 'dark' : 'light' });
  }
  colour.addEventListener('input', () => { /** @type {HTMLInputElement} */ (hex).value = /** @type {HTMLInputElement} */ (colour).value; update(); });
  hex.addEventListener('input', () => {
    const v = /** @type {HTMLInputElement} */ (hex).value.trim();
    if (/^#[0-9a-f]{6}$/i.test(v)) /** @type {HTMLInputElement} */ (colour).value = v.toLowerCase();
    update();
  });
  dark.addEventListener('change', update);
  const form = /** @type {HTMLFormElement} */ (h('form', { novalidate: true, class: 'card', id: 'brand-form' },
    h('div', { class: 'fld' }, h('label', { for: hex.id, text: t('brand.colour') }),
      h('div', { class: 'row' }, colour, h('div', { class: 'grow' }, hex)),
      h('small', { class: 'err', id: 'brand-colour-e' })),
    report,
    field(t('brand.logo'), logo, t('brand.logoHint')),
    field(t('brand.dark'), dark),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, t('start.saveNext')))));
  hex.setAttribute('aria-describedby', 'brand-colour-e contrast');
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const after = { ...b, primaryColor: /** @type {HTMLInputElement} */ (hex).value.trim(),
      darkMode: /** @type {HTMLInputElement} */ (dark).checked };
    const l = /** @type {HTMLInputElement} */ (logo).value.trim();
    if (l) after.logoUrl = l; else delete after.logoUrl;
    const patch = diff({ branding: b }, { branding: after });
    if (patch) {
      const r = await patchConfig(ctx, patch, confirmDialog);
      if (!r) return;
      if (!r.ok) { showProblem(form, r.problem); return; }
      announce(t('common.saved'));
    }
    next();
  });
  mount(body, h('div', { class: 'grid2' }, h('section', { 'aria-label': t('start.step.brand') }, form), pv.el));
  update();
  await pv.load();
}

/** @param {HTMLElement} body @param {any} ctx @param {() => void} next */
async function origins(body, ctx, next) {
  /** @type {string[]} */
  const list = [...(ctx.broker.config.allowedOrigins || [])];
  const ul = h('ul', { id: 'origins', class: 'card' });
  const add = h('input', { name: 'allowedOrigins', id: 'origin-new', type: 'url', placeholder: 'https://www.example.com' });
  const check = h('input', { id: 'origin-check', type: 'url', placeholder: 'https://www.example.com/tools/calculator' });
  const verdict = h('p', { id: 'origin-verdict', role: 'status' });
  function draw() {
    mount(ul, list.length ? list.map((o, i) => h('li', { class: 'row' }, h('span', { class: 'mono', text: o }),
      h('button', { type: 'button', class: 'link', 'aria-label': t('origins.removeOne', { origin: o }),
        onclick: () => { list.splice(i, 1); draw(); } }, t('common.remove'))))
      : h('li', { class: 'banner warn', text: t('origins.none') }));
  }
  const form = /** @type {HTMLFormElement} */ (h('form', { novalidate: true, id: 'origins-form' },
    h('div', { class: 'row' }, h('div', { class: 'grow' }, field(t('origins.add'), add, t('origins.addHint'))),
      h('button', { type: 'button', class: 'secondary', id: 'origin-add', onclick: () => {
        const v = /** @type {HTMLInputElement} */ (add).value.trim();
        let o = '';
        try { o = new URL(v).origin; } catch (e) { /* shown below */ }
        if (!o || o === 'null') {
          showProblem(form, { status: 422, errors: [{ field: 'allowedOrigins', detail: t('origins.bad') }] });
          return;
        }
        if (!list.includes(o)) list.push(o);
        /** @type {HTMLInputElement} */ (add).value = '';
        showProblem(form, null);
        draw();
        announce(t('origins.added', { origin: o }));
      } }, t('common.add'))),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, t('start.saveNext')))));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const patch = diff({ allowedOrigins: ctx.broker.config.allowedOrigins || [] }, { allowedOrigins: list });
    if (patch) {
      const r = await patchConfig(ctx, patch, confirmDialog);
      if (!r) return;
      if (!r.ok) { showProblem(form, r.problem); return; }
      announce(t('common.saved'));
    }
    next();
  });
  const checker = h('form', { class: 'card', novalidate: true, onsubmit: (/** @type {Event} */ e) => {
    e.preventDefault();
    const res = originAllowed(/** @type {HTMLInputElement} */ (check).value.trim(), list);
    if (!res) verdict.textContent = t('origins.checkBad');
    else verdict.textContent = res.ok ? t('origins.checkYes', { origin: res.origin }) : t('origins.checkNo', { origin: res.origin });
    verdict.className = res && res.ok ? 'banner ok' : 'banner bad';
  } }, h('h2', { text: t('origins.checkTitle') }), field(t('origins.checkLabel'), check, t('origins.checkHint')),
  h('button', { type: 'submit', id: 'origin-check-go' }, t('origins.checkGo')), verdict);
  mount(body, h('p', { text: t('origins.lead') }), ul, form, checker);
  draw();
}

/** @param {HTMLElement} body @param {any} ctx @param {() => void} next */
async function key(body, ctx, next) {
  const r = await API.api('GET', `/api/v1/brokers/${ctx.brokerId}/api-keys`);
  const keys = r.ok ? r.data.filter((/** @type {any} */ k) => k.kind === 'publishable' && k.status === 'active') : [];
  const out = h('div', { id: 'new-key' });
  const make = h('button', { type: 'button', id: 'make-pk', onclick: async () => {
    const c = await API.api('POST', `/api/v1/brokers/${ctx.brokerId}/api-keys`, { kind: 'publishable', name: t('start.keyName') });
    if (!c.ok) { mount(out, h('div', { class: 'banner bad', role: 'alert', text: c.problem?.detail || '' })); return; }
    createdKey = c.data.key;
    mount(out, h('div', { class: 'banner ok' }, h('p', { text: t('keys.showOnce') }), h('p', { class: 'secret mono', id: 'pk-value', text: createdKey }),
      h('button', { type: 'button', class: 'secondary', onclick: () => copy(createdKey, t('common.copied')) }, t('common.copy'))));
    announce(t('keys.created'));
  } }, t('start.makeKey'));
  mount(body, h('p', { text: t('start.keyLead') }),
    keys.length ? h('p', null, t('start.keyExisting', { n: keys.length }), ' ',
      h('span', { class: 'mono', text: keys.map((/** @type {any} */ k) => `${k.prefix}…${k.last4}`).join(', ') })) : null,
    h('div', { class: 'actions' }, make, h('button', { type: 'button', class: 'secondary', onclick: next }, t('start.next'))), out);
}

/** @param {HTMLElement} body @param {any} ctx */
async function snippet(body, ctx) {
  const keyText = createdKey || 'fxr_live_pk_…';
  const code = SNIPPET(location.origin, keyText, ctx.broker.slug);
  const pv = preview(ctx);
  mount(body, h('div', { class: 'grid2' },
    h('section', { 'aria-labelledby': 'snip-h' }, h('h2', { id: 'snip-h', text: t('snippet.title') }),
      h('p', { text: t('snippet.lead') }), h('pre', { id: 'snippet', tabindex: '0', 'aria-label': t('snippet.title') }, code),
      createdKey ? null : h('p', { class: 'banner warn', text: t('snippet.noKey') }),
      h('div', { class: 'actions' }, h('button', { type: 'button', id: 'copy-snippet', onclick: async () => {
        const ok = await copy(code, t('snippet.copied'));
        if (!ok) announce(t('common.copyFailed'));
      } }, t('snippet.copy')), h('a', { class: 'btn secondary', href: '#/usage' }, t('snippet.toUsage'))),
      h('p', { class: 'hint', text: t('snippet.origins', { n: (ctx.broker.config.allowedOrigins || []).length }) })),
    pv.el));
  await pv.load();
}
