/*! ForexRisk widget app v1: runs inside the iframe served by /widget/frame (or full page at /w/{broker}).
 * Plain ES2020, no framework, no build step: this file is what is served. */
(() => {
  'use strict';
  const D = document, W = window, ROOT = D.documentElement;
  const BOOT = JSON.parse(D.getElementById('fxr-boot').textContent);
  const VERSION = '1';
  const PARENT = BOOT.mode === 'embedded' && BOOT.parentOrigin ? BOOT.parentOrigin : null;
  const FEAT = BOOT.features || {}, BRAND = BOOT.branding || {}, BROKER = BOOT.broker || {};
  const LOCALES = ['en', 'de', 'es', 'fr', 'it', 'pt', 'ja', 'zh', 'ar'];
  const LOCALE = LOCALES.includes(BOOT.locale) ? BOOT.locale : 'en';
  const CURRENCIES = 'USD EUR GBP JPY CHF AUD CAD NZD SGD HKD SEK NOK DKK PLN CZK HUF ZAR MXN TRY CNH AED SAR ILS INR BRL'
    .split(' ');
  const BG = { light: '#ffffff', dark: '#0f141a' }, FG = { light: '#0f172a', dark: '#e6eaf0' };
  let T = {}, token = BOOT.session && BOOT.session.token, expiresAt = BOOT.session && BOOT.session.expiresAt;
  let instruments = {}, last = null, lastReq = null, lost = false, themeState = {};
  const portfolio = [];

  // ---------- helpers ----------
  const $ = (id) => D.getElementById(id);
  const esc = (s) => String(s == null ? '' : s).replace(/[&<>"']/g, (c) => '&#' + c.charCodeAt(0) + ';');
  const t = (k, v) => esc(T[k] == null ? k : T[k]).replace(/\{(\w+)\}/g, (m, n) => (v && n in v ? v[n] : m));
  const nf = (o) => new Intl.NumberFormat(LOCALE, o);
  const num = (v, min, max) => nf({ minimumFractionDigits: min, maximumFractionDigits: max == null ? min : max })
    .format(v);
  const pct = (v) => nf({ style: 'percent', minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(v / 100);
  const money = (v, c, o) => {
    try { return nf(Object.assign({ style: 'currency', currency: c }, o)).format(v); }
    catch (e) { return num(v, 2) + ' ' + c; }
  };
  const plain = (v, max) => nf({ useGrouping: false, maximumFractionDigits: max == null ? 8 : max }).format(v);
  const decimals = (step) => (String(step).split('.')[1] || '').length;
  const GROUP = (nf({}).formatToParts(12345).find((p) => p.type === 'group') || {}).value || ',';

  /** Parses what people type: either separator as the decimal point, grouping removed, Arabic digits. */
  function parse(raw, isMoney) {
    let s = String(raw == null ? '' : raw).trim()
      .replace(/[\u0660-\u0669]/g, (c) => c.charCodeAt(0) - 0x660)
      .replace(/[\u06f0-\u06f9]/g, (c) => c.charCodeAt(0) - 0x6f0)
      .replace(/\u066b/g, '.').replace(/[\s\u00a0\u202f'\u066c\u2019]/g, '');
    if (!s) return null;
    if (!/^\+?(\d|[.,]\d)[\d.,]*$/.test(s)) return NaN;
    const dots = s.split('.').length - 1, commas = s.split(',').length - 1;
    if (dots && commas) {
      const dec = s.lastIndexOf('.') > s.lastIndexOf(',') ? '.' : ',';
      s = s.split(dec === '.' ? ',' : '.').join('').replace(dec, '.');
    } else if (dots + commas > 1) {
      s = s.replace(/[.,]/g, '');
    } else if (dots + commas === 1) {
      const sep = dots ? '.' : ',';
      s = isMoney && (sep === GROUP || (GROUP.trim() === '' && sep === ',')) && /^\+?\d{1,3}[.,]\d{3}$/.test(s)
        ? s.replace(sep, '') : s.replace(sep, '.');
    }
    const n = Number(s);
    return Number.isFinite(n) ? n : NaN;
  }

  function post(type, payload) {
    if (PARENT && W.parent !== W) W.parent.postMessage({ fxr: 1, type, wid: BOOT.wid, payload: payload || {} }, PARENT);
  }

  /** status 0: the network failed; -1: cancelled (a newer request replaced it). */
  async function api(path, body, signal) {
    let r;
    try {
      r = await fetch(path, {
        method: body ? 'POST' : 'GET', credentials: 'omit', signal,
        headers: Object.assign({ Authorization: 'Bearer ' + token }, body ? { 'Content-Type': 'application/json' } : {}),
        body: body ? JSON.stringify(body) : undefined,
      });
    } catch (e) {
      return { status: signal && signal.aborted ? -1 : 0, data: null };
    }
    let data = null;
    try { data = await r.json(); } catch (e) { /* empty or not JSON */ }
    if (r.status === 401) sessionLost();
    return { status: r.status, data };
  }

  function sessionLost() {
    if (lost) return;
    lost = true;
    banner(T.errSession);
    post('error', { code: 'session_expired', message: 'The widget session expired or was refused.' });
  }

  // Renewed two minutes before expiry (background tabs run timers late), and at once when a tab that was
  // hidden comes back with less than that left.
  let refreshTimer = 0, refreshing = false;
  const dueIn = () => (Date.parse(expiresAt || '') || Infinity) - Date.now() - 120000;
  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    const ms = dueIn();
    if (ms !== Infinity) refreshTimer = setTimeout(refresh, Math.min(Math.max(ms, 5000), 2 ** 31 - 1));
  }
  D.addEventListener('visibilitychange', () => { if (!D.hidden && dueIn() <= 0) refresh(); });
  async function refresh() {
    if (lost || refreshing) return;
    refreshing = true;
    const r = await api('/api/v1/widget/session', {});
    refreshing = false;
    if (r.status === 200 && r.data && r.data.token) {
      token = r.data.token;
      expiresAt = r.data.expiresAt;
      scheduleRefresh();
    } else if (r.status !== 401) {
      refreshTimer = setTimeout(refresh, 15000); // network blip: try again while the token still lives
    }
  }

  // ---------- theme ----------
  function lum(hex) {
    const c = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255)
      .map((v) => (v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  }
  /** WCAG contrast ratio of two #rrggbb colours (1 to 21). */
  function contrast(a, b) {
    const x = lum(a), y = lum(b);
    return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05);
  }
  function applyTheme(o) {
    themeState = Object.assign({}, themeState, o);
    const mode = themeState.theme === 'dark' || (themeState.theme !== 'light' && BRAND.darkMode) ? 'dark' : 'light';
    const p = /^#[0-9a-f]{6}$/i.test(themeState.primaryColor || '') ? themeState.primaryColor.toLowerCase() : '#1f6feb';
    const s = ROOT.style, bg = BG[mode];
    ROOT.dataset.theme = mode;
    s.setProperty('--p', p);
    // Text on the primary colour: white when it reads at WCAG AA (4.5:1), otherwise near-black.
    s.setProperty('--on-p', contrast(p, '#ffffff') >= 4.5 ? '#ffffff' : '#111111');
    // The primary colour as text or focus ring only where it stays readable on the background.
    s.setProperty('--pt', contrast(p, bg) >= 4.5 ? p : FG[mode]);
    s.setProperty('--ring', contrast(p, bg) >= 3 ? p : FG[mode]);
    if (BRAND.fontFamily) s.setProperty('--font', BRAND.fontFamily);
  }

  // ---------- markup ----------
  function field(id, label, extra, hint) {
    return `<div class="fld"><label for="${id}">${label}</label>` +
      `<input id="${id}" inputmode="decimal" autocomplete="off" ${extra || ''}` +
      ` aria-describedby="${id}-e${hint ? ' ' + id + '-h' : ''}">` +
      (hint ? `<small class="hint" id="${id}-h">${hint}</small>` : '') +
      `<small class="err" id="${id}-e"></small></div>`;
  }
  function seg(name, legendId, opts) {
    return `<div class="seg" role="radiogroup" aria-labelledby="${legendId}">` + opts.map(([v, label], i) =>
      `<input type="radio" name="${name}" id="${name}-${v}" value="${v}"${i ? '' : ' checked'}>` +
      `<label for="${name}-${v}">${label}</label>`).join('') + '</div>';
  }

  function render() {
    const tabs = [['calc', t('tabCalc')]];
    if (FEAT.advancedScenarios) tabs.push(['proj', t('tabProj')]);
    if (FEAT.correlationAnalysis) tabs.push(['port', t('tabPort')]);
    const name = esc(BROKER.name || '');
    const brand = BRAND.logoUrl
      ? `<img class="logo" id="logo" src="${esc(BRAND.logoUrl)}" alt="${name}"><span class="brand" hidden>${name}</span>`
      : `<span class="brand">${name}</span>`;
    const cur = CURRENCIES.map((c) => `<option>${c}</option>`).join('');
    const lev = BOOT.maxLeverage ? t('leverageMax', { max: plain(BOOT.maxLeverage) }) : t('leverageHint');
    $('app').innerHTML = `<div class="wrap">
<header class="hd">${brand}<h1 class="ttl">${t('title')}</h1></header>
${tabs.length > 1 ? `<div class="tabs" role="tablist" aria-label="${t('title')}">${tabs.map(([k, l], i) =>
    `<button type="button" role="tab" id="tab-${k}" aria-controls="p-${k}" aria-selected="${!i}"` +
    ` tabindex="${i ? -1 : 0}">${l}</button>`).join('')}</div>` : ''}
<div class="banner" id="banner" role="alert" hidden></div>
<section class="panel" id="p-calc" role="${tabs.length > 1 ? 'tabpanel' : 'region'}" aria-labelledby="${
  tabs.length > 1 ? 'tab-calc' : 'res-h'}">
<div class="cols">
<form id="f" class="card" novalidate>
<div class="fld"><label for="bal">${t('balance')}</label><div class="pair">
<input id="bal" inputmode="decimal" autocomplete="off" required aria-describedby="bal-e">
<select id="cur" aria-label="${t('currency')}">${cur}</select></div><small class="err" id="bal-e"></small></div>
<div class="fld"><label for="sym">${t('instrument')}</label>
<input id="sym" list="syms" autocomplete="off" spellcheck="false" autocapitalize="characters" required
 placeholder="EURUSD" aria-describedby="sym-h sym-e"><datalist id="syms"></datalist>
<small class="hint" id="sym-h">${t('instrumentHint')}</small><small class="err" id="sym-e"></small></div>
<fieldset class="fld"><legend id="side-l">${t('side')}</legend>
${seg('dm', 'side-l', [['long', t('long')], ['short', t('short')]])}</fieldset>
${field('entry', t('entry'), '', t('entryHint'))}
<fieldset class="fld"><legend id="stop-l">${t('stop')}</legend>
<label for="stop" class="sr" id="stop-x">${t('stopPriceLabel')}</label><div class="pair">
<input id="stop" inputmode="decimal" autocomplete="off" required aria-describedby="stop-e">
${seg('sm', 'stop-l', [['price', t('stopPrice')], ['pips', t('stopPips')]])}</div>
<small class="err" id="stop-e"></small></fieldset>
<fieldset class="fld"><legend id="risk-l">${t('risk')}</legend>
<label for="risk" class="sr" id="risk-x">${t('riskPctLabel')}</label><div class="pair">
<input id="risk" inputmode="decimal" autocomplete="off" required value="${plain(2)}" aria-describedby="risk-e">
${seg('rm', 'risk-l', [['pct', t('riskPct')], ['amt', t('riskAmt')]])}</div>
<small class="err" id="risk-e"></small></fieldset>
<div class="two">${field('tp', t('tp'))}
${field('lev', t('leverage'), BOOT.maxLeverage ? `value="${plain(BOOT.maxLeverage)}"` : '', lev)}</div>
<div id="rates-f"></div>
<button class="btn" id="go" type="submit">${t('calculate')}</button>
</form>
<section class="card res" id="res" aria-live="polite" aria-labelledby="res-h">
<h2 id="res-h">${t('resultTitle')}</h2><p class="stale" id="stale" role="status" hidden>${t('stale')}</p>
<div id="out"><p class="mut">${t('empty')}</p></div></section>
</div></section>
${FEAT.advancedScenarios ? projPanel() : ''}${FEAT.correlationAnalysis ? portPanel() : ''}
<footer class="ft">${t('disclaimer')}</footer></div>`;
    const logo = $('logo');
    if (logo) logo.addEventListener('error', () => { logo.hidden = true; logo.nextElementSibling.hidden = false; });
    $('cur').value = 'USD';
    $('f').addEventListener('submit', (e) => { e.preventDefault(); calculate(true); });
    D.querySelectorAll('input[name=sm],input[name=rm]').forEach((r) => r.addEventListener('change', modes));
    $('sym').addEventListener('change', symbolChanged);
    ['sym', 'cur'].forEach((id) => $(id).addEventListener('change', dropRates));
    $('entry').addEventListener('input', () => { entrySrc = ''; });
    D.querySelectorAll('input[name=dm]').forEach((r) => r.addEventListener('change', fillEntry));
    $('sym').addEventListener('input', () => { if (instruments[norm($('sym').value)]) symbolChanged(); });
    $('f').addEventListener('input', (e) => { clearErr(e.target.id); changed(400); });
    $('f').addEventListener('change', () => changed(400));
    const tl = D.querySelector('[role=tablist]');
    if (tl) {
      tl.addEventListener('click', (e) => { const b = e.target.closest('[role=tab]'); if (b) selectTab(b); });
      tl.addEventListener('keydown', tabKeys);
    }
    if (FEAT.advancedScenarios) $('pf').addEventListener('submit', (e) => { e.preventDefault(); project(); });
    if (FEAT.correlationAnalysis) wirePortfolio();
  }

  function modes() {
    const pips = $('sm-pips').checked, amt = $('rm-amt').checked;
    $('stop-x').textContent = T[pips ? 'stopPipsLabel' : 'stopPriceLabel'];
    $('risk-x').textContent = T[amt ? 'riskAmtLabel' : 'riskPctLabel'];
    clearErr('stop');
    clearErr('risk');
  }

  // ---------- tabs ----------
  function selectTab(b) {
    D.querySelectorAll('[role=tab]').forEach((x) => {
      const on = x === b;
      x.setAttribute('aria-selected', on);
      x.tabIndex = on ? 0 : -1;
      $(x.getAttribute('aria-controls')).hidden = !on;
    });
    banner('');
    if (b.id === 'tab-proj') fillProjection();
    if (b.id === 'tab-port') renderRows();
  }
  function tabKeys(e) {
    const tabs = [...D.querySelectorAll('[role=tab]')], i = tabs.indexOf(D.activeElement);
    if (i < 0) return;
    const rtl = ROOT.dir === 'rtl';
    const step = { ArrowRight: rtl ? -1 : 1, ArrowLeft: rtl ? 1 : -1, Home: -i, End: tabs.length - 1 - i }[e.key];
    if (step === undefined) return;
    e.preventDefault();
    const b = tabs[(i + step + tabs.length) % tabs.length];
    b.focus();
    selectTab(b);
  }

  // ---------- instruments ----------
  /** The widget's instrument list (a hashed, cached asset): the datalist, pip sizes and digits for prices.
   * Names are the locale's own: currency and metal names from Intl.DisplayNames, the asset class otherwise. */
  let catalogued = false;
  function loadInstruments(data) {
    if (!data || !data.items) return;
    catalogued = true;
    const f = data.fields, opts = [];
    for (const row of data.items) {
      const it = {};
      f.forEach((k, i) => { it[k] = row[i]; });
      it.description = describe(it);
      instruments[it.symbol] = it;
      opts.push(`<option value="${esc(it.symbol)}">${esc(it.description)}</option>`);
    }
    $('syms').innerHTML = opts.join('');
    symbolChanged();
  }
  let names = null;
  function describe(it) {
    if (/^(fx|metal)/.test(it.assetClass) && it.base && it.quote) {
      try {
        names = names || new Intl.DisplayNames([LOCALE], { type: 'currency' });
        return names.of(it.base) + ' / ' + names.of(it.quote);
      } catch (e) { /* no DisplayNames: the class name below */ }
    }
    return (T['class_' + it.assetClass.split('-')[0]] || it.assetClass) + (it.quote ? ' · ' + it.quote : '');
  }
  const norm = (s) => String(s || '').toUpperCase().replace(/[\s/_.-]/g, '');
  let symbolShown = '';
  function symbolChanged() {
    const el = $('sym'), s = norm(el.value), it = instruments[s];
    if (s && s !== el.value) el.value = s;
    $('sym-h').textContent = it ? `${it.description} · ${T.pipSize || 'pip'} ${plain(it.pipSize)}` : T.instrumentHint;
    if (s === symbolShown) return;
    // Prices belong to their instrument: a new pair drops the old one's entry, stop price and target.
    if (symbolShown) {
      $('entry').value = '';
      if ($('sm-price').checked) $('stop').value = '';
      $('tp').value = '';
    }
    symbolShown = s;
    entrySrc = '';
    loadQuote();
  }

  // ---------- live prices ----------
  // The entry is prefilled from the broker's quote chain (the ask to buy, the bid to sell) and kept current
  // while it is the market's; typing an entry makes it the trader's. Where and when the price is from is
  // said under the field, and so is a snapshot (not live) or no current price at all.
  let quote = null, entrySrc = '', quoteTimer = 0, quoteSeq = 0;
  const side = () => ($('dm-short').checked ? 'short' : 'long');
  function priceText(v) {
    const it = instruments[norm($('sym').value)], d = it ? Math.max(it.digits, decimals(it.pipSize)) : 5;
    return nf({ useGrouping: false, minimumFractionDigits: d, maximumFractionDigits: d }).format(v);
  }
  const clock = (iso) => {
    try {
      return new Intl.DateTimeFormat(LOCALE, { hour: '2-digit', minute: '2-digit', second: '2-digit', timeZone: 'UTC',
        timeZoneName: 'short' }).format(new Date(iso));
    } catch (e) { return String(iso); }
  };
  async function loadQuote() {
    clearTimeout(quoteTimer);
    const sym = norm($('sym').value), mine = ++quoteSeq;
    quote = null;
    showQuote();
    if (!instruments[sym] || !/^[A-Z]{6}$/.test(sym) || lost) return;
    const r = await api('/api/v1/quotes?symbols=' + sym);
    if (mine !== quoteSeq) return; // the pair changed meanwhile
    quote = (r.status === 200 && r.data && (r.data.quotes || [])[0]) || null;
    showQuote();
    fillEntry();
    // Kept current while the page is looked at and the entry is the market's (one unit each time).
    if (quote && !quote.stale) quoteTimer = setTimeout(() => { if (!D.hidden && entrySrc === 'market') loadQuote(); }, 30000);
  }
  function fillEntry() {
    if (!quote || quote.stale || (entrySrc !== 'market' && $('entry').value.trim())) return;
    const v = side() === 'short' ? quote.bid : quote.ask;
    if (!(v > 0)) return;
    entrySrc = 'market';
    const text = priceText(v);
    if ($('entry').value !== text) {
      $('entry').value = text;
      clearErr('entry');
      changed(30);
    }
  }
  function showQuote() {
    const h = $('entry-h');
    if (!h) return;
    h.classList.toggle('note', !!quote && (quote.stale || quote.live === false));
    if (!quote) { h.textContent = T.entryHint; return; }
    if (quote.stale) { h.textContent = T.quoteStale; return; }
    h.innerHTML = t('quoteLine', { bid: esc(priceText(quote.bid)), ask: esc(priceText(quote.ask)),
      source: esc(quote.source), time: esc(clock(quote.time)) }) +
      (quote.live === false ? ' ' + t('snapshotNote', { label: esc(quote.label || '') }) : '');
  }

  // ---------- errors ----------
  function setErr(id, msg) {
    const el = $(id), e = $(id + '-e');
    if (!el || !e) return false;
    el.setAttribute('aria-invalid', 'true');
    e.textContent = msg;
    return true;
  }
  function clearErr(id) {
    const el = $(id), e = $(id + '-e');
    if (el && e) { el.removeAttribute('aria-invalid'); e.textContent = ''; }
  }
  function banner(msg) {
    const b = $('banner');
    if (!b) return;
    b.textContent = msg || '';
    b.hidden = !msg;
  }

  // ---------- the calculation ----------
  function readForm(report) {
    const errs = [], v = {}, req = (id, isMoney, max) => {
      const raw = $(id).value, n = parse(raw, isMoney);
      if (n === null) errs.push([id, T.errRequired]);
      else if (!(n > 0)) errs.push([id, T.errNumber]);
      else if (max && n > max) errs.push([id, T.errMax.replace('{max}', plain(max))]);
      return n;
    };
    const opt = (id, min) => {
      const n = parse($(id).value, false);
      if (n !== null && !(n >= (min || 0) && n > 0)) errs.push([id, T.errNumber]);
      return n;
    };
    ['bal', 'sym', 'entry', 'stop', 'risk', 'tp', 'lev'].forEach(clearErr);
    v.accountBalance = req('bal', true, 1e13);
    v.accountCurrency = $('cur').value;
    if (v.accountBalance > 0) v.freeMargin = v.accountBalance; // no open positions assumed: warns when margin > balance
    v.currencyPair = norm($('sym').value);
    if (!v.currencyPair) errs.push(['sym', T.errRequired]);
    else if (catalogued && !instruments[v.currencyPair]) errs.push(['sym', T.errUnknownSymbol]);
    // An empty entry is the market's: the ask for a buy, the bid for a sell, from the broker's quotes.
    // A stop given as a distance needs the side; a stop price sets it (hosts set prices with setPrices),
    // and the result then selects the side it computed.
    const entry = opt('entry');
    if (entry) v.entryPrice = entry;
    const pips = $('sm-pips').checked, stop = req('stop', false, 1e9);
    if (!entry || pips) v.direction = side();
    if (pips) v.stopLossPips = stop;
    else {
      v.stopLoss = stop;
      if (stop && stop === v.entryPrice) errs.push(['stop', T.errStopEq]);
    }
    const amt = $('rm-amt').checked, risk = req('risk', true, amt ? 1e13 : 100);
    if (amt) v.riskAmount = risk; else v.riskPercentage = risk;
    const tp = opt('tp');
    if (tp) v.takeProfit = tp;
    const lev = opt('lev', 1);
    if (lev >= 1) v.leverage = lev;
    const rates = readRates('f', errs);
    if (rates) v.conversionRates = rates;
    if (errs.length && report) {
      errs.forEach(([id, m]) => setErr(id, m));
      $(errs[0][0]).focus();
      banner(T.errCheck);
    }
    return errs.length ? null : v;
  }

  // Results always belong to the inputs on screen. `shownKey` is the request the shown result answers;
  // any edit that makes the form differ from it marks the result stale at once (dimmed, inert, a note),
  // and a debounced recalculation replaces it; the request in flight is cancelled by a newer one. A form
  // that cannot be calculated, or an error answer, clears the result instead of leaving an old number.
  let shownKey = null, flightKey = null, ctrl = null, timer = 0;
  function clearResult() {
    last = null;
    lastReq = null;
    shownKey = null;
    stale(false);
    $('out').innerHTML = `<p class="mut">${t('empty')}</p>`;
  }
  function stale(on) {
    const res = $('res');
    if (!res) return;
    res.toggleAttribute('data-stale', on);
    $('out').inert = on;
    $('stale').hidden = !on;
  }
  /** The form changed (an edit or a host message): judge the shown result now, recalculate after `ms`. */
  function changed(ms) {
    clearTimeout(timer);
    const body = readForm(false), key = body ? JSON.stringify(body) : null;
    if (shownKey !== null && key === shownKey) {
      stale(false);
      if (ctrl) { ctrl.abort(); ctrl = null; flightKey = null; }
      return;
    }
    if (!body) {
      if (ctrl) { ctrl.abort(); ctrl = null; flightKey = null; }
      if (shownKey !== null) clearResult();
      return;
    }
    if (shownKey !== null) stale(true);
    if (key !== flightKey) timer = setTimeout(() => calculate(false), ms);
  }

  async function calculate(report) {
    clearTimeout(timer);
    if (lost) return;
    const body = readForm(report);
    if (!body) {
      if (shownKey !== null) clearResult();
      if (report) post('error', { code: 'invalid_input', message: 'Some fields are missing or invalid.' });
      return;
    }
    const key = JSON.stringify(body);
    if (key === shownKey && !report) return;
    if (report) banner('');
    if (ctrl) ctrl.abort();
    const mine = ctrl = new AbortController();
    flightKey = key;
    $('go').setAttribute('aria-busy', 'true');
    $('res').setAttribute('aria-busy', 'true');
    const r = await api('/api/v1/calculate/position-size', body, mine.signal);
    if (ctrl !== mine) return; // replaced by a newer request: its answer decides
    ctrl = null;
    flightKey = null;
    $('go').removeAttribute('aria-busy');
    $('res').removeAttribute('aria-busy');
    if (r.status === 200 && r.data) {
      banner('');
      last = r.data;
      lastReq = body;
      shownKey = key;
      showResult(r.data, body);
      stale(false);
      post('calculated', { result: r.data });
      // One column (phones): bring the result into view after the trader pressed Calculate.
      if (report && W.matchMedia('(max-width: 699px)').matches) $('res').scrollIntoView({ block: 'nearest' });
      // The form may have changed while this was in flight (typing during the request).
      if (JSON.stringify(readForm(false)) !== key) changed(0);
      return;
    }
    clearResult();
    apiError(r, { currencyPair: 'sym', entryPrice: 'entry', stopLoss: 'stop', stopLossPips: 'stop',
      riskPercentage: 'risk', riskAmount: 'risk', takeProfit: 'tp', leverage: 'lev', accountBalance: 'bal',
      accountCurrency: 'cur' }, 'f', report);
  }

  // Rate fields belong to the pair and account currency that asked for them: a blur that fires `change`
  // without a new pair keeps them.
  let ratesFor = '';
  function dropRates() {
    if (norm($('sym').value) + $('cur').value !== ratesFor) $('rates-f').innerHTML = '';
  }
  /** Exchange-rate fields a form grew because the API named a rate it needs (no market data in the widget). */
  function needRate(box, pair, focus) {
    const id = 'rate-' + box + '-' + pair;
    if (box === 'f') ratesFor = norm($('sym').value) + $('cur').value;
    if (!$(id)) {
      $('rates-' + box).insertAdjacentHTML('beforeend',
        field(id, t('rate', { pair: esc(pair) }), `data-pair="${esc(pair)}"`, t('rateHint')));
    }
    setErr(id, T.errRate.replace('{pair}', pair));
    if (focus) $(id).focus();
  }
  function readRates(box, errs) {
    const out = {};
    let any = false;
    $('rates-' + box).querySelectorAll('input[data-pair]').forEach((el) => {
      const n = parse(el.value);
      clearErr(el.id);
      if (n > 0) { out[el.dataset.pair] = n; any = true; }
      else errs.push([el.id, n === null ? T.errRequired : T.errNumber]);
    });
    return any ? out : null;
  }

  /** Maps a problem+json answer onto the fields; a missing conversion rate adds a rate field to the form. */
  function apiError(r, fields, box, report) {
    if (r.status === 401) return;
    const p = r.data || {}, errs = p.errors || [];
    let code = r.status === 0 ? 'network' : r.status === 422 ? 'invalid_input' : r.status >= 500 ? 'server' : 'refused';
    let msg = r.status === 0 ? T.errNetwork : r.status === 422 ? T.errCheck : r.status === 429 ? T.errBusy : T.errServer;
    for (const e of errs) {
      // No rate given and no quote from the broker's chain either: the trader types it in.
      if ((e.code === 'MISSING_CONVERSION_RATE' || e.code === 'quote_unavailable') &&
          /^[A-Z]{6}$/.test(e.neededRate || '') && box) {
        code = 'missing_rate';
        msg = T.errRate.replace('{pair}', e.neededRate);
        needRate(box, e.neededRate, report);
        continue;
      }
      const key = String(e.field || '').split(/[.[]/)[0], id = fields[key];
      const text = e.code === 'UNKNOWN_INSTRUMENT' ? T.errUnknownSymbol
        : e.code === 'STOP_LOSS_WRONG_SIDE' || e.code === 'TAKE_PROFIT_WRONG_SIDE' ? T.errSide : e.detail;
      if (!(id && setErr(id, text))) msg = (e.detail || p.detail || msg);
    }
    banner(msg);
    post('error', { code, message: p.detail || p.title || code });
  }

  function showResult(d, req) {
    const c = req.accountCurrency, ins = d.instrument || instruments[req.currencyPair] || {};
    const ld = decimals(ins.lotStep || 0.01);
    const row = (k, v, cls) => `<div${cls ? ` class="${cls}"` : ''}><dt>${k}</dt><dd>${v}</dd></div>`;
    const flags = (d.flags || []).map((f) => `<li>${flagText(f, c)}</li>`).join('');
    let html = `<p class="big"><span class="k" id="r-lots-k">${t('lots')}</span> <output id="r-lots"` +
      ` aria-labelledby="r-lots-k">${num(d.lotSize, ld)}</output> <span class="u">${t('lotsUnit')}</span></p>` +
      `<p class="sub">${t(d.direction === 'short' ? 'short' : 'long')} ${esc(req.currencyPair)} · ` +
      `<span id="r-units">${num(d.positionSize, 0, 2)}</span> ${t('units')}</p><dl class="kv">` +
      row(t('atRisk'), `<span id="r-risk">${money(d.maxLoss, c)}</span> <span class="mut">(${pct(d.riskPercentage)})` +
        '</span>') +
      row(t('target'), `${money(d.targetRiskAmount, c)} <span class="mut">(${pct(d.targetRiskPercentage)})</span>`) +
      row(t('stopDist'), t('pips', { n: num(d.stopDistancePips, 0, 1) })) +
      row(t('pipValue'), `<span id="r-pip">${money(d.pipValue, c)}</span> <span class="mut">` +
        `${t('perLot', { v: money(d.pipValuePerLot, c) })}</span>`) +
      (d.requiredMargin == null ? row(t('margin'), '<span id="r-margin">\u2014</span>') :
        row(t('margin'), `<span id="r-margin">${money(d.requiredMargin, c)}</span> <span class="mut">` +
          `${t('marginOf', { p: pct(d.marginPercentage), lev: num(d.leverage, 0, 2) })}</span>`));
    if (d.riskRewardRatio != null) {
      html += row(t('rr'), `<span id="r-rr">1 : ${num(d.riskRewardRatio, 2)}</span> <span class="mut">` +
        `${t('profit', { v: money(d.potentialProfit, c) })}</span>`);
    }
    html += '</dl>';
    const was = side();
    $(d.direction === 'short' ? 'dm-short' : 'dm-long').checked = true;
    if (was !== side()) setTimeout(fillEntry); // the stop chose the other side: the market entry follows
    const md = d.marketData;
    if (md) {
      // Where the prices came from, always; a dated snapshot is said to be one, never shown as live.
      const q = md.entryPrice || Object.values(md.fetched || {})[0];
      if (md.entryPrice) html += `<p class="mut" id="r-entry">${t('entry')}: ${num(md.entryPrice.value, 0, 6)}</p>`;
      if (q) html += `<p class="mut" id="r-src">${t('priceSource', { source: esc(q.source), time: esc(clock(q.time)) })}</p>`;
      if (md.snapshot) html += `<p class="warn" role="note" id="r-snap">${t('snapshotNote', { label: esc(md.snapshot.join('; ')) })}</p>`;
    }
    if (flags) html += `<div class="warn" role="note"><h3>${t('warnings')}</h3><ul id="r-flags">${flags}</ul></div>`;
    $('out').innerHTML = html;
  }

  function flagText(f, c) {
    const tpl = T['flag_' + f.code];
    if (!tpl) return esc(f.message || f.code);
    const data = f.data || {}, vals = {};
    for (const k in data) {
      const v = data[k];
      vals[k] = typeof v === 'number' ? (/Risk$|Margin$/.test(k) ? money(v, c) : num(v, 0, 4)) : esc(v);
    }
    return t('flag_' + f.code, vals);
  }

  // ---------- projection (advancedScenarios) ----------
  function projPanel() {
    return `<section class="panel" id="p-proj" role="tabpanel" aria-labelledby="tab-proj" hidden><div class="cols">
<form id="pf" class="card" novalidate><p class="mut">${t('projIntro')}</p>
${field('pbal', t('projBalance'), 'required')}${field('prisk', t('projRisk'), 'required')}
${field('pwin', t('winRate'), `required value="${plain(50)}"`)}${field('prr', t('rrInput'), `required value="${plain(2)}"`)}
${field('pn', t('trades'), `required inputmode="numeric" value="100"`, t('tradesHint'))}
<button class="btn" id="pgo" type="submit">${t('runProjection')}</button></form>
<section class="card res" id="pres" aria-live="polite" aria-labelledby="pres-h"><h2 id="pres-h">${t('projTitle')}</h2>
<div id="pout"><p class="mut">${t('projEmpty')}</p></div></section></div></section>`;
  }
  function fillProjection() {
    const b = parse($('bal').value, true);
    if (b > 0 && !$('pbal').value) $('pbal').value = plain(b, 2);
    const rp = last ? last.riskPercentage : $('rm-pct').checked ? parse($('risk').value) : null;
    if (rp > 0 && !$('prisk').value) $('prisk').value = plain(rp, 2);
    if (last && last.riskRewardRatio) $('prr').value = plain(last.riskRewardRatio, 2);
  }
  async function project() {
    const ids = ['pbal', 'prisk', 'pwin', 'prr', 'pn'], v = {}, errs = [];
    const lim = { prisk: 100, pwin: 100, pn: 500, prr: 1e4, pbal: 1e13 };
    ids.forEach(clearErr);
    for (const id of ids) {
      const n = parse($(id).value, id === 'pbal');
      if (n === null) errs.push([id, T.errRequired]);
      else if (!(n > 0)) errs.push([id, T.errNumber]);
      else if (n > lim[id]) errs.push([id, T.errMax.replace('{max}', plain(lim[id]))]);
      else if (id === 'pn' && n % 1) errs.push([id, T.errNumber]);
      v[id] = n;
    }
    if (errs.length) { errs.forEach(([id, m]) => setErr(id, m)); $(errs[0][0]).focus(); return; }
    const body = { startBalance: v.pbal, riskPercentage: v.prisk, winRate: Math.min(v.pwin / 100, 1),
      rewardToRisk: v.prr, numberOfTrades: v.pn, paths: 2000 };
    $('pres').setAttribute('aria-busy', 'true');
    const r = await api('/api/v1/calculate/projection', body);
    $('pres').removeAttribute('aria-busy');
    if (r.status !== 200) {
      apiError(r, { startBalance: 'pbal', riskPercentage: 'prisk', winRate: 'pwin', rewardToRisk: 'prr',
        numberOfTrades: 'pn' });
      return;
    }
    const d = r.data, c = $('cur').value, fp = d.finalEquityPercentiles || {};
    const dd = (d.drawdownProbabilities || []).find((x) => x.thresholdPercentage === 20);
    const prob = (p) => nf({ style: 'percent', maximumFractionDigits: 1 }).format(p);
    $('pout').innerHTML = fanChart(d, c) +
      `<ul class="legend" aria-hidden="true"><li><i class="b1"></i>5–95 %</li><li><i class="b2"></i>25–75 %</li>` +
      `<li><i class="ln"></i>${t('median')}</li></ul><dl class="kv">` +
      `<div><dt>${t('medianFinal')}</dt><dd id="p-median">${money(d.medianFinalEquity, c)}</dd></div>` +
      `<div><dt>${t('range')}</dt><dd>${money(fp.p5, c)} – ${money(fp.p95, c)}</dd></div>` +
      `<div><dt>${t('pLoss')}</dt><dd>${prob(d.probabilityOfLoss)}</dd></div>` +
      (dd ? `<div><dt>${t('pDrawdown', { p: nf({ style: 'percent' }).format(0.2) })}</dt><dd>${prob(dd.probability)}</dd></div>` : '') +
      `<div><dt>${t('pRuin')}</dt><dd>${prob(d.ruinProbability)}</dd></div></dl>`;
    post('calculated', { result: d });
  }

  /** Percentile fan (5-95, 25-75, median) as hand-written SVG, drawn at the panel's own width so text stays
   * at its real size. */
  function fanChart(d, c) {
    const f = d.fan, n = f.p50.length - 1, fp = d.finalEquityPercentiles;
    const w = Math.max(260, Math.round($('pout').clientWidth || 600)), h = Math.round(Math.min(300, w * 0.55));
    const lo = Math.min(...f.p5, d.startBalance), hi = Math.max(...f.p95, d.startBalance), span = hi - lo || 1;
    const short = (v) => money(v, c, { notation: 'compact', maximumFractionDigits: 1 });
    const ticks = [0, 1, 2, 3, 4].map((k) => lo + (span * k) / 4), labels = ticks.map(short);
    const L = 12 + 7 * Math.max(...labels.map((s) => s.length)), R = 8, T0 = 8, B = 40;
    const x = (i) => (L + (i * (w - L - R)) / (n || 1)).toFixed(1);
    const y = (v) => (T0 + ((hi - v) * (h - T0 - B)) / span).toFixed(1);
    const pts = (a) => a.map((v, i) => x(i) + ',' + y(v));
    const band = (a, b, cls) => `<polygon class="${cls}" points="${pts(a).concat(pts(b).reverse()).join(' ')}"/>`;
    let g = '';
    ticks.forEach((v, k) => {
      g += `<line class="grid" x1="${L}" x2="${w - R}" y1="${y(v)}" y2="${y(v)}"/>` +
        `<text x="${L - 6}" y="${y(v)}" text-anchor="end" dominant-baseline="middle">${esc(labels[k])}</text>`;
    });
    [0, Math.round(n / 2), n].forEach((i, k) => {
      g += `<text x="${x(i)}" y="${h - 24}" text-anchor="${['start', 'middle', 'end'][k]}">${num(i, 0)}</text>`;
    });
    const label = t('chartLabel', { n: num(n, 0), m: money(d.medianFinalEquity, c), a: money(fp.p5, c),
      b: money(fp.p95, c) });
    return `<svg class="fan" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img" aria-label="${label}">${g}` +
      `<line class="base" x1="${L}" x2="${w - R}" y1="${y(d.startBalance)}" y2="${y(d.startBalance)}"/>` +
      band(f.p95, f.p5, 'b1') + band(f.p75, f.p25, 'b2') +
      `<polyline class="ln" points="${pts(f.p50).join(' ')}"/>` +
      `<text x="${(+x(0) + +x(n)) / 2}" y="${h - 4}" text-anchor="middle" class="ax">${t('tradesAxis')}</text></svg>`;
  }

  // ---------- portfolio (correlationAnalysis) ----------
  function portPanel() {
    return `<section class="panel" id="p-port" role="tabpanel" aria-labelledby="tab-port" hidden>
<div class="card"><h2 id="port-h">${t('portTitle')}</h2><p class="mut">${t('portIntro')}</p>
<div class="tw"><table class="pt" aria-labelledby="port-h"><thead><tr><th scope="col">${t('instrument')}</th>
<th scope="col">${t('side')}</th><th scope="col" class="cap">${t('lotsUnit')}</th><th scope="col">${t('entry')}</th>
<th scope="col">${t('stopPipsCol')}</th><th scope="col"><span class="sr">${t('remove')}</span></th></tr></thead>
<tbody id="prows"></tbody></table></div><div id="rates-q" class="two"></div><div class="acts">
<button type="button" class="btn2" id="padd">${t('addTrade')}</button>
<button type="button" class="btn2" id="prow">${t('addRow')}</button>
<button type="button" class="btn" id="pgo2">${t('analyse')}</button></div></div>
<section class="card res" id="qres" aria-live="polite" aria-labelledby="qres-h"><h2 id="qres-h">${t('portResult')}</h2>
<div id="qout"><p class="mut">${t('portEmpty')}</p></div></section></section>`;
  }
  function wirePortfolio() {
    $('padd').addEventListener('click', () => {
      if (!last || !lastReq) { banner(T.portNeedTrade); return; }
      banner('');
      portfolio.push({ currencyPair: lastReq.currencyPair, side: last.direction, lots: last.lotSize,
        entryPrice: last.entryPrice, stopLossPips: last.stopDistancePips });
      renderRows();
    });
    $('prow').addEventListener('click', () => {
      portfolio.push({ currencyPair: '', side: 'long', lots: null, entryPrice: null, stopLossPips: null });
      renderRows();
      const inputs = $('prows').querySelectorAll('input');
      inputs[inputs.length - 4].focus();
    });
    $('prows').addEventListener('change', (e) => {
      const el = e.target, i = +el.dataset.i, k = el.dataset.k;
      if (!k) return;
      portfolio[i][k] = k === 'side' ? el.value : k === 'currencyPair' ? norm(el.value) : parse(el.value);
    });
    $('prows').addEventListener('click', (e) => {
      const b = e.target.closest('button[data-del]');
      if (!b) return;
      portfolio.splice(+b.dataset.del, 1);
      renderRows();
      $('prow').focus();
    });
    $('pgo2').addEventListener('click', analyse);
  }
  function renderRows() {
    const inp = (i, k, v, label, extra) => `<td><input data-i="${i}" data-k="${k}" aria-label="${label} ${i + 1}"` +
      ` autocomplete="off" value="${v == null ? '' : esc(typeof v === 'number' ? plain(v) : v)}" ${extra}></td>`;
    $('prows').innerHTML = portfolio.map((p, i) => '<tr>' +
      inp(i, 'currencyPair', p.currencyPair, t('instrument'), 'list="syms" spellcheck="false"') +
      `<td><select data-i="${i}" data-k="side" aria-label="${t('side')} ${i + 1}">` +
      `<option value="long"${p.side === 'long' ? ' selected' : ''}>${t('buy')}</option>` +
      `<option value="short"${p.side === 'short' ? ' selected' : ''}>${t('sell')}</option></select></td>` +
      inp(i, 'lots', p.lots, t('lotsUnit'), 'inputmode="decimal"') +
      inp(i, 'entryPrice', p.entryPrice, t('entry'), 'inputmode="decimal"') +
      inp(i, 'stopLossPips', p.stopLossPips, t('stopPipsCol'), 'inputmode="decimal"') +
      `<td><button type="button" class="x" data-del="${i}" aria-label="${t('remove')} ${i + 1}">×</button></td></tr>`)
      .join('');
  }
  async function analyse() {
    const balance = parse($('bal').value, true);
    const positions = portfolio.filter((p) => p.currencyPair && p.lots > 0).map((p) => {
      const o = { currencyPair: p.currencyPair, side: p.side, lots: p.lots };
      if (p.entryPrice > 0) o.entryPrice = p.entryPrice;
      if (p.stopLossPips > 0) o.stopLossPips = p.stopLossPips;
      return o;
    });
    if (!positions.length) { $('qout').innerHTML = `<p class="mut">${t('portEmpty')}</p>`; return; }
    const body = { accountCurrency: $('cur').value, positions };
    if (balance > 0) body.accountBalance = balance;
    const errs = [], rates = readRates('q', errs);
    if (errs.length) { errs.forEach(([id, m]) => setErr(id, m)); $(errs[0][0]).focus(); return; }
    if (rates) body.conversionRates = rates;
    const r = await api('/api/v1/calculate/portfolio', body);
    if (r.status !== 200) { apiError(r, {}, 'q', true); return; }
    banner('');
    const d = r.data, c = body.accountCurrency;
    const bars = d.positions.map((p) => `<li><span class="bl">${esc(p.currencyPair)} ${t(p.side === 'short' ? 'sell'
      : 'buy')} ${num(p.lots, 2)}</span><span class="bar"><i style="inline-size:${
      Math.round((p.riskShare || 0) * 100)}%"></i></span><span class="bv">${money(p.riskAtStop || 0, c)} · ${
      pct((p.riskShare || 0) * 100)}</span></li>`).join('');
    const ex = Object.entries(d.netExposureByCurrency || {}).map(([k, v]) =>
      `<li><b>${esc(k)}</b> ${num(v.amount, 0, 2)}</li>`).join('');
    const flags = (d.flags || []).map((f) => `<li>${flagText(f, c)}</li>`).join('');
    $('qout').innerHTML = '<dl class="kv">' +
      `<div><dt>${t('totalRisk')}</dt><dd id="q-risk">${money(d.totalRisk, c)}${d.totalRiskPercentage != null
        ? ` <span class="mut">(${pct(d.totalRiskPercentage)})</span>` : ''}</dd></div>` +
      `<div><dt>${t('totalMargin')}</dt><dd>${d.totalMargin == null ? '\u2014' : money(d.totalMargin, c)}${d.marginPercentage != null
        ? ` <span class="mut">(${pct(d.marginPercentage)})</span>` : ''}</dd></div>` +
      (d.largestContributor ? `<div><dt>${t('largest')}</dt><dd>${esc(d.largestContributor.currencyPair)} · ${
        money(d.largestContributor.riskAtStop, c)}</dd></div>` : '') +
      `</dl><h3>${t('share')}</h3><ul class="bars">${bars}</ul>` +
      (ex ? `<h3>${t('exposure')}</h3><ul class="chips">${ex}</ul>` : '') +
      (flags ? `<div class="warn" role="note"><h3>${t('warnings')}</h3><ul>${flags}</ul></div>` : '');
    post('calculated', { result: d });
  }

  // ---------- host messages ----------
  const setVal = (id, v, o) => {
    if (v == null || v === '' || !Number.isFinite(+v) || +v <= 0) return;
    $(id).value = nf({ useGrouping: false, minimumFractionDigits: o.min || 0, maximumFractionDigits: o.max }).format(+v);
  };
  const recalc = () => changed(30); // several host messages in a row give one calculation
  const HANDLERS = {
    setAccount(p) {
      setVal('bal', p.balance, { max: 2 });
      const c = String(p.currency || '').toUpperCase();
      if (/^[A-Z]{3}$/.test(c)) {
        if (!CURRENCIES.includes(c)) $('cur').insertAdjacentHTML('beforeend', `<option value="${c}">${c}</option>`);
        $('cur').value = c;
      }
      dropRates();
      recalc();
    },
    setSymbol(p) {
      if (typeof p.symbol !== 'string' || p.symbol.length > 32) return;
      $('sym').value = norm(p.symbol);
      dropRates();
      symbolChanged();
      recalc();
    },
    setPrices(p) {
      const it = instruments[norm($('sym').value)];
      const o = it ? { min: decimals(it.pipSize), max: Math.max(it.digits, decimals(it.pipSize)) } : { max: 8 };
      if (p.entry != null) entrySrc = '';
      setVal('entry', p.entry, o);
      if (p.stop != null) { $('sm-price').checked = true; modes(); setVal('stop', p.stop, o); }
      if (p.takeProfit === null) $('tp').value = '';
      else setVal('tp', p.takeProfit, o);
      recalc();
    },
    setTheme(p) {
      const o = {};
      if (p.theme === 'light' || p.theme === 'dark') o.theme = p.theme;
      if (/^#[0-9a-f]{6}$/i.test(p.primaryColor || '')) o.primaryColor = p.primaryColor;
      applyTheme(o);
    },
  };
  W.addEventListener('message', (e) => {
    if (!PARENT || e.origin !== PARENT || e.source !== W.parent) return;
    const m = e.data;
    if (!m || m.fxr !== 1 || m.wid !== BOOT.wid || !Object.prototype.hasOwnProperty.call(HANDLERS, m.type)) return;
    if ($('f')) HANDLERS[m.type](m.payload && typeof m.payload === 'object' ? m.payload : {});
  });

  // ---------- start ----------
  // Both are preloaded by the document (`<link rel=preload as=fetch crossorigin>`): a plain same-origin
  // fetch matches the preload, so it is the same request, not a second one.
  const ASSETS = BOOT.assets || {};
  async function strings(url) {
    const r = await fetch(url);
    if (!r.ok) throw new Error('i18n ' + r.status);
    return r.json();
  }
  async function start() {
    ROOT.lang = LOCALE;
    ROOT.dir = LOCALE === 'ar' ? 'rtl' : 'ltr';
    if (BOOT.mode === 'page') ROOT.classList.add('page');
    applyTheme({ theme: BOOT.theme, primaryColor: BRAND.primaryColor });
    const catalogue = fetch(ASSETS.instruments)
      .then((r) => (r.ok ? r.json() : null)).catch(() => null);
    try { T = await strings(ASSETS.i18n || '/widget/i18n/' + LOCALE + '.json'); } catch (e) {
      T = await strings('/widget/i18n/en.json').catch(() => ({}));
    }
    D.title = (T.title || 'Position size') + (BROKER.name ? ' – ' + BROKER.name : '');
    render();
    loadInstruments(await catalogue); // before `ready`, so the host's first setPrices knows the digits
    if (W.ResizeObserver && PARENT) {
      let h = 0;
      new ResizeObserver(() => {
        const nh = Math.ceil($('app').getBoundingClientRect().height);
        if (nh !== h) { h = nh; post('resize', { height: nh }); }
      }).observe($('app'));
    }
    scheduleRefresh();
    post('ready', { version: VERSION });
  }
  start();
})();
