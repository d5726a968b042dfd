// @ts-check
/** Usage: calculations, units, errors and latency over time; engagement; top instruments and average risk;
 *  the compliance report started and downloaded here. All from the public analytics and reports API. */
import * as API from '../api.js';
import { h, mount, field, announce, table } from '../dom.js';
import { t, num, when } from '../i18n.js';
import { showProblem } from '../forms.js';
import { chart } from '../charts.js';

const iso = (/** @type {Date} */ d) => d.toISOString().slice(0, 10);

/** @param {HTMLElement} main @param {any} ctx @param {string[]} _rest @param {any} _opts @param {{all?: boolean}} [o] */
export async function render(main, ctx, _rest, _opts, o = {}) {
  const today = new Date();
  const tomorrow = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() + 1));
  const from = h('input', { type: 'date', name: 'from', id: 'usage-from', value: iso(new Date(tomorrow.getTime() - 30 * 864e5)) });
  const to = h('input', { type: 'date', name: 'to', id: 'usage-to', value: iso(tomorrow) });
  const gran = h('select', { name: 'granularity', id: 'usage-granularity' }, ['hour', 'day', 'week', 'month'].map((g) => h('option', { value: g, selected: g === 'day' }, t('usage.g.' + g))));
  const out = h('div', { id: 'usage-out', 'aria-live': 'polite', 'aria-busy': 'false' });
  const scope = o.all ? 'all' : ctx.brokerId;
  const form = /** @type {HTMLFormElement} */ (h('form', { novalidate: true, class: 'card', id: 'usage-form' },
    h('div', { class: 'row' }, field(t('usage.from'), from), field(t('usage.to'), to, t('usage.toHint')), field(t('usage.granularity'), gran),
      h('div', { class: 'fld' }, h('button', { type: 'submit' }, t('usage.show')))),
    h('div', { class: 'row' }, [7, 30, 90].map((d) => h('button', { type: 'button', class: 'secondary', onclick: () => {
      /** @type {HTMLInputElement} */ (from).value = iso(new Date(tomorrow.getTime() - d * 864e5));
      /** @type {HTMLInputElement} */ (to).value = iso(tomorrow);
      form.requestSubmit();
    } }, t('usage.lastDays', { n: d }))))));
  async function load() {
    const q = new URLSearchParams({ from: /** @type {HTMLInputElement} */ (from).value, to: /** @type {HTMLInputElement} */ (to).value,
      granularity: /** @type {HTMLSelectElement} */ (gran).value });
    out.setAttribute('aria-busy', 'true');
    const base = `/api/v1/brokers/${scope}/analytics`;
    const [u, e, i] = await Promise.all(['usage', 'engagement', 'instruments'].map((k) => API.api('GET', `${base}/${k}?${q}`)));
    out.setAttribute('aria-busy', 'false');
    const bad = [u, e, i].find((x) => !x.ok);
    if (bad) { showProblem(form, bad.problem); mount(out); return; }
    showProblem(form, null);
    const labels = u.data.series.map((/** @type {any} */ p) => p.start);
    const tot = u.data.totals;
    mount(out,
      h('div', { class: 'kpis', id: 'kpis' },
        kpi(t('usage.calculations'), num(tot.calculations), 'kpi-calcs'), kpi(t('usage.units'), num(tot.units)),
        kpi(t('usage.errors'), num(tot.errors)), kpi(t('usage.p95'), tot.latencyMs.p95 === null ? '—' : `${num(tot.latencyMs.p95, 1)} ms`),
        kpi(t('usage.dau'), num(e.data.dau)), kpi(t('usage.wau'), num(e.data.wau)), kpi(t('usage.mau'), num(e.data.mau), 'kpi-mau'),
        kpi(t('usage.avgRisk'), i.data.averageRiskPercent === null ? '—' : `${num(i.data.averageRiskPercent, 2)} %`)),
      h('div', { class: 'grid2' },
        chart({ id: 'chart-calcs', title: t('usage.calcsOverTime'), labels, series: [
          { name: t('usage.calculations'), values: u.data.series.map((/** @type {any} */ p) => p.calculations) },
          { name: t('usage.errors'), values: u.data.series.map((/** @type {any} */ p) => p.errors) }] }),
        chart({ id: 'chart-units', title: t('usage.unitsOverTime'), kind: 'bar', labels, series: [
          { name: t('usage.units'), values: u.data.series.map((/** @type {any} */ p) => p.units) }] }),
        chart({ id: 'chart-latency', title: t('usage.latency'), labels, digits: 1, series: ['p50', 'p95', 'p99'].map((k) => (
          { name: `${k} (ms)`, values: u.data.series.map((/** @type {any} */ p) => p.latencyMs[k]) })) }),
        chart({ id: 'chart-users', title: t('usage.activeUsers'), labels: e.data.series.map((/** @type {any} */ p) => p.start), series: [
          { name: t('usage.active'), values: e.data.series.map((/** @type {any} */ p) => p.activeUsers) },
          { name: t('usage.returning'), values: e.data.series.map((/** @type {any} */ p) => p.returningUsers) },
          { name: t('usage.widgetLoads'), values: e.data.series.map((/** @type {any} */ p) => p.widgetLoads) }] })),
      h('h2', { text: t('usage.topInstruments') }),
      i.data.pairs.length ? table([t('usage.instrument'), t('usage.calculations'), t('usage.avgRisk'), t('usage.units')],
        i.data.pairs.map((/** @type {any} */ p) => [p.instrument, num(p.calculations),
          p.averageRiskPercent === null ? '—' : `${num(p.averageRiskPercent, 2)} %`, num(p.units)]), { numeric: [1, 2, 3], caption: t('usage.topInstruments') })
        : h('p', { class: 'hint', text: t('usage.noInstruments') }),
      h('h2', { text: t('usage.byEndpoint') }),
      table([t('usage.endpoint'), t('usage.calculations'), t('usage.errors'), t('usage.units'), 'p95 (ms)'],
        u.data.endpoints.map((/** @type {any} */ x) => [x.endpoint, num(x.calculations), num(x.errors), num(x.units),
          x.latencyMs.p95 === null ? '—' : num(x.latencyMs.p95, 1)]), { numeric: [1, 2, 3, 4], caption: t('usage.byEndpoint') }));
    out.dataset.loaded = String(Date.now());
    announce(t('usage.loaded'));
  }
  form.addEventListener('submit', (ev) => { ev.preventDefault(); load(); });
  mount(main, h('h1', { text: o.all ? t('platform.usageTitle') : t('usage.title') }), h('p', { class: 'lead', text: t('usage.lead') }), form, out,
    o.all || !ctx.isAdmin ? null : await reports(ctx));
  await load();
}

