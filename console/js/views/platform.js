// @ts-check
/** The platform operator (SUPERADMIN): every broker, its tier, suspension, and platform-wide usage. */
import * as API from '../api.js';
import { h, mount, announce, confirmDialog, table } from '../dom.js';
import { t, when } from '../i18n.js';
import { render as usage } from './usage.js';

const TIERS = ['free', 'standard', 'professional', 'enterprise'];

/** @param {HTMLElement} main @param {any} ctx @param {string[]} rest @param {any} opts */
export async function render(main, ctx, rest, opts) {
  if (rest[0] === 'usage') { await usage(main, ctx, [], opts, { all: true }); return; }
  const r = await API.api('GET', '/api/v1/brokers');
  const out = h('div', { id: 'platform-out', 'aria-live': 'polite' });
  const rows = (r.ok ? r.data : []).filter((/** @type {any} */ b) => b.status !== 'deleted').map((/** @type {any} */ b) => [
    h('span', null, h('strong', { text: b.name }), h('div', { class: 'hint mono', text: b.slug })),
    h('select', { 'aria-label': t('platform.tierOf', { name: b.name }), onchange: async (/** @type {Event} */ e) => {
      const c = await API.api('PATCH', `/api/v1/brokers/${b.id}`, { tier: /** @type {HTMLSelectElement} */ (e.target).value });
      mount(out, h('div', { class: c.ok ? 'banner ok' : 'banner bad', role: 'status', text: c.ok ? t('platform.tierSet', { name: b.name, tier: c.data.tier }) : c.problem?.detail || '' }));
    } }, TIERS.map((x) => h('option', { value: x, selected: x === b.tier }, t('tier.' + x)))),
    h('span', { class: b.status === 'active' ? 'badge ok' : 'badge bad', text: t('status.' + b.status) }),
    when(b.createdAt),
    h('div', { class: 'row' },
      h('button', { type: 'button', class: 'secondary', 'aria-label': t('platform.manageOne', { name: b.name }), onclick: async () => {
        await ctx.manage(b.id); ctx.go('#/settings');
      } }, t('platform.manage')),
      h('button', { type: 'button', class: b.status === 'active' ? 'danger' : 'secondary',
        'aria-label': t(b.status === 'active' ? 'platform.suspendOne' : 'platform.resumeOne', { name: b.name }), onclick: async () => {
          const status = b.status === 'active' ? 'suspended' : 'active';
          if (status === 'suspended') {
            const ok = await confirmDialog({ title: t('platform.suspendTitle'), body: [t('platform.suspendText', { name: b.name })],
              confirm: t('platform.suspend'), cancel: t('common.cancel'), danger: true });
            if (!ok) return;
          }
          const c = await API.api('PATCH', `/api/v1/brokers/${b.id}`, { status });
          if (!c.ok) { mount(out, h('div', { class: 'banner bad', role: 'alert', text: c.problem?.detail || '' })); return; }
          announce(t('common.saved'));
          await render(main, ctx, rest, opts);
        } }, t(b.status === 'active' ? 'platform.suspend' : 'platform.resume')))]);
  mount(main, h('h1', { text: t('platform.title') }), h('p', { class: 'lead', text: t('platform.lead') }),
    h('p', null, h('a', { href: '#/platform/usage', class: 'btn secondary' }, t('platform.usageTitle'))),
    ctx.brokerId !== API.claims?.broker_id ? h('p', { class: 'banner warn' }, t('platform.managing', { name: ctx.broker.name }), ' ',
      h('button', { type: 'button', class: 'link', onclick: async () => { await ctx.manage(API.claims?.broker_id); await render(main, ctx, rest, opts); } }, t('platform.back'))) : null,
    out, r.ok ? table([t('platform.broker'), t('platform.tier'), t('common.status'), t('platform.created'), t('common.actions')], rows, { caption: t('platform.title') })
      : h('div', { class: 'banner bad', text: r.problem?.detail || '' }));
}
