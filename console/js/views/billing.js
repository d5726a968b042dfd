// @ts-check
/** Billing: the plan and its status (with the dates that matter), usage this period against the tier's limits,
 *  the plans with an upgrade through Stripe Checkout (or a prorated switch for a running subscription), the
 *  Billing Portal, the latest invoices, cancellation. All through the public billing and analytics API.
 *
 *  Checkout and the portal are Stripe's pages: the browser goes there and comes back to
 *  #/billing?checkout=success (or =cancelled, or ?portal=done). The tier changes when Stripe's event has reached
 *  the API (the webhook), a moment after the customer is back: the page then says it is confirming the payment
 *  and asks for the subscription again until it has landed. */
import * as API from '../api.js';
import { h, mount, announce, confirmDialog, table } from '../dom.js';
import { t, num, when, locale } from '../i18n.js';
import { showProblem } from '../forms.js';

const ORDER = ['free', 'standard', 'professional', 'enterprise'];
const LIVE = ['active', 'trialing', 'past_due'];
/** How often and how long the page asks whether the payment has landed (a bound, then a button to ask again). */
const POLL_MS = 1000;
const POLL_TRIES = 90;

/** What to show on the next drawing (a confirmation), given the page's notice slot. @type {((slot: HTMLElement) => void) | null} */
let flash = null;

/** An amount in the currency's minor unit, formatted (cents for USD, none for JPY).
 *  Right to left, Arabic's "‏2,500.00 US$" ends in a neutral `$` that the bidi algorithm would give to the
 *  sentence around it, showing "$US 2,500.00"; a left-to-right mark after it keeps "US$" together.
 * @param {number | null | undefined} minor @param {string} currency */
export function money(minor, currency) {
  if (minor === null || minor === undefined) return '—';
  const f = new Intl.NumberFormat(locale, { style: 'currency', currency: currency.toUpperCase() });
  const s = f.format(minor / 10 ** (f.resolvedOptions().maximumFractionDigits ?? 2));
  return document.documentElement.dir === 'rtl' ? s + '\u200e' : s;
}

/** A plan's name in this locale, as the console names the tiers elsewhere (the API's `name` is English; it
 *  stays the name of a tier the strings do not know). @param {any} x a plan */
function tierName(x) {
  const key = 'tier.' + x.tier;
  const name = t(key);
  return name === key ? x.name : name;
}

/** The subscription's running state: true once Stripe's subscription is the account's. @param {any} sub */
const subscribed = (sub) => !!sub.subscriptionId && LIVE.includes(sub.subscriptionStatus || '') && !!sub.paidTier;

/** The start of the period usage is counted over: the billing period for a subscription, the trial for a trial,
 *  else the calendar month (UTC). @param {any} sub @param {any} free the free plan (its trial days) */
function periodStart(sub, free) {
  const now = new Date();
  if (sub.currentPeriodEnd && subscribed(sub)) {
    const end = new Date(sub.currentPeriodEnd);
    const start = new Date(Date.UTC(end.getUTCFullYear(), end.getUTCMonth() - 1, end.getUTCDate(), end.getUTCHours(), end.getUTCMinutes()));
    if (start < now) return start;
  }
  if (sub.status === 'trialing' && sub.trialEndsAt && free && free.trialDays) {
    const start = new Date(new Date(sub.trialEndsAt).getTime() - free.trialDays * 864e5);
    if (start < now && now.getTime() - start.getTime() <= 31 * 864e5) return start;
  }
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
}

/** The status line: what the plan is doing and until when. @param {any} sub */
function statusLine(sub) {
  if (sub.status === 'trialing') return t('billing.trialing', { date: when(sub.trialEndsAt) });
  if (sub.status === 'enterprise') return t('billing.enterpriseText');
  if (sub.status === 'managed') return t('billing.managedText');
  if (sub.status === 'past_due') return t('billing.pastDue', { date: when(sub.graceEndsAt) });
  if (sub.status === 'active') {
    return sub.cancelAtPeriodEnd ? t('billing.endsOn', { date: when(sub.currentPeriodEnd) })
      : t('billing.renews', { date: when(sub.currentPeriodEnd) });
  }
  if (sub.subscriptionStatus === 'canceled') return t('billing.canceledText');
  return t('billing.freeText');
}

/** The badge: trialing, active, past due, cancelling, canceled, free, enterprise. @param {any} sub */
function badge(sub) {
  const key = sub.status === 'active' && sub.cancelAtPeriodEnd ? 'cancelling'
    : sub.status === 'free' && sub.subscriptionStatus === 'canceled' ? 'canceled' : sub.status;
  const tone = key === 'active' || key === 'enterprise' || key === 'managed' ? 'badge ok' : key === 'past_due' || key === 'canceled' ? 'badge bad' : 'badge';
  return h('span', { class: tone, id: 'billing-status', 'data-status': key, text: t('billing.status.' + key) });
}

