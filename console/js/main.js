// @ts-check
/** The console's shell: strings, the session, the header and navigation, and a hash router over the views. */
import * as API from './api.js';
import { $, h, mount, announce } from './dom.js';
import { loadStrings, t, LOCALES, locale, setLocale } from './i18n.js';

const STATIC = document.body.dataset.static || '';

/** @typedef {{broker: any, brokerId: string, reload: () => Promise<void>, go: (hash: string) => void,
 *   isAdmin: boolean, isOperator: boolean, isBrokerAdmin: boolean, static: string}} Ctx */

/** @type {Record<string, {title: string, load: () => Promise<any>, admin?: boolean, operator?: boolean, brokerAdmin?: boolean}>} */
const VIEWS = {
  start: { title: 'nav.start', load: () => import('./views/start.js'), admin: true },
  settings: { title: 'nav.settings', load: () => import('./views/settings.js'), admin: true },
  keys: { title: 'nav.keys', load: () => import('./views/keys.js'), admin: true },
  users: { title: 'nav.users', load: () => import('./views/users.js'), admin: true },
  usage: { title: 'nav.usage', load: () => import('./views/usage.js') },
  alerts: { title: 'nav.alerts', load: () => import('./views/alerts.js'), admin: true },
  // Billing is the signed-in user's own broker's (the API bills the principal's broker): a broker admin's page.
  billing: { title: 'nav.billing', load: () => import('./views/billing.js'), admin: true, brokerAdmin: true },
  account: { title: 'nav.account', load: () => import('./views/account.js') },
  platform: { title: 'nav.platform', load: () => import('./views/platform.js'), operator: true },
};
const PUBLIC = {
  signin: () => import('./views/signin.js'),
  accept: () => import('./views/accept.js'),
  signup: () => import('./views/signup.js'),
  mfa: () => import('./views/mfa.js'),
};

/** @type {Ctx} */
const ctx = {
  broker: null, brokerId: '', isAdmin: false, isOperator: false, isBrokerAdmin: false, static: STATIC,
  reload: async () => {
    const r = await API.api('GET', `/api/v1/brokers/${ctx.brokerId}`);
    if (r.ok) ctx.broker = r.data;
  },
  go: (hash) => { if (location.hash === hash) route(); else location.hash = hash; },
};

function theme() {
  const pref = localStorage.getItem('fxr.console.theme') || 'auto';
  if (pref === 'auto') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = pref;
  return pref;
}

function header() {
  const signedIn = API.signedIn();
  const lang = h('select', { id: 'lang', 'aria-label': t('header.language'),
    onchange: (/** @type {Event} */ e) => setLocale(/** @type {HTMLSelectElement} */ (e.target).value) },
  LOCALES.map((l) => h('option', { value: l, selected: l === locale }, new Intl.DisplayNames([l], { type: 'language' }).of(l) || l)));
  const pref = theme();
  const th = h('select', { id: 'theme', 'aria-label': t('header.theme'),
    onchange: (/** @type {Event} */ e) => { localStorage.setItem('fxr.console.theme', /** @type {HTMLSelectElement} */ (e.target).value); theme(); } },
  ['auto', 'light', 'dark'].map((v) => h('option', { value: v, selected: v === pref }, t('theme.' + v))));
  mount($('top'),
    h('span', { class: 'brand' }, 'ForexRisk', h('span', { class: 'who' }, ' · ' + t('header.console'))),
    signedIn && ctx.broker ? h('span', { class: 'who', id: 'who' }, `${ctx.broker.name} · ${t('role.' + (API.claims?.role || ''))}`) : null,
    h('span', { class: 'row' }, lang, th),
    signedIn ? h('button', { type: 'button', class: 'secondary', id: 'signout', onclick: async () => {
      await API.logout(false); ctx.broker = null; announce(t('signin.signedOut')); ctx.go('#/signin');
    } }, t('header.signOut')) : null);
}

