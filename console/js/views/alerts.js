// @ts-check
/** Alerts and webhooks: alert rules, recent alerts, webhook endpoints (the signing secret shown once), and each
 *  endpoint's delivery log with redelivery. */
import * as API from '../api.js';
import { h, mount, field, announce, copy, confirmDialog, table } from '../dom.js';
import { t, when, num } from '../i18n.js';
import { showProblem } from '../forms.js';

const KINDS = ['risk-per-trade', 'total-risk', 'margin-level', 'currency-exposure', 'portfolio-var'];
const EVENTS = ['alert.triggered', 'alert.cleared', 'calculation.flagged'];
/** @type {((slot: HTMLElement) => void) | null} */
let flash = null;

/** @param {HTMLElement} main @param {any} ctx */
export async function render(main, ctx) {
  const base = `/api/v1/brokers/${ctx.brokerId}`;
  const [rules, alerts, endpoints] = await Promise.all([
    API.api('GET', `${base}/alert-rules`), API.api('GET', `${base}/alerts`), API.api('GET', `${base}/webhook-endpoints`)]);
  const out = h('div', { id: 'alerts-out', 'aria-live': 'polite' });
  const again = async () => { await render(main, ctx); };
  /** @param {any} r */
  const fail = (r) => mount(out, h('div', { class: 'banner bad', role: 'alert', text: r.problem?.detail || t('error.generic') }));

  // --- rules
  const kind = h('select', { name: 'kind', id: 'rule-kind' }, KINDS.map((k) => h('option', { value: k }, t('alerts.kind.' + k))));
  const threshold = h('input', { name: 'threshold', id: 'rule-threshold', type: 'number', step: 'any', min: '0', required: true });
  const clear = h('input', { name: 'clearThreshold', type: 'number', step: 'any', min: '0' });
  const ruleForm = /** @type {HTMLFormElement} */ (h('form', { novalidate: true, class: 'card', id: 'rule-form' },
    h('h3', { text: t('alerts.newRule') }), field(t('alerts.kind'), kind), field(t('alerts.threshold'), threshold, t('alerts.thresholdHint')),
    field(t('alerts.clear'), clear, t('alerts.clearHint')), h('button', { type: 'submit' }, t('alerts.addRule'))));
  ruleForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    /** @type {any} */
    const body = { kind: /** @type {HTMLSelectElement} */ (kind).value, threshold: Number(/** @type {HTMLInputElement} */ (threshold).value) };
    const c = /** @type {HTMLInputElement} */ (clear).value;
    if (c !== '') body.clearThreshold = Number(c);
    if (/** @type {HTMLInputElement} */ (threshold).value === '') { showProblem(ruleForm, { status: 422, errors: [{ field: 'threshold', detail: t('alerts.needThreshold') }] }); return; }
    const r = await API.api('POST', `${base}/alert-rules`, body);
    if (!r.ok) { showProblem(ruleForm, r.problem); return; }
    announce(t('common.saved'));
    await again();
  });
  const ruleRows = (rules.ok ? rules.data : []).map((/** @type {any} */ r) => [t('alerts.kind.' + r.kind),
    `${r.direction === 'above' ? '>' : '<'} ${num(r.threshold, 4)} ${r.unit}`, num(r.clearThreshold, 4),
    h('span', { class: r.enabled ? 'badge ok' : 'badge', text: r.enabled ? t('common.on') : t('common.off') }),
    h('div', { class: 'row' },
      h('button', { type: 'button', class: 'secondary', 'aria-label': t(r.enabled ? 'alerts.pauseOne' : 'alerts.resumeOne', { kind: t('alerts.kind.' + r.kind) }),
        onclick: async () => { const x = await API.api('PATCH', `${base}/alert-rules/${r.id}`, { enabled: !r.enabled }); if (x.ok) await again(); else fail(x); } },
      t(r.enabled ? 'alerts.pause' : 'alerts.resume')),
      h('button', { type: 'button', class: 'danger', 'aria-label': t('alerts.deleteOne', { kind: t('alerts.kind.' + r.kind) }), onclick: async () => {
        if (!await confirmDialog({ title: t('alerts.deleteTitle'), body: [t('alerts.deleteText')], confirm: t('common.remove'), cancel: t('common.cancel'), danger: true })) return;
        const x = await API.api('DELETE', `${base}/alert-rules/${r.id}`);
        if (x.ok) await again(); else fail(x);
      } }, t('common.remove')))]);

  // --- endpoints
  const url = h('input', { name: 'url', id: 'endpoint-url', type: 'url', placeholder: 'https://hooks.example.com/forexrisk' });
  const events = h('fieldset', { id: 'endpoint-events' }, h('legend', { text: t('webhooks.events') }),
    EVENTS.map((ev) => field(ev, h('input', { type: 'checkbox', name: 'eventTypes', value: ev, checked: true }))));
  const epForm = /** @type {HTMLFormElement} */ (h('form', { novalidate: true, class: 'card', id: 'endpoint-form' },
    h('h3', { text: t('webhooks.new') }), field(t('webhooks.url'), url, t('webhooks.urlHint')), events,
    h('button', { type: 'submit' }, t('webhooks.add'))));
  epForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = { url: /** @type {HTMLInputElement} */ (url).value.trim(),
      eventTypes: [...epForm.querySelectorAll('input[name=eventTypes]:checked')].map((x) => /** @type {HTMLInputElement} */ (x).value) };
    const r = await API.api('POST', `${base}/webhook-endpoints`, body);
    if (!r.ok) { showProblem(epForm, r.problem); return; }
    flash = (slot) => secretOnce(slot, r.data);
    await again();
  });
  const deliveries = h('div', { id: 'deliveries' });
  const epRows = (endpoints.ok ? endpoints.data : []).map((/** @type {any} */ ep) => [h('span', { class: 'mono', text: ep.url }),
    ep.eventTypes.join(', '),
    h('span', { class: ep.enabled ? 'badge ok' : 'badge bad', text: ep.enabled ? t('common.on') : (ep.disabledReason || t('common.off')) }),
    when(ep.lastSuccessAt),
    h('div', { class: 'row' },
      h('button', { type: 'button', class: 'secondary', 'aria-label': t('webhooks.logOne', { url: ep.url }), onclick: () => log(ep) }, t('webhooks.log')),
      h('button', { type: 'button', class: 'secondary', 'aria-label': t('webhooks.rotateOne', { url: ep.url }), onclick: async () => {
        const x = await API.api('POST', `${base}/webhook-endpoints/${ep.id}/rotate-secret`, {});
        if (!x.ok) { fail(x); return; }
        flash = (slot) => secretOnce(slot, x.data);
        await again();
      } }, t('webhooks.rotate')),
      ep.enabled ? null : h('button', { type: 'button', class: 'secondary', onclick: async () => {
        const x = await API.api('PATCH', `${base}/webhook-endpoints/${ep.id}`, { enabled: true }); if (x.ok) await again(); else fail(x);
      } }, t('webhooks.enable')),
      h('button', { type: 'button', class: 'danger', 'aria-label': t('webhooks.deleteOne', { url: ep.url }), onclick: async () => {
        if (!await confirmDialog({ title: t('webhooks.deleteTitle'), body: [t('webhooks.deleteText', { url: ep.url })], confirm: t('common.remove'), cancel: t('common.cancel'), danger: true })) return;
        const x = await API.api('DELETE', `${base}/webhook-endpoints/${ep.id}`);
        if (x.ok) await again(); else fail(x);
      } }, t('common.remove')))]);
  /** @param {any} ep */
  async function log(ep) {
    const r = await API.api('GET', `${base}/webhook-endpoints/${ep.id}/deliveries`);
    if (!r.ok) { fail(r); return; }
    mount(deliveries, h('h3', { tabindex: '-1', text: t('webhooks.logFor', { url: ep.url }) }),
      r.data.length ? table([t('webhooks.event'), t('common.status'), t('webhooks.attempts'), t('webhooks.response'), t('webhooks.created'), t('common.actions')],
        r.data.map((/** @type {any} */ d) => [d.eventType, h('span', { class: d.status === 'delivered' ? 'badge ok' : ['failed', 'exhausted', 'aborted'].includes(d.status) ? 'badge bad' : 'badge', text: t('webhooks.status.' + d.status) }),
          num(d.attempts), d.lastResponseCode ? String(d.lastResponseCode) : (d.lastError || '—'), when(d.createdAt),
          d.status === 'pending' ? '' : h('button', { type: 'button', class: 'secondary', 'aria-label': t('webhooks.redeliverOne', { id: d.messageId }), onclick: async () => {
            const x = await API.api('POST', `${base}/webhook-endpoints/${ep.id}/deliveries/${d.id}/redeliver`, {});
            if (x.ok) { announce(t('webhooks.redelivered')); await log(ep); } else fail(x);
          } }, t('webhooks.redeliver'))]), { caption: t('webhooks.logFor', { url: ep.url }) })
        : h('p', { class: 'hint', text: t('webhooks.noDeliveries') }));
    /** @type {HTMLElement} */ (deliveries.querySelector('h3')).focus();
  }

  const alertRows = (alerts.ok ? alerts.data : []).slice(0, 50).map((/** @type {any} */ a) => [t('alerts.kind.' + a.kind), a.traderId,
    a.subject || '—', h('span', { class: a.status === 'active' ? 'badge bad' : 'badge', text: t('alerts.status.' + a.status) }),
    a.value === null ? '—' : num(a.value, 4), when(a.triggeredAt)]);

  mount(main, h('h1', { text: t('alerts.title') }), h('p', { class: 'lead', text: t('alerts.lead') }), out,
    h('h2', { text: t('alerts.rules') }),
    ruleRows.length ? table([t('alerts.kind'), t('alerts.threshold'), t('alerts.clear'), t('common.status'), t('common.actions')], ruleRows, { caption: t('alerts.rules') })
      : h('p', { class: 'hint', text: t('alerts.noRules') }), ruleForm,
    h('h2', { text: t('alerts.recent') }),
    alertRows.length ? table([t('alerts.kind'), t('alerts.trader'), t('alerts.subject'), t('common.status'), t('alerts.value'), t('alerts.when')], alertRows, { caption: t('alerts.recent') })
      : h('p', { class: 'hint', text: t('alerts.none') }),
    h('h2', { text: t('webhooks.title') }), h('p', { class: 'hint', text: t('webhooks.lead') }),
    epRows.length ? table([t('webhooks.url'), t('webhooks.events'), t('common.status'), t('webhooks.lastSuccess'), t('common.actions')], epRows, { caption: t('webhooks.title') })
      : h('p', { class: 'hint', text: t('webhooks.noEndpoints') }), deliveries, epForm);
  if (flash) { const f = flash; flash = null; f(out); }
}

/** @param {HTMLElement} slot @param {any} ep */
function secretOnce(slot, ep) {
  mount(slot, h('div', { class: 'banner ok', role: 'alert' }, h('h2', { tabindex: '-1', text: t('webhooks.secretTitle') }),
    h('p', { text: t('webhooks.secretText') }), h('p', { class: 'secret mono', id: 'webhook-secret', text: ep.secret }),
    h('button', { type: 'button', class: 'secondary', onclick: () => copy(ep.secret, t('common.copied')) }, t('common.copy'))));
  /** @type {HTMLElement} */ (slot.querySelector('h2')).focus();
}
