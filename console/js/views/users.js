// @ts-check
/** Users and roles: invite by email (an invitation link, single use), change a role, disable, reset MFA. */
import * as API from '../api.js';
import { h, mount, field, announce, copy, confirmDialog, table } from '../dom.js';
import { t, when } from '../i18n.js';
import { showProblem } from '../forms.js';

const ROLES = ['BROKER_ADMIN', 'BROKER_USER', 'END_USER'];

/** Shown once the list is drawn again (an invitation link). @type {((slot: HTMLElement) => void) | null} */
let flash = null;

/** @param {HTMLElement} slot @param {string} addr @param {any} inv @param {string} mail */
function showInvite(slot, addr, inv, mail) {
  mount(slot, h('div', { class: 'banner ok', role: 'alert' }, h('p', { text: t('users.invited', { email: addr, when: when(inv.expiresAt) }) }),
    h('p', { class: 'secret mono', id: 'invite-url', text: inv.url }),
    h('div', { class: 'actions' }, h('a', { class: 'btn', href: mail, id: 'invite-mail' }, t('users.sendMail')),
      h('button', { type: 'button', class: 'secondary', onclick: () => copy(inv.url, t('common.copied')) }, t('users.copyLink')))));
}

/** @param {HTMLElement} main @param {any} ctx */
export async function render(main, ctx) {
  const r = await API.api('GET', `/api/v1/brokers/${ctx.brokerId}/users`);
  const out = h('div', { id: 'user-out', 'aria-live': 'polite' });
  const email = h('input', { name: 'email', type: 'email', id: 'invite-email', autocomplete: 'off', required: true });
  const role = h('select', { name: 'role', id: 'invite-role' }, ROLES.map((x) => h('option', { value: x, selected: x === 'BROKER_USER' }, t('role.' + x))));
  const form = /** @type {HTMLFormElement} */ (h('form', { novalidate: true, class: 'card', id: 'invite-form' },
    h('h2', { text: t('users.invite') }), h('p', { class: 'hint', text: t('users.inviteHint') }),
    field(t('users.email'), email), field(t('users.role'), role), h('button', { type: 'submit' }, t('users.inviteGo'))));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const addr = /** @type {HTMLInputElement} */ (email).value.trim();
    const c = await API.api('POST', `/api/v1/brokers/${ctx.brokerId}/users`, { email: addr, role: /** @type {HTMLSelectElement} */ (role).value });
    if (!c.ok) { showProblem(form, c.problem); return; }
    const inv = await API.api('POST', `/api/v1/users/${c.data.id}/invitation`);
    const mail = inv.ok ? `mailto:${encodeURIComponent(addr)}?subject=${encodeURIComponent(t('users.mailSubject', { broker: ctx.broker.name }))}` +
      `&body=${encodeURIComponent(t('users.mailBody', { url: inv.data.url }))}` : '';
    flash = inv.ok ? (slot) => showInvite(slot, addr, inv.data, mail)
      : (slot) => mount(slot, h('div', { class: 'banner bad', role: 'alert', text: inv.problem?.detail || '' }));
    await render(main, ctx);
    announce(t('users.invitedShort', { email: addr }));
  });
  const me = API.claims?.sub;
  const rows = (r.ok ? r.data : []).map((/** @type {any} */ u) => {
    const self = u.id === me;
    const roleSel = h('select', { 'aria-label': t('users.roleOf', { email: u.email }), disabled: self || u.role === 'SUPERADMIN',
      onchange: async (/** @type {Event} */ e) => {
        const c = await API.api('PATCH', `/api/v1/users/${u.id}`, { role: /** @type {HTMLSelectElement} */ (e.target).value });
        if (!c.ok) mount(out, h('div', { class: 'banner bad', role: 'alert', text: c.problem?.detail || '' }));
        else announce(t('users.roleChanged', { email: u.email }));
      } }, [...ROLES, ...(ROLES.includes(u.role) ? [] : [u.role])].map((x) => h('option', { value: x, selected: x === u.role }, t('role.' + x))));
    const acts = self ? h('span', { class: 'hint', text: t('users.you') }) : h('div', { class: 'row' },
      h('button', { type: 'button', class: u.status === 'active' ? 'danger' : 'secondary', 'aria-label': t(u.status === 'active' ? 'users.disableOne' : 'users.enableOne', { email: u.email }),
        onclick: () => setStatus(u, u.status === 'active' ? 'disabled' : 'active') }, t(u.status === 'active' ? 'users.disable' : 'users.enable')),
      u.mfaEnabled ? h('button', { type: 'button', class: 'secondary', 'aria-label': t('users.resetMfaOne', { email: u.email }), onclick: () => resetMfa(u) }, t('users.resetMfa')) : null,
      !u.lastLoginAt && !u.sso && u.status === 'active' ? h('button', { type: 'button', class: 'secondary', 'aria-label': t('users.reinviteOne', { email: u.email }), onclick: async () => {
        const inv = await API.api('POST', `/api/v1/users/${u.id}/invitation`);
        if (inv.ok) showInvite(out, u.email, inv.data, `mailto:${encodeURIComponent(u.email)}?body=${encodeURIComponent(t('users.mailBody', { url: inv.data.url }))}`);
        else mount(out, h('div', { class: 'banner bad', role: 'alert', text: inv.problem?.detail || '' }));
      } }, t('users.reinvite')) : null);
    return [h('span', { class: 'mono', text: u.email }), roleSel,
      h('span', { class: u.status === 'active' ? 'badge ok' : 'badge bad', text: t('status.' + u.status) }),
      u.mfaEnabled ? t('common.yes') : t('common.no'), when(u.lastLoginAt), acts];
  });
  /** @param {any} u @param {string} status */
  async function setStatus(u, status) {
    if (status === 'disabled') {
      const ok = await confirmDialog({ title: t('users.disableTitle'), body: [t('users.disableText', { email: u.email })],
        confirm: t('users.disable'), cancel: t('common.cancel'), danger: true });
      if (!ok) return;
    }
    const c = await API.api('PATCH', `/api/v1/users/${u.id}`, { status });
    if (!c.ok) { mount(out, h('div', { class: 'banner bad', role: 'alert', text: c.problem?.detail || '' })); return; }
    await render(main, ctx);
    announce(t('common.saved'));
  }
  /** @param {any} u */
  async function resetMfa(u) {
    const ok = await confirmDialog({ title: t('users.resetMfaTitle'), body: [t('users.resetMfaText', { email: u.email })],
      confirm: t('users.resetMfa'), cancel: t('common.cancel'), danger: true });
    if (!ok) return;
    const c = await API.api('POST', `/api/v1/users/${u.id}/mfa/reset`);
    if (!c.ok) { mount(out, h('div', { class: 'banner bad', role: 'alert', text: c.problem?.detail || '' })); return; }
    await render(main, ctx);
    announce(t('users.mfaReset', { email: u.email }));
  }
  mount(main, h('h1', { text: t('users.title') }), h('p', { class: 'lead', text: t('users.lead') }), out,
    r.ok ? table([t('users.email'), t('users.role'), t('common.status'), t('users.mfa'), t('users.lastLogin'), t('common.actions')], rows, { caption: t('users.title') })
      : h('div', { class: 'banner bad', text: r.problem?.detail || '' }), form);
  if (flash) { const f = flash; flash = null; f(out); }
}
