// @ts-check
/** Strings: English plus the widget's locales (console/i18n/<locale>.json). A missing string falls back to
 *  English, a missing English string shows its key (a test fails on both). */

export const LOCALES = ['en', 'de', 'es', 'fr', 'it', 'pt', 'ja', 'zh', 'ar'];
/** @type {Record<string, string>} */
let EN = {};
/** @type {Record<string, string>} */
let T = {};
export let locale = 'en';

/** @param {string} base the static URL prefix */
export async function loadStrings(base) {
  const saved = localStorage.getItem('fxr.console.locale');
  const wanted = saved || (navigator.language || 'en').slice(0, 2).toLowerCase();
  locale = LOCALES.includes(wanted) ? wanted : 'en';
  EN = await (await fetch(`${base}/i18n/en.json`)).json();
  T = locale === 'en' ? EN : await fetch(`${base}/i18n/${locale}.json`).then((r) => (r.ok ? r.json() : {})).catch(() => ({}));
  document.documentElement.lang = locale;
  document.documentElement.dir = locale === 'ar' ? 'rtl' : 'ltr';
}

/** @param {string} l */
export function setLocale(l) {
  localStorage.setItem('fxr.console.locale', l);
  location.reload();
}

/**
 * @param {string} key
 * @param {Record<string, string | number>} [vars] `{name}` placeholders
 */
export function t(key, vars) {
  let s = T[key] ?? EN[key] ?? key;
  if (vars) for (const [k, v] of Object.entries(vars)) s = s.split(`{${k}}`).join(String(v));
  return s;
}

/** @param {number} n @param {number} [digits] */
export const num = (n, digits = 0) => new Intl.NumberFormat(locale, { maximumFractionDigits: digits }).format(n);
/** @param {string | null | undefined} iso */
export const when = (iso) => (iso ? new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(iso)) : '—');
/** @param {string} iso */
export const day = (iso) => new Intl.DateTimeFormat(locale, { month: 'short', day: 'numeric', timeZone: 'UTC' }).format(new Date(iso));