/** Whether the signed-in user may open a view. @param {{admin?: boolean, operator?: boolean, brokerAdmin?: boolean}} v */
const allowed = (v) => (!v.admin || ctx.isAdmin) && (!v.operator || ctx.isOperator) && (!v.brokerAdmin || ctx.isBrokerAdmin);

/** @param {string} current */
function nav(current) {
  const frame = /** @type {HTMLElement} */ (document.querySelector('.frame'));
  if (!API.signedIn() || !ctx.broker || (ctx.isAdmin && !API.hasMfa())) { mount($('nav')); frame.classList.add('bare'); return; }
  frame.classList.remove('bare');
  const items = Object.entries(VIEWS).filter(([, v]) => allowed(v));
  mount($('nav'), h('ul', null, items.map(([k, v]) => h('li', null,
    h('a', { href: `#/${k}`, 'aria-current': k === current ? 'page' : null, text: t(v.title) })))));
}

async function establish() {
  const c = API.claims;
  if (!c) return;
  ctx.isOperator = c.role === 'SUPERADMIN';
  ctx.isBrokerAdmin = c.role === 'BROKER_ADMIN';
  ctx.isAdmin = ctx.isBrokerAdmin || ctx.isOperator;
  ctx.brokerId = sessionStorage.getItem('fxr.console.broker') && ctx.isOperator
    ? /** @type {string} */ (sessionStorage.getItem('fxr.console.broker')) : c.broker_id;
  await ctx.reload();
}

/** Selecting another broker (platform operator). @param {string} id */
export async function manage(id) {
  sessionStorage.setItem('fxr.console.broker', id);
  ctx.brokerId = id;
  await ctx.reload();
}
// @ts-ignore: the platform view calls it through ctx
ctx.manage = manage;

let seq = 0;
async function route() {
  const mine = ++seq;
  // A route may carry a query after `?` (#/billing?checkout=success: where Checkout sends the admin back).
  const [path, query = ''] = location.hash.replace(/^#\/?/, '').split('?');
  const [name, ...rest] = path.split('/');
  const main = $('main');
  /** @type {any} */
  let mod;
  let key = name;
  if (!API.signedIn() && !(name in PUBLIC)) key = 'signin';
  if (API.signedIn() && !ctx.broker) await establish();
  if (API.signedIn() && key === 'signin') key = '';
  // An admin without a second factor enrols first: every admin route needs it.
  if (API.signedIn() && ctx.isAdmin && !API.hasMfa() && key !== 'mfa') key = 'mfa';
  if (API.signedIn() && !(key in VIEWS) && !(key in PUBLIC)) key = ctx.isAdmin ? 'start' : 'usage';
  const view = VIEWS[key];
  if (view && !allowed(view)) key = ctx.isAdmin ? 'start' : 'usage';
  mod = await (VIEWS[key] ? VIEWS[key].load() : PUBLIC[/** @type {keyof typeof PUBLIC} */ (key)]());
  if (mine !== seq) return;
  if (name !== key && !(key === 'signin' && !location.hash)) {
    history.replaceState(null, '', `#/${key}`);
  }
  header();
  nav(key);
  mount(main, h('p', { class: 'loading', text: t('common.loading') }));
  await mod.render(main, ctx, rest, { refresh: route, established: establish, query: new URLSearchParams(query) });
  if (mine !== seq) return;
  const h1 = main.querySelector('h1');
  document.title = h1 && h1.textContent ? `${h1.textContent} · ${t('header.documentTitle')}` : t('header.documentTitle');
  if (h1) { h1.setAttribute('tabindex', '-1'); h1.focus(); }
}

async function boot() {
  await loadStrings(STATIC + '');
  document.title = t('header.documentTitle');
  $('skip').textContent = t('common.skip');
  $('nav').setAttribute('aria-label', t('nav.label'));
  $('skip').addEventListener('click', (e) => { e.preventDefault(); $('main').focus(); });
  API.whenExpired(() => { ctx.broker = null; announce(t('signin.expired')); ctx.go('#/signin'); });
  await API.refresh(); // a session cookie from an earlier visit, if any
  window.addEventListener('hashchange', route);
  await route();
  document.body.dataset.ready = '1';
}

boot();
