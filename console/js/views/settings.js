// @ts-check
/** Branding and settings: every config field; the change is shown as the merge patch it sends, confirmed
 *  (twice when it would take the widget offline), and errors land beside the field at fault. */
import { h, mount, field, announce, confirmDialog } from '../dom.js';
import { t } from '../i18n.js';
import { showProblem, clearErrors } from '../forms.js';
import { diff, contrastReport, preview, patchConfig } from '../config.js';

const LOCALES = ['en', 'de', 'es', 'fr', 'it', 'pt', 'ja', 'zh', 'ar'];
const FEATURES = ['portfolio', 'projections', 'advancedScenarios', 'correlationAnalysis'];

/** @param {HTMLElement} main @param {any} ctx */
export async function render(main, ctx) {
  const c = ctx.broker.config;
  const b = c.branding || {};
  /** @param {string} name @param {any} value @param {Record<string, any>} [extra] */
  const input = (name, value, extra = {}) => h('input', { name, value: value ?? '', ...extra });
  /** @param {string} name @param {[string, string][]} options @param {any} value */
  const select = (name, options, value) => h('select', { name }, options.map(([v, l]) => h('option', { value: v, selected: v === (value ?? '') }, l)));
  const colour = input('branding.primaryColor', b.primaryColor, { maxlength: '7', spellcheck: 'false' });
  const dark = input('branding.darkMode', '', { type: 'checkbox', checked: !!b.darkMode });
  const report = h('ul', { class: 'hint', 'aria-live': 'polite', id: 'settings-contrast' });
  const overrides = h('textarea', { name: 'instrumentOverrides', spellcheck: 'false', rows: '6' },
    JSON.stringify(c.instrumentOverrides || {}, null, 2));
  const form = /** @type {HTMLFormElement} */ (h('form', { novalidate: true, id: 'settings-form' },
    h('fieldset', null, h('legend', { text: t('settings.branding') }),
      field(t('brand.colour'), colour, t('brand.colourHint')), report,
      field(t('brand.logo'), input('branding.logoUrl', b.logoUrl, { type: 'url', placeholder: 'https://' }), t('brand.logoHint')),
      field(t('settings.font'), input('branding.fontFamily', b.fontFamily), t('settings.fontHint')),
      field(t('settings.fontSheet'), input('branding.fontStylesheet', b.fontStylesheet, { type: 'url' }), t('settings.fontSheetHint')),
      field(t('brand.dark'), dark)),
    h('fieldset', null, h('legend', { text: t('settings.behaviour') }),
      field(t('settings.locale'), select('locale', LOCALES.map((l) => [l, new Intl.DisplayNames([l], { type: 'language' }).of(l) || l]), c.locale)),
      ...FEATURES.map((f) => field(t('feature.' + f), input('features.' + f, '', { type: 'checkbox', checked: !!(c.features || {})[f] }))),
      field(t('settings.fullPage'), input('fullPage', '', { type: 'checkbox', checked: !!c.fullPage }), t('settings.fullPageHint'))),
    h('fieldset', null, h('legend', { text: t('settings.risk') }),
      field(t('settings.maxLeverage'), input('maxLeverage', c.maxLeverage, { type: 'number', min: '1', max: '2000', step: 'any' }), t('settings.maxLeverageHint')),
      field(t('settings.jurisdiction'), select('jurisdiction', [['', t('settings.none')], ['esma', 'ESMA'], ['fca', 'FCA'], ['asic', 'ASIC'], ['nfa', 'NFA']], c.jurisdiction)),
      field(t('settings.lotRounding'), select('rounding.lotRounding', [['down', t('settings.down')], ['nearest', t('settings.nearest')]], (c.rounding || {}).lotRounding)),
      field(t('settings.minLot'), select('rounding.minLotPolicy', [['raise', t('settings.raise')], ['refuse', t('settings.refuse')]], (c.rounding || {}).minLotPolicy)),
      field(t('settings.overrides'), overrides, t('settings.overridesHint'))),
    h('fieldset', null, h('legend', { text: t('settings.origins') }),
      field(t('settings.originsList'), h('textarea', { name: 'allowedOrigins', rows: '4', spellcheck: 'false' }, (c.allowedOrigins || []).join('\n')), t('settings.originsHint'))),
    h('div', { class: 'actions' }, h('button', { type: 'submit', id: 'review' }, t('settings.review')))));
  const pv = preview(ctx);
  const upd = () => {
    const v = /** @type {HTMLInputElement} */ (colour).value.trim(), d = /** @type {HTMLInputElement} */ (dark).checked;
    mount(report, contrastReport(v, d).map((x) => h('li', null, h('span', { class: x.ok ? 'badge ok' : 'badge bad' }, x.ok ? t('common.pass') : t('common.note')), ' ', x.text)));
    if (/^#[0-9a-f]{6}$/i.test(v)) pv.style({ primaryColor: v, theme: d ? 'dark' : 'light' });
  };
  colour.addEventListener('input', upd);
  dark.addEventListener('change', upd);

  /** The edited config: the saved one with the form's fields laid over it (unknown keys kept as they are). */
  function edited() {
    const after = JSON.parse(JSON.stringify(c));
    for (const el of /** @type {any} */ (form.elements)) {
      if (!el.name) continue;
      const path = el.name.split('.');
      let v = el.type === 'checkbox' ? el.checked : el.value.trim();
      if (el.name === 'maxLeverage') v = v === '' ? undefined : Number(v);
      else if (el.name === 'allowedOrigins') v = v.split(/\s+/).filter(Boolean);
      else if (el.name === 'instrumentOverrides') {
        try { v = v ? JSON.parse(v) : {}; } catch (e) { throw { field: 'instrumentOverrides', detail: t('settings.badJson') }; }
      } else if (v === '' && el.type !== 'checkbox') v = undefined;
      let o = after;
      for (const p of path.slice(0, -1)) o = o[p] = o[p] || {};
      if (v === undefined) delete o[path[path.length - 1]]; else o[path[path.length - 1]] = v;
    }
    return after;
  }
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    let patch;
    try { patch = diff(c, edited()); } catch (err) { showProblem(form, { status: 422, errors: [/** @type {any} */ (err)] }); return; }
    if (!patch) { announce(t('settings.nothing')); return; }
    const ok = await confirmDialog({ title: t('settings.confirmTitle'),
      body: [t('settings.confirmText'), h('pre', { id: 'patch-preview', tabindex: '0' }, JSON.stringify(patch, null, 2))],
      confirm: t('settings.apply'), cancel: t('common.cancel') });
    if (!ok) return;
    const r = await patchConfig(ctx, patch, confirmDialog);
    if (!r) return;
    if (!r.ok) { showProblem(form, r.problem); return; }
    announce(t('common.saved'));
    await render(main, ctx);
  });
  mount(main, h('h1', { text: t('settings.title') }), h('p', { class: 'lead', text: t('settings.lead') }),
    h('div', { class: 'grid2' }, h('div', { class: 'card' }, form), pv.el));
  upd();
  await pv.load();
}
