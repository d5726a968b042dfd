// @ts-check
/** Sign up: a company name, the admin's email and a password (POST /api/v1/signup). The API mails a link; opened
 *  in a browser it confirms the email and comes back to the sign-in page (#/signin?verified=<slug>), where the
 *  30-day trial starts with the MFA enrolment every admin goes through. */
import * as API from '../api.js';
import { h, mount, field, announce } from '../dom.js';
import { t } from '../i18n.js';
import { showProblem, clearErrors } from '../forms.js';

/** @param {HTMLElement} main */
export async function render(main) {
  const company = h('input', { name: 'companyName', autocomplete: 'organization', required: true, maxlength: '200' });
  const email = h('input', { name: 'adminEmail', type: 'email', autocomplete: 'email', required: true });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: '12' });
  const submit = h('button', { type: 'submit' }, t('signup.submit'));
  const form = /** @type {HTMLFormElement} */ (h('form', { novalidate: true, class: 'card', 'aria-labelledby': 'signup-h', id: 'signup-form' },
    field(t('signup.company'), company),
    field(t('signup.email'), email),
    field(t('signup.password'), password, t('signup.passwordHint')),
    h('div', { class: 'actions' }, submit)));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    submit.setAttribute('disabled', '');
    const r = await API.api('POST', '/api/v1/signup', { companyName: /** @type {HTMLInputElement} */ (company).value.trim(),
      adminEmail: /** @type {HTMLInputElement} */ (email).value.trim(), password: /** @type {HTMLInputElement} */ (password).value });
    submit.removeAttribute('disabled');
    if (!r.ok) { showProblem(form, r.problem); return; }
    localStorage.setItem('fxr.console.slug', r.data.slug);
    mount(main, h('h1', { text: t('signup.sentTitle') }),
      h('div', { class: 'banner ok', role: 'status', id: 'signup-sent' },
        h('p', { text: t('signup.sentText', { email: r.data.adminEmail }) }),
        h('p', null, t('signup.slugText'), ' ', h('strong', { class: 'mono', id: 'signup-slug', text: r.data.slug }))),
      h('p', null, h('a', { href: '#/signin', text: t('signup.toSignIn') })));
    announce(t('signup.sentTitle'));
  });
  mount(main, h('h1', { id: 'signup-h', text: t('signup.title') }), h('p', { class: 'lead', text: t('signup.lead') }), form,
    h('p', null, t('signup.haveAccount'), ' ', h('a', { href: '#/signin', text: t('signup.toSignIn') })));
}
