// @ts-check
/** An invitation link: the invitee chooses a password, then signs in. */
import * as API from '../api.js';
import { h, mount, field } from '../dom.js';
import { t } from '../i18n.js';
import { showProblem } from '../forms.js';

/** @param {HTMLElement} main @param {any} ctx @param {string[]} rest */
export async function render(main, ctx, rest) {
  const token = rest[0] || '';
  const pw = h('input', { name: 'password', type: 'password', autocomplete: 'new-password', minlength: '12', required: true });
  const form = /** @type {HTMLFormElement} */ (h('form', { novalidate: true, class: 'card' },
    field(t('accept.password'), pw, t('accept.passwordHint')), h('button', { type: 'submit' }, t('accept.submit'))));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const r = await API.api('POST', '/api/v1/auth/invitations/accept', { token, password: /** @type {HTMLInputElement} */ (pw).value });
    if (!r.ok) { showProblem(form, r.problem); return; }
    mount(main, h('h1', { text: t('accept.done') }), h('p', { text: t('accept.doneText') }),
      h('a', { class: 'btn', href: '#/signin' }, t('signin.submit')));
  });
  mount(main, h('h1', { text: t('accept.title') }), h('p', { class: 'lead', text: t('accept.lead') }), form);
}
