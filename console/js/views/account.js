// @ts-check
/** Your account and sessions (MFA status, sign out here or everywhere) and, for admins, single sign-on. */
import * as API from '../api.js';
import { h, mount, field, announce, confirmDialog } from '../dom.js';
import { t, when } from '../i18n.js';
import { showProblem, values } from '../forms.js';

/** @param {HTMLElement} main @param {any} ctx */
export async function render(main, ctx) {
  const me = await API.api('GET', `/api/v1/users/${API.claims?.sub}`);
  const u = me.ok ? me.data : {};
  const sessions = h('section', { class: 'card', 'aria-labelledby': 'sess-h' }, h('h2', { id: 'sess-h', text: t('account.sessions') }),
    h('p', { text: t('account.sessionsText') }),
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'secondary', onclick: async () => { await API.logout(false); ctx.broker = null; ctx.go('#/signin'); } }, t('header.signOut')),
      h('button', { type: 'button', class: 'danger', id: 'signout-all', onclick: async () => {
        const ok = await confirmDialog({ title: t('account.everywhereTitle'), body: [t('account.everywhereText')],
          confirm: t('account.everywhere'), cancel: t('common.cancel'), danger: true });
        if (!ok) return;
        await API.logout(true); ctx.broker = null; announce(t('account.everywhereDone')); ctx.go('#/signin');
      } }, t('account.everywhere'))));
  mount(main, h('h1', { text: t('account.title') }),
    h('section', { class: 'card', 'aria-labelledby': 'me-h' }, h('h2', { id: 'me-h', text: u.email || '' }),
      h('p', null, t('account.role'), ': ', t('role.' + (u.role || ''))),
      h('p', null, t('account.mfa'), ': ', h('span', { class: u.mfaEnabled ? 'badge ok' : 'badge bad', text: u.mfaEnabled ? t('common.on') : t('common.off') })),
      h('p', null, t('account.lastLogin'), ': ', when(u.lastLoginAt))),
    sessions, ctx.isAdmin ? await sso(ctx) : null);
}

/** @param {any} ctx */
async function sso(ctx) {
  const path = `/api/v1/brokers/${ctx.brokerId}/sso`;
  const r = await API.api('GET', path);
  const cur = r.ok ? r.data : null;
  const form = /** @type {HTMLFormElement} */ (h('form', { novalidate: true, id: 'sso-form' },
    field(t('sso.issuer'), h('input', { name: 'issuer', type: 'url', value: cur?.issuer || '', placeholder: 'https://login.example.com' }), t('sso.issuerHint')),
    field(t('sso.clientId'), h('input', { name: 'clientId', value: cur?.clientId || '' })),
    field(t('sso.clientSecret'), h('input', { name: 'clientSecret', type: 'password', autocomplete: 'off' }),
      cur?.clientSecretSet ? t('sso.secretKept') : t('sso.secretNeeded')),
    field(t('sso.defaultRole'), h('select', { name: 'defaultRole' }, ['BROKER_USER', 'BROKER_ADMIN', 'END_USER'].map((x) =>
      h('option', { value: x, selected: x === (cur?.defaultRole || 'BROKER_USER') }, t('role.' + x))))),
    field(t('sso.enabled'), h('input', { name: 'enabled', type: 'checkbox', checked: cur ? cur.enabled : true })),
    cur ? h('p', { class: 'hint' }, t('sso.callback'), ' ', h('span', { class: 'mono', text: cur.callbackUrl })) : null,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, t('common.save')),
      cur ? h('button', { type: 'button', class: 'danger', onclick: async () => {
        const ok = await confirmDialog({ title: t('sso.removeTitle'), body: [t('sso.removeText')], confirm: t('common.remove'), cancel: t('common.cancel'), danger: true });
        if (!ok) return;
        const d = await API.api('DELETE', path);
        if (d.ok) { announce(t('common.saved')); ctx.go('#/account'); } else showProblem(form, d.problem);
      } }, t('common.remove')) : null)));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const v = values(form);
    if (!v.clientSecret) delete v.clientSecret;
    const p = await API.api('PUT', path, v);
    if (!p.ok) { showProblem(form, p.problem); return; }
    announce(t('common.saved'));
    ctx.go('#/account');
  });
  return h('section', { class: 'card', 'aria-labelledby': 'sso-h' }, h('h2', { id: 'sso-h', text: t('sso.title') }),
    h('p', { class: 'hint', text: t('sso.lead') }), form);
}