/** @param {HTMLElement} main @param {any} ctx @param {string[]} _rest @param {any} opts */
export async function render(main, ctx, _rest, opts) {
  /** @type {URLSearchParams} */
  const query = (opts && opts.query) || new URLSearchParams();
  const back = query.get('checkout') || (query.get('portal') ? 'portal' : '');
  if (back) history.replaceState(null, '', '#/billing'); // a reload or a bookmark does not confirm again
  await draw(main, ctx, back);
}

/** @param {HTMLElement} main @param {any} ctx @param {string} back 'success' | 'cancelled' | 'portal' | '' */
async function draw(main, ctx, back = '') {
  const [s, p] = await Promise.all([API.api('GET', '/api/v1/billing/subscription'), API.api('GET', '/api/v1/billing/plans')]);
  const notice = h('div', { id: 'billing-notice', 'aria-live': 'polite' });
  if (!s.ok || !p.ok) {
    const box = h('div');
    mount(main, h('h1', { text: t('billing.title') }), box);
    showProblem(box, (s.ok ? p : s).problem);
    return;
  }
  const sub = s.data;
  const { currency, plans } = p.data;
  /** @type {Record<string, any>} */
  const byTier = Object.fromEntries(plans.map((/** @type {any} */ x) => [x.tier, x]));
  const plan = byTier[sub.tier] || byTier.free;
  const again = () => draw(main, ctx);

  // --- the plan
  const actions = h('div', { class: 'actions', id: 'plan-actions' });
  const planBox = h('section', { class: 'card bill', 'aria-labelledby': 'plan-h', id: 'plan' },
    h('h2', { id: 'plan-h', text: t('billing.current') }),
    h('p', { class: 'plan-name' }, h('strong', { id: 'billing-tier', 'data-tier': sub.tier, text: t('tier.' + sub.tier) }), ' ', badge(sub)),
    h('p', { id: 'billing-status-text', text: statusLine(sub) }),
    h('p', { class: 'hint', text: limitsText(plan) }),
    actions);
  const portalBtn = h('button', { type: 'button', class: 'secondary', id: 'portal', onclick: async () => {
    portalBtn.setAttribute('disabled', '');
    const r = await API.api('POST', '/api/v1/billing/portal', {});
    portalBtn.removeAttribute('disabled');
    if (!r.ok) { showProblem(planBox, r.problem); return; }
    location.assign(r.data.url);
  } }, t('billing.portal'));
  mount(actions, sub.status === 'enterprise' ? null : portalBtn,
    subscribed(sub) && !sub.cancelAtPeriodEnd ? h('button', { type: 'button', class: 'danger', id: 'cancel', onclick: cancel }, t('billing.cancel')) : null);
  async function cancel() {
    const ok = await confirmDialog({ title: t('billing.cancelTitle'), danger: true,
      body: [t('billing.cancelText', { date: when(sub.currentPeriodEnd), plan: t('tier.' + sub.paidTier) })],
      confirm: t('billing.cancelGo'), cancel: t('billing.keep') });
    if (!ok) return;
    const r = await API.api('POST', '/api/v1/billing/subscription/cancel', { atPeriodEnd: true });
    if (!r.ok) { showProblem(planBox, r.problem); return; }
    flash = (slot) => mount(slot, h('div', { class: 'banner ok', role: 'status', text: t('billing.cancelled', { date: when(r.data.currentPeriodEnd) }) }));
    await again();
    announce(t('billing.cancelled', { date: when(r.data.currentPeriodEnd) }));
  }

  // --- the plans
  const plansBox = h('section', { class: 'card bill', 'aria-labelledby': 'plans-h', id: 'plans' });
  const rank = ORDER.indexOf(subscribed(sub) ? sub.paidTier : sub.tier === 'enterprise' || sub.status === 'managed' ? sub.tier : 'free');
  const rows = plans.map((/** @type {any} */ x) => {
    const mine = subscribed(sub) ? x.tier === sub.paidTier : sub.status === 'managed' ? x.tier === sub.tier
      : x.tier === sub.tier || (x.tier === 'free' && sub.status !== 'enterprise');
    let action;
    if (mine) action = h('span', { class: 'badge ok', text: t('billing.yourPlan') });
    else if (!x.selfServe) action = x.tier === 'enterprise' ? h('span', { class: 'hint', text: t('billing.talkToUs') }) : '';
    else if (sub.status === 'enterprise') action = '';
    else if (subscribed(sub)) {
      const up = ORDER.indexOf(x.tier) > rank;
      action = h('button', { type: 'button', class: up ? '' : 'secondary', 'data-tier': x.tier,
        'aria-label': t(up ? 'billing.upgradeTo' : 'billing.switchTo', { plan: tierName(x) }), onclick: () => change(x, up) },
      t(up ? 'billing.upgrade' : 'billing.downgrade'));
    } else {
      action = h('button', { type: 'button', 'data-tier': x.tier, 'aria-label': t('billing.upgradeTo', { plan: tierName(x) }),
        onclick: (/** @type {Event} */ e) => checkout(x, /** @type {HTMLButtonElement} */ (e.currentTarget)) }, t('billing.upgrade'));
    }
    return [h('strong', { text: tierName(x) }), x.monthlyPrice === null ? t('billing.custom') : x.monthlyPrice === 0 ? t('billing.free')
      : t('billing.perMonth', { amount: money(x.monthlyPrice, currency) }), limitsText(x), action];
  });
  mount(plansBox, h('h2', { id: 'plans-h', text: t('billing.plans') }),
    table([t('billing.plan'), t('billing.price'), t('billing.limits'), t('common.actions')], rows, { caption: t('billing.plans') }),
    h('p', { class: 'hint', text: t('billing.checkoutHint') }));
  /** @param {any} x @param {HTMLButtonElement} btn */
  async function checkout(x, btn) {
    btn.setAttribute('disabled', '');
    const r = await API.api('POST', '/api/v1/billing/checkout', { tier: x.tier });
    btn.removeAttribute('disabled');
    if (!r.ok) { showProblem(plansBox, r.problem); return; }
    announce(t('billing.toCheckout'));
    location.assign(r.data.url); // Stripe's Checkout page; it sends the browser back to #/billing?checkout=...
  }
  /** @param {any} x @param {boolean} up */
  async function change(x, up) {
    const ok = await confirmDialog({ title: t(up ? 'billing.upgradeTo' : 'billing.switchTo', { plan: tierName(x) }),
      body: [t('billing.changeText', { plan: tierName(x), amount: money(x.monthlyPrice, currency) })],
      confirm: t(up ? 'billing.upgrade' : 'billing.downgrade'), cancel: t('common.cancel') });
    if (!ok) return;
    const r = await API.api('POST', '/api/v1/billing/subscription', { tier: x.tier });
    if (!r.ok) { showProblem(plansBox, r.problem); return; }
    flash = (slot) => mount(slot, h('div', { class: 'banner ok', role: 'status', text: t('billing.changed', { plan: t('tier.' + r.data.tier) }) }));
    await again();
  }

  // --- invoices
  const invoices = sub.invoices || [];
  const invoiceBox = h('section', { class: 'card bill', 'aria-labelledby': 'invoices-h', id: 'invoices' },
    h('h2', { id: 'invoices-h', text: t('billing.invoices') }),
    invoices.length ? table([t('billing.number'), t('billing.date'), t('billing.amount'), t('common.status'), t('billing.link')],
      invoices.map((/** @type {any} */ i) => [h('span', { class: 'mono', text: i.number || i.id }), when(i.created),
        money(i.status === 'paid' ? i.amountPaid : i.amountDue, i.currency || currency),
        h('span', { class: i.status === 'paid' ? 'badge ok' : i.status === 'open' || i.status === 'uncollectible' ? 'badge bad' : 'badge',
          text: t('billing.invoice.' + (i.status || 'draft')) }),
        i.hostedInvoiceUrl ? h('a', { href: i.hostedInvoiceUrl, target: '_blank', rel: 'noopener noreferrer',
          'aria-label': t('billing.viewInvoice', { number: i.number || i.id }) }, t('billing.view')) : '—']),
    { numeric: [2], caption: t('billing.invoices') })
      : h('p', { class: 'hint', id: 'no-invoices', text: t('billing.noInvoices') }),
    invoices.length ? h('p', { class: 'hint', text: t('billing.invoicesHint') }) : null);

  const usageBox = h('section', { class: 'card bill', 'aria-labelledby': 'billing-usage-h', id: 'billing-usage', 'aria-busy': 'true' },
    h('h2', { id: 'billing-usage-h', text: t('billing.usage') }), h('p', { class: 'loading', text: t('common.loading') }));
  mount(main, h('h1', { text: t('billing.title') }), h('p', { class: 'lead', text: t('billing.lead') }), notice,
    h('div', { class: 'grid2' }, planBox, usageBox), plansBox, invoiceBox);
  if (flash) { const f = flash; flash = null; f(notice); }
  if (back === 'cancelled') mount(notice, h('div', { class: 'banner warn', role: 'status', text: t('billing.checkoutCancelled') }));
  if (back === 'portal') mount(notice, h('div', { class: 'banner', role: 'status', text: t('billing.portalBack') }));
  const usageDrawn = usage(usageBox, ctx, sub, plan, byTier.free);
  if (back === 'success') {
    // Asked in the background: the page is usable (and announced ready) while it waits.
    if (subscribed(sub)) mount(notice, confirmed(sub)); else confirm(main, ctx, notice, sub.tier);
  }
  await usageDrawn;
}

