// @ts-check
/** TOTP enrolment: the QR code (drawn by the API), the secret for manual entry, a first code, then the
 *  recovery codes once; then a sign-in with a code, because admin powers need a session that used one. */
import * as API from '../api.js';
import { h, mount, field, announce, copy } from '../dom.js';
import { t } from '../i18n.js';
import { showProblem } from '../forms.js';

/** @param {HTMLElement} main @param {any} ctx */
export async function render(main, ctx) {
  const me = await API.api('GET', `/api/v1/users/${API.claims?.sub}`);
  if (me.ok && me.data.mfaEnabled) {
    // Enrolled already, but this session signed in without a code: sign in again with one.
    mount(main, h('h1', { text: t('mfa.again') }), h('p', { text: t('mfa.againText') }),
      h('button', { type: 'button', onclick: async () => { await API.logout(false); ctx.go('#/signin'); } }, t('mfa.signInAgain')));
    return;
  }
  const r = await API.api('POST', '/api/v1/auth/mfa/enrol');
  if (!r.ok) {
    mount(main, h('h1', { text: t('mfa.title') }), h('div', { class: 'banner bad', role: 'alert', text: r.problem?.detail || t('error.generic') }));
    return;
  }
  const code = h('input', { name: 'code', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: '6', required: true });
  const form = /** @type {HTMLFormElement} */ (h('form', { novalidate: true },
    field(t('mfa.code'), code, t('mfa.codeHint')), h('button', { type: 'submit' }, t('mfa.confirm'))));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const c = await API.api('POST', '/api/v1/auth/mfa/confirm', { code: code.value.trim() });
    if (!c.ok) { showProblem(form, c.problem); return; }
    announce(t('mfa.enabled'));
    const codes = /** @type {string[]} */ (c.data.recoveryCodes);
    const text = codes.join('\n');
    mount(main, h('h1', { text: t('mfa.recoveryTitle') }),
      h('div', { class: 'banner warn', text: t('mfa.recoveryText') }),
      h('ul', { class: 'codes', id: 'recovery-codes', 'aria-label': t('mfa.recoveryTitle') }, codes.map((x) => h('li', { text: x }))),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'secondary', onclick: () => copy(text, t('common.copied')) }, t('mfa.copyCodes')),
        h('button', { type: 'button', id: 'mfa-done', onclick: async () => { await API.logout(false); ctx.go('#/signin'); } }, t('mfa.done'))),
      h('p', { class: 'hint', text: t('mfa.doneHint') }));
  });
  mount(main, h('h1', { text: t('mfa.title') }), h('p', { class: 'lead', text: t('mfa.lead') }),
    h('div', { class: 'grid2' },
      h('div', { class: 'card' }, h('img', { class: 'qr', src: r.data.qrSvg, alt: t('mfa.qrAlt'), width: '220', height: '220' }),
        h('p', null, t('mfa.manual')), h('p', { class: 'secret mono', id: 'totp-secret', text: r.data.secret })),
      h('div', { class: 'card' }, form)));
}
