// @ts-check
/** Sign in: broker, email, password; then the TOTP code (or a recovery code) when the account has MFA;
 *  or single sign-on for a broker that configured it. */
import * as API from '../api.js';
import { h, mount, field, announce } from '../dom.js';
import { t } from '../i18n.js';
import { showProblem, clearErrors } from '../forms.js';

/** @param {HTMLElement} main @param {any} ctx @param {string[]} _rest @param {any} opts */
export async function render(main, ctx, _rest, opts) {
  const remembered = localStorage.getItem('fxr.console.slug') || '';
  const broker = h('input', { name: 'broker', autocomplete: 'organization', required: true, value: remembered, spellcheck: 'false' });
  const email = h('input', { name: 'email', type: 'email', autocomplete: 'username', required: true });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const code = h('input', { name: 'totpCode', inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6}', maxlength: '6' });
  const recovery = h('input', { name: 'recoveryCode', autocomplete: 'off', spellcheck: 'false' });
  const codeBox = h('div', { hidden: true }, field(t('signin.code'), code, t('signin.codeHint')),
    h('details', null, h('summary', { text: t('signin.useRecovery') }), field(t('signin.recovery'), recovery)));
  const submit = h('button', { type: 'submit' }, t('signin.submit'));
  const form = /** @type {HTMLFormElement} */ (h('form', { novalidate: true, class: 'card', 'aria-labelledby': 'signin-h' },
    field(t('signin.broker'), broker, t('signin.brokerHint')),
    field(t('signin.email'), email),
    field(t('signin.password'), password),
    codeBox,
    h('div', { class: 'actions' }, submit,
      h('button', { type: 'button', class: 'secondary', id: 'sso', onclick: sso }, t('signin.sso')))));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    /** @type {any} */
    const body = { broker: broker.value.trim(), email: email.value.trim(), password: password.value };
    if (!codeBox.hidden) {
      if (/** @type {HTMLInputElement} */ (recovery).value.trim()) body.recoveryCode = recovery.value.trim();
      else body.totpCode = code.value.trim();
    }
    submit.setAttribute('disabled', '');
    const r = await API.login(body);
    submit.removeAttribute('disabled');
    if (r.ok) {
      localStorage.setItem('fxr.console.slug', body.broker);
      announce(t('signin.welcome'));
      await opts.established();
      ctx.go('#/start');
      return;
    }
    if (r.problem && r.problem.type === '/problems/mfa-required' && codeBox.hidden) {
      codeBox.hidden = false;
      announce(t('signin.needCode'));
      code.focus();
      return;
    }
    showProblem(form, r.problem);
  });
  function sso() {
    const slug = broker.value.trim();
    if (!slug) {
      showProblem(form, { status: 422, errors: [{ field: 'broker', detail: t('signin.ssoNeedsBroker') }] });
      return;
    }
    localStorage.setItem('fxr.console.slug', slug);
    location.assign(`/api/v1/auth/sso/${encodeURIComponent(slug)}/login?client=console`);
  }
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  // Back from the emailed sign-up link (GET /api/v1/signup/verify in a browser): confirmed, or why not.
  const verified = params.get('verified');
  if (verified) /** @type {HTMLInputElement} */ (broker).value = verified;
  const notice = params.get('sso') === 'failed' ? h('div', { class: 'banner bad', role: 'alert', text: t('signin.ssoFailed') })
    : verified ? h('div', { class: 'banner ok', role: 'status', id: 'signup-verified', text: t('signin.verified') })
      : params.get('verify') ? h('div', { class: 'banner bad', role: 'alert', text: t(params.get('verify') === 'expired' ? 'signin.verifyExpired' : 'signin.verifyInvalid') })
        : null;
  mount(main, h('h1', { id: 'signin-h', text: t('signin.title') }), h('p', { class: 'lead', text: t('signin.lead') }), notice, form,
    h('p', null, t('signin.noAccount'), ' ', h('a', { href: '#/signup', id: 'to-signup', text: t('signin.signUp') })));
  if (!remembered && !verified) broker.focus();
}