/** @param {any} plan */
function limitsText(plan) {
  const l = plan.limits;
  return l.unlimited ? t('billing.unlimited') : t('billing.limitsText', { rpm: num(l.requestsPerMinute), burst: num(l.burst) });
}

/** @param {any} sub */
const confirmed = (sub) => h('div', { class: 'banner ok', role: 'status', id: 'checkout-confirmed', 'data-state': 'confirmed' },
  h('strong', { text: t('billing.confirmed', { plan: t('tier.' + sub.tier) }) }));

/** Back from Checkout: the tier changes once Stripe's event has reached the API. Ask until it has (a bounded
 *  number of times, then offer to ask again), then draw the page anew.
 * @param {HTMLElement} main @param {any} ctx @param {HTMLElement} notice @param {string} before */
async function confirm(main, ctx, notice, before) {
  const status = h('div', { class: 'banner', role: 'status', id: 'checkout-confirming', 'data-state': 'confirming', 'aria-busy': 'true' },
    h('strong', { text: t('billing.confirming') }), h('p', { class: 'hint', text: t('billing.confirmingHint') }));
  mount(notice, status);
  for (let i = 0; i < POLL_TRIES; i++) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    if (!status.isConnected) return; // the admin went elsewhere
    const r = await API.api('GET', '/api/v1/billing/subscription');
    if (r.ok && subscribed(r.data)) {
      flash = (slot) => mount(slot, confirmed(r.data));
      await draw(main, ctx);
      announce(t('billing.confirmed', { plan: t('tier.' + r.data.tier) }));
      return;
    }
  }
  mount(notice, h('div', { class: 'banner warn', role: 'status', id: 'checkout-waiting', 'data-state': 'waiting' },
    h('strong', { text: t('billing.stillWaiting', { plan: t('tier.' + before) }) }), ' ',
    h('button', { type: 'button', class: 'secondary', onclick: () => confirm(main, ctx, notice, before) }, t('billing.checkAgain'))));
}

