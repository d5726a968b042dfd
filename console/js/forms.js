// @ts-check
/** Problem+json shown where it belongs: each `errors[].field` next to the input whose `name` is that field
 *  (or its last segments), anything else in the form's banner. */
import { h } from './dom.js';
import { t } from './i18n.js';

/** @param {HTMLElement} form */
export function clearErrors(form) {
  form.querySelectorAll('[aria-invalid]').forEach((el) => el.removeAttribute('aria-invalid'));
  form.querySelectorAll('.err').forEach((el) => { el.textContent = ''; });
  const b = form.querySelector('.banner.form-error');
  if (b) b.remove();
}

/** @param {HTMLElement} form @param {string} field */
function inputFor(form, field) {
  const parts = field.replace(/^(body|config)\./, '').split('.');
  for (let i = 0; i < parts.length; i++) {
    const name = parts.slice(i).join('.');
    const el = form.querySelector(`[name="${CSS.escape(name)}"]`);
    if (el) return /** @type {HTMLElement} */ (el);
  }
  return null;
}

/**
 * @param {HTMLElement} form
 * @param {import('./api.js').Problem | null} problem
 */
export function showProblem(form, problem) {
  clearErrors(form);
  if (!problem) return;
  const loose = [];
  let first = null;
  for (const e of problem.errors || []) {
    const el = inputFor(form, e.field || '');
    const slot = el && form.querySelector(`#${CSS.escape(el.id)}-e`);
    if (el && slot) {
      el.setAttribute('aria-invalid', 'true');
      slot.textContent = e.detail;
      first = first || el;
    } else loose.push(`${e.field ? e.field + ': ' : ''}${e.detail}`);
  }
  if (!first || loose.length) {
    const text = problem.status === 0 ? t('error.network') : (problem.detail || problem.title || t('error.generic'));
    const banner = h('div', { class: 'banner bad form-error', role: 'alert' }, h('strong', { text }),
      loose.length ? h('ul', null, loose.map((l) => h('li', { text: l }))) : null);
    form.prepend(banner);
  }
  if (first) first.focus();
}

/** Values of a form's named inputs (checkboxes as booleans, numbers as numbers, empty as null).
 * @param {HTMLFormElement} form */
export function values(form) {
  /** @type {Record<string, any>} */
  const out = {};
  for (const el of /** @type {any} */ (form.elements)) {
    if (!el.name) continue;
    if (el.type === 'checkbox') out[el.name] = el.checked;
    else if (el.type === 'number') out[el.name] = el.value === '' ? null : Number(el.value);
    else out[el.name] = el.value.trim() === '' ? null : el.value.trim();
  }
  return out;
}