/** @param {string} k @param {string} v @param {string} [id] */
const kpi = (k, v, id) => h('div', { class: 'kpi', id }, h('div', { class: 'v', text: v }), h('div', { class: 'k', text: k }));

/** The compliance report: requested, followed until complete, downloaded (with the token: fetch, then a file).
 * @param {any} ctx */
async function reports(ctx) {
  const base = `/api/v1/brokers/${ctx.brokerId}/reports`;
  const now = new Date();
  const first = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
  const from = h('input', { type: 'date', name: 'from', id: 'report-from', value: iso(first) });
  const to = h('input', { type: 'date', name: 'to', id: 'report-to', value: iso(now) });
  const list = h('div', { id: 'reports' });
  const form = /** @type {HTMLFormElement} */ (h('form', { novalidate: true, id: 'report-form' },
    h('div', { class: 'row' }, field(t('report.from'), from), field(t('report.to'), to),
      h('div', { class: 'fld' }, h('button', { type: 'submit' }, t('report.start'))))));
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  async function draw() {
    const r = await API.api('GET', base);
    if (!r.ok) { mount(list, h('p', { class: 'banner bad', text: r.problem?.detail || '' })); return; }
    const rows = r.data.map((/** @type {any} */ x) => [`${x.from} – ${x.to}`,
      h('span', { class: x.status === 'complete' ? 'badge ok' : x.status === 'failed' ? 'badge bad' : 'badge', text: t('report.' + x.status) }),
      when(x.requestedAt),
      x.status === 'complete' ? h('div', { class: 'row' }, ['pdf', 'csv'].map((f) => h('button', { type: 'button', class: 'secondary',
        'data-report': x.id, 'data-format': f, 'aria-label': t('report.downloadOne', { format: f.toUpperCase(), from: x.from, to: x.to }),
        onclick: () => download(x, f) }, f.toUpperCase()))) : x.error || '']);
    mount(list, rows.length ? table([t('report.period'), t('common.status'), t('report.requested'), t('report.download')], rows, { caption: t('report.title') })
      : h('p', { class: 'hint', text: t('report.none') }));
    clearTimeout(timer);
    if (r.data.some((/** @type {any} */ x) => x.status === 'queued' || x.status === 'running') && list.isConnected) timer = setTimeout(draw, 1000);
  }
  /** @param {any} x @param {string} f */
  async function download(x, f) {
    const r = await API.api('GET', `${base}/${x.id}/download?format=${f}`);
    if (!r.ok) { announce(r.problem?.detail || t('error.generic')); return; }
    const a = h('a', { href: URL.createObjectURL(r.data), download: `compliance-${x.from}-${x.to}.${f}` });
    document.body.append(a);
    /** @type {HTMLAnchorElement} */ (a).click();
    a.remove();
    announce(t('report.downloaded'));
  }
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const r = await API.api('POST', `${base}/compliance`, { from: /** @type {HTMLInputElement} */ (from).value, to: /** @type {HTMLInputElement} */ (to).value });
    if (!r.ok) { showProblem(form, r.problem); return; }
    showProblem(form, null);
    announce(t('report.started'));
    await draw();
  });
  const section = h('section', { class: 'card', 'aria-labelledby': 'report-h' }, h('h2', { id: 'report-h', text: t('report.title') }),
    h('p', { class: 'hint', text: t('report.lead') }), form, list);
  await draw();
  return section;
}