/** Usage this period against the tier: calculations and units so far, and the busiest hour's units against what
 *  the tier sustains in an hour (its requests a minute, 60 times; bursts above it are allowed up to the burst).
 * @param {HTMLElement} box @param {any} ctx @param {any} sub @param {any} plan @param {any} free */
async function usage(box, ctx, sub, plan, free) {
  const start = periodStart(sub, free);
  const q = new URLSearchParams({ from: start.toISOString(), granularity: 'hour' });
  const r = await API.api('GET', `/api/v1/brokers/${ctx.brokerId}/analytics/usage?${q}`);
  box.setAttribute('aria-busy', 'false');
  const head = h('h2', { id: 'billing-usage-h', text: t('billing.usage') });
  if (!r.ok) { mount(box, head); showProblem(box, r.problem); return; }
  const tot = r.data.totals;
  const busiest = Math.max(0, ...r.data.series.map((/** @type {any} */ x) => x.units));
  const l = plan.limits;
  const hourly = l.unlimited ? null : l.requestsPerMinute * 60;
  const share = hourly ? Math.min(100, (busiest / hourly) * 100) : 0;
  mount(box, head, h('p', { class: 'hint', text: t('billing.since', { date: when(start.toISOString()) }) }),
    h('div', { class: 'kpis' },
      h('div', { class: 'kpi', id: 'billing-calcs' }, h('div', { class: 'v', text: num(tot.calculations) }), h('div', { class: 'k', text: t('usage.calculations') })),
      h('div', { class: 'kpi', id: 'billing-units' }, h('div', { class: 'v', text: num(tot.units) }), h('div', { class: 'k', text: t('usage.units') }))),
    hourly === null ? h('p', { text: t('billing.unlimited') }) : h('div', { class: 'fld' },
      h('label', { for: 'busiest', text: t('billing.busiest') }),
      h('meter', { id: 'busiest', class: 'meter', min: '0', max: String(hourly), low: String(hourly * 0.6), high: String(hourly * 0.85),
        optimum: '0', value: String(Math.min(busiest, hourly)), 'aria-describedby': 'busiest-h' }),
      h('small', { class: 'hint', id: 'busiest-h', text: t('billing.busiestText', { units: num(busiest), hourly: num(hourly), pct: num(share, 1) }) })));
}
