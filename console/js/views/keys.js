// @ts-check
/** API keys: create with scopes (the key shown once), rotate with an overlap, revoke. */
import * as API from '../api.js';
import { h, mount, field, announce, copy, confirmDialog, table } from '../dom.js';
import { t, when } from '../i18n.js';
import { showProblem } from '../forms.js';

const SCOPES = ['calc:run', 'calculations:read', 'brokers:read', 'brokers:write', 'users:read', 'users:write',
  'keys:manage', 'audit:read', 'analytics:read'];

/** What to show once the list is drawn again (a new key), given the new page's slot. @type {((slot: HTMLElement) => void) | null} */
let flash = null;

/** @param {HTMLElement} slot @param {string} title @param {any} data */
function showOnce(slot, title, data) {
  mount(slot, h('div', { class: 'banner ok', role: 'alert' }, h('h2', { text: title, tabindex: '-1' }), h('p', { text: t('keys.showOnce') }),
    h('p', { class: 'secret mono', id: 'key-value', text: data.key }),
    data.previousKeyExpiresAt ? h('p', { text: t('keys.overlapUntil', { when: when(data.previousKeyExpiresAt) }) }) : null,
    h('button', { type: 'button', class: 'secondary', onclick: () => copy(data.key, t('common.copied')) }, t('common.copy'))));
  /** @type {HTMLElement} */ (slot.querySelector('h2')).focus();
}

/** @param {HTMLElement} main @param {any} ctx */
export async function render(main, ctx) {
  const base = `/api/v1/brokers/${ctx.brokerId}/api-keys`;
  const r = await API.api('GET', base);
  const shown = h('div', { id: 'key-shown', 'aria-live': 'polite' });
  const kind = h('select', { name: 'kind', id: 'key-kind' }, h('option', { value: 'secret' }, t('keys.secret')), h('option', { value: 'publishable' }, t('keys.publishable')));
  const name = h('input', { name: 'name', id: 'key-name', maxlength: '100' });
  const scopes = h('fieldset', { id: 'key-scopes' }, h('legend', { text: t('keys.scopes') }),
    h('p', { class: 'hint', text: t('keys.scopesHint') }),
    SCOPES.map((s) => field(s, h('input', { type: 'checkbox', name: 'scope', value: s, checked: true }))));
  kind.addEventListener('change', () => { scopes.hidden = /** @type {HTMLSelectElement} */ (kind).value !== 'secret'; });
  const form = /** @type {HTMLFormElement} */ (h('form', { novalidate: true, class: 'card', id: 'key-form' },
    h('h2', { text: t('keys.create') }), field(t('keys.kind'), kind), field(t('keys.name'), name), scopes,
    h('input', { type: 'hidden', name: 'scopes' }),
    h('button', { type: 'submit' }, t('keys.createGo'))));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const k = /** @type {HTMLSelectElement} */ (kind).value;
    /** @type {any} */
    const body = { kind: k, name: /** @type {HTMLInputElement} */ (name).value.trim() || null };
    if (k === 'secret') body.scopes = [...form.querySelectorAll('input[name=scope]:checked')].map((x) => /** @type {HTMLInputElement} */ (x).value);
    const c = await API.api('POST', base, body);
    if (!c.ok) { showProblem(form, c.problem); return; }
    flash = (slot) => showOnce(slot, t('keys.createdTitle'), c.data);
    await render(main, ctx);
    announce(t('keys.created'));
  });
  const rows = (r.ok ? r.data : []).map((/** @type {any} */ k) => [
    h('span', null, h('span', { class: 'mono', text: `${k.prefix}…${k.last4}` }), k.name ? h('div', { class: 'hint', text: k.name }) : null),
    t('keys.' + k.kind), h('span', { class: k.status === 'active' ? 'badge ok' : 'badge bad', text: t('status.' + k.status) }),
    k.kind === 'secret' ? k.scopes.join(', ') : 'calc:run', when(k.lastUsedAt), k.expiresAt ? when(k.expiresAt) : '—',
    k.status === 'active' ? h('div', { class: 'row' },
      k.expiresAt ? null : h('button', { type: 'button', class: 'secondary', 'aria-label': t('keys.rotateOne', { key: k.prefix + '…' + k.last4 }),
        onclick: () => rotate(k) }, t('keys.rotate')),
      h('button', { type: 'button', class: 'danger', 'aria-label': t('keys.revokeOne', { key: k.prefix + '…' + k.last4 }),
        onclick: () => revoke(k) }, t('keys.revoke'))) : '']);
  /** @param {any} k */
  async function rotate(k) {
    const hours = h('input', { type: 'number', id: 'overlap', name: 'overlapHours', value: '24', min: '0', max: '720' });
    const ok = await confirmDialog({ title: t('keys.rotateTitle'), body: [t('keys.rotateText'), field(t('keys.overlap'), hours)],
      confirm: t('keys.rotate'), cancel: t('common.cancel') });
    if (!ok) return;
    const c = await API.api('POST', `${base}/${k.id}/rotate`, { overlapHours: Number(/** @type {HTMLInputElement} */ (hours).value || 24) });
    if (!c.ok) { mount(shown, h('div', { class: 'banner bad', role: 'alert', text: c.problem?.detail || '' })); return; }
    flash = (slot) => showOnce(slot, t('keys.rotatedTitle'), c.data);
    await render(main, ctx);
  }
  /** @param {any} k */
  async function revoke(k) {
    const ok = await confirmDialog({ title: t('keys.revokeTitle'), body: [t('keys.revokeText', { key: `${k.prefix}…${k.last4}` })],
      confirm: t('keys.revoke'), cancel: t('common.cancel'), danger: true });
    if (!ok) return;
    const c = await API.api('DELETE', `${base}/${k.id}`);
    if (!c.ok) { mount(shown, h('div', { class: 'banner bad', role: 'alert', text: c.problem?.detail || '' })); return; }
    await render(main, ctx);
    announce(t('keys.revoked'));
  }
  mount(main, h('h1', { text: t('keys.title') }), h('p', { class: 'lead', text: t('keys.lead') }), shown,
    r.ok ? table([t('keys.key'), t('keys.kind'), t('common.status'), t('keys.scopes'), t('keys.lastUsed'), t('keys.expires'), t('common.actions')], rows, { caption: t('keys.title') })
      : h('div', { class: 'banner bad', text: r.problem?.detail || '' }),
    form);
  if (flash) { const f = flash; flash = null; f(shown); }
}
