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
  // Copies of app.css's colours (tests/test_widget_assets.py keeps them equal): ground, text, card, error.
  const BG = { light: '#ffffff', dark: '#0f141a' }, FG = { light: '#0f172a', dark: '#e6eaf0' };
  const SF = { light: '#f6f8fa', dark: '#161e27' }, ERR = { light: '#b42318', dark: '#ff9a90' };
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
  const iso = (s) => `<bdi>${s}</bdi>`; // one amount kept whole and in place on a right-to-left page
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
  /** The heat map's strongest tint of `c` on a card that keeps text at 4.5:1 (srgb mix, as app.css paints it). */
  function maxTint(c, m) {
    const h = (x, i) => parseInt(x.slice(i, i + 2), 16);
    let w = 0.85;
    const mix = () => '#' + [1, 3, 5].map((i) => Math.round(h(c, i) * w + h(SF[m], i) * (1 - w))
      .toString(16).padStart(2, '0')).join('');
    while (w > 0.05 && contrast(FG[m], mix()) < 4.6) w -= 0.05;
    return w.toFixed(2);
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
    s.setProperty('--tp', maxTint(p, mode));
    s.setProperty('--tn', maxTint(ERR[mode], mode));
    if (BRAND.fontFamily) s.setProperty('--font', BRAND.fontFamily);
  }

  // ---------- markup ----------
  function field(id, label, extra, hint, labelId) {
    return `<div class="fld"><label for="${id}"${labelId ? ` id="${labelId}"` : ''}>${label}</label>` +
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
    // The broker's features: projections and portfolio are tabs; advancedScenarios adds the ATR and points
    // stops, reverse mode (lots -> risk), spread, commission and take-profit ladders; correlationAnalysis
    // the correlation of the portfolio from market history.
    const tabs = [['calc', t('tabCalc')]];
    if (FEAT.projections) tabs.push(['proj', t('tabProj')]);
    if (FEAT.portfolio) tabs.push(['port', t('tabPort')]);
    const ADV = !!FEAT.advancedScenarios;
    const stops = [['price', t('stopPrice')], ['pips', t('stopPips')]].concat(ADV
      ? [['points', t('stopPoints')], ['atr', t('stopAtr')]] : []);
    const risks = [['pct', t('riskPct')], ['amt', t('riskAmt')]].concat(ADV ? [['lots', t('riskLots')]] : []);
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
<div class="fld presets"><label for="preset">${t('presets')}</label><div class="pair">
<select id="preset"><option value="">${t('presetNone')}</option></select>
<span class="pbtn"><button type="button" class="btn2" id="psave">${t('presetSave')}</button>
<button type="button" class="btn2" id="pdel" disabled>${t('presetDelete')}</button></span></div></div>
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
<label for="stop" class="sr" id="stop-x">${t('stopPriceLabel')}</label><div class="pair wrap">
<input id="stop" inputmode="decimal" autocomplete="off" required aria-describedby="stop-h stop-e">
${seg('sm', 'stop-l', stops)}</div>
<small class="hint" id="stop-h" hidden></small><small class="err" id="stop-e"></small></fieldset>
<fieldset class="fld"><legend id="risk-l">${t('risk')}</legend>
<label for="risk" class="sr" id="risk-x">${t('riskPctLabel')}</label><div class="pair wrap">
<input id="risk" inputmode="decimal" autocomplete="off" required value="${plain(2)}" aria-describedby="risk-e">
${seg('rm', 'risk-l', risks)}</div>
<small class="err" id="risk-e"></small></fieldset>
<div class="fld"><div class="two">${field('tp', t('tp'), '', '', 'tp-l')}
${field('lev', t('leverage'), BOOT.maxLeverage ? `value="${plain(BOOT.maxLeverage)}"` : '', lev)}</div>
${ADV ? `<div id="tps"></div><button type="button" class="lnk" id="tp-add">${t('tpAdd')}</button>` : ''}</div>
${ADV ? `<details class="more" id="more"><summary>${t('moreOptions')}</summary><div class="two">
${field('spread', t('spread'), '', t('spreadHint'))}${field('comm', t('commission'), '', t('commissionHint'))}</div>
</details>` : ''}
<div id="rates-f"></div>
<button class="btn" id="go" type="submit">${t('calculate')}</button>
</form>
<section class="card res" id="res" aria-live="polite" aria-labelledby="res-h">
<h2 id="res-h">${t('resultTitle')}</h2><p class="stale" id="stale" role="status" hidden>${t('stale')}</p>
<div id="out"><p class="mut">${t('empty')}</p></div>
<div class="acts" id="acts" hidden><button type="button" class="btn2" id="copy">${t('copy')}</button>
<button type="button" class="btn2" id="share-b">${t('shareLink')}</button></div>
<p class="mut" id="acts-s" role="status"></p><input id="share-u" class="share" readonly aria-label="${t('shareLink')}" hidden>
</section>
</div></section>
${FEAT.projections ? projPanel() : ''}${FEAT.portfolio ? portPanel() : ''}
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
    wireKeep();
    modes();
    if (FEAT.projections) $('pf').addEventListener('submit', (e) => { e.preventDefault(); project(); });
    if (FEAT.portfolio) wirePortfolio();
    if (ADV) {
      $('tp-add').addEventListener('click', () => { addTarget(); changed(400); });
      $('tps').addEventListener('click', (e) => {
        const b = e.target.closest('button[data-tp]');
        if (b) { b.closest('.tpr').remove(); renumberTargets(); changed(30); $('tp-add').focus(); }
      });
    }
  }

  const stopMode = () => (D.querySelector('input[name=sm]:checked') || {}).value || 'price';
  const riskMode = () => (D.querySelector('input[name=rm]:checked') || {}).value || 'pct';
  function modes() {
    const sm = stopMode(), rm = riskMode();
    $('stop-x').textContent = T[{ price: 'stopPriceLabel', pips: 'stopPipsLabel', points: 'stopPointsLabel',
      atr: 'stopAtrLabel' }[sm]];
    $('risk-x').textContent = T[{ pct: 'riskPctLabel', amt: 'riskAmtLabel', lots: 'riskLotsLabel' }[rm]];
    if (sm === 'atr') { if (!$('stop').value.trim()) $('stop').value = plain(1.5); loadAtr(); } else showAtr();
    // The spread widens an ATR stop and does nothing else in a position size: offered only there.
    if ($('spread')) $('spread').closest('.fld').hidden = sm !== 'atr';
    clearErr('stop');
    clearErr('risk');
  }

  // ---------- keep and pass on: presets, copy, share link ----------
  // The form as plain values: numbers as numbers (so a link made in one locale opens in another), the
  // modes, the ladder. A market entry is left out: whoever opens it gets the price of that moment.
  const NUMS = ['bal', 'entry', 'stop', 'risk', 'tp', 'lev', 'spread', 'comm'];
  function formState() {
    const o = { cur: $('cur').value, sym: norm($('sym').value), dm: side(), sm: stopMode(), rm: riskMode() };
    NUMS.forEach((id) => {
      const el = $(id), n = el ? parse(el.value, id === 'bal' || id === 'comm' || id === 'risk') : null;
      if (n > 0) o[id] = n;
    });
    if (entrySrc === 'market') delete o.entry;
    const rows = [...D.querySelectorAll('#tps .tpr')];
    if (rows.length) {
      o.tp1s = parse($('tp1s').value) || '';
      o.tps = rows.map((r) => (parse(r.querySelector('[data-tp-price]').value) || '') + ':' +
        (parse(r.querySelector('[data-tp-share]').value) || '')).join(',');
    }
    return o;
  }
  function applyState(o) {
    if (!o || typeof o !== 'object' || !Object.keys(o).length) return;
    if (/^[A-Z]{3}$/.test(o.cur || '')) {
      if (![...$('cur').options].some((x) => x.value === o.cur)) $('cur').insertAdjacentHTML('beforeend', `<option>${o.cur}</option>`);
      $('cur').value = o.cur;
    }
    if (typeof o.sym === 'string' && o.sym.length <= 32) { $('sym').value = norm(o.sym); symbolChanged(); }
    [['dm', o.dm], ['sm', o.sm], ['rm', o.rm]].forEach(([k, v]) => { const r = $(k + '-' + v); if (r) r.checked = true; });
    NUMS.forEach((id) => { const el = $(id), n = +o[id]; if (el) el.value = n > 0 && Number.isFinite(n) ? plain(n) : ''; });
    if (o.entry > 0) entrySrc = '';
    if ($('tps')) {
      $('tps').innerHTML = '';
      if ($('tp1s')) renumberTargets();
      String(o.tps || '').split(',').filter(Boolean).slice(0, 9).forEach((x) => {
        const [p, sh] = x.split(':').map(Number);
        addTarget(p > 0 ? p : null, sh > 0 ? sh : null);
      });
      if ($('tp1s') && +o.tp1s > 0) $('tp1s').value = plain(+o.tp1s);
    }
    modes();
    fillEntry();
    changed(30);
  }
  // Presets live in first-party storage: the full page's own, or, embedded, the host page's (the loader
  // keeps them there and hands them over with `context`), because a browser that blocks third-party
  // storage refuses it to this frame. Read once, kept in memory, written back whole.
  const STORE = 'fxr:presets:' + (BROKER.slug || '');
  let presetList = null;
  function presets() {
    if (presetList === null) {
      presetList = [];
      if (!PARENT) {
        try { presetList = JSON.parse(localStorage.getItem(STORE) || '[]'); } catch (e) { presetList = []; }
      }
    }
    return Array.isArray(presetList) ? presetList.filter((p) => p && p.name && p.state) : [];
  }
  function storePresets(list) {
    presetList = list;
    const text = JSON.stringify(list);
    if (PARENT) { post('savePresets', { value: text }); return true; }
    try { localStorage.setItem(STORE, text); return true; } catch (e) { return false; }
  }
  function listPresets(selected) {
    $('preset').innerHTML = `<option value="">${t('presetNone')}</option>` + presets().map((p, i) =>
      `<option value="${i}"${p.name === selected ? ' selected' : ''}>${esc(p.name)}</option>`).join('');
    $('pdel').disabled = !$('preset').value;
  }
  function savePreset() {
    const o = formState(), name = [o.sym || '?', o.risk ? plain(o.risk) + (o.rm === 'pct' ? ' %' : o.rm === 'lots'
      ? ' ' + T.lotsUnit : ' ' + o.cur) : '', o.stop ? plain(o.stop) + ' ' + (T['stop' + o.sm[0].toUpperCase() +
      o.sm.slice(1)] || '') : ''].filter(Boolean).join(' · ');
    const list = presets().filter((p) => p.name !== name);
    list.unshift({ name, state: o });
    if (!storePresets(list.slice(0, 10))) { banner(T.presetBlocked); return; }
    listPresets(name);
    $('acts-s').textContent = t('presetSaved', { name });
  }
  function wireKeep() {
    listPresets();
    $('psave').addEventListener('click', savePreset);
    $('preset').addEventListener('change', (e) => {
      e.stopPropagation(); // choosing a preset is not an edit of the form by itself
      const p = presets()[+$('preset').value];
      $('pdel').disabled = !p;
      if (p) applyState(p.state);
    });
    $('pdel').addEventListener('click', () => {
      const i = +$('preset').value, list = presets();
      if (!$('preset').value || !list[i]) return;
      list.splice(i, 1);
      storePresets(list);
      listPresets();
      $('preset').focus();
    });
    $('copy').addEventListener('click', () => copyText(summary(), T.copied));
    $('share-b').addEventListener('click', () => {
      const url = shareUrl();
      $('share-u').value = url;
      $('share-u').hidden = false;
      copyText(url, T.linkCopied);
      $('share-u').select();
    });
  }
  let hostHref = BOOT.mode === 'page' ? location.href.split('#')[0] : '';
  function shareUrl() {
    const q = new URLSearchParams(formState()).toString();
    return (hostHref || location.href.split('#')[0]) + '#fxr=' + encodeURIComponent(q);
  }
  function readShared(hash) {
    const m = /(?:^|[#&])fxr=([^&]+)/.exec(hash || '');
    if (!m) return null;
    try { return Object.fromEntries(new URLSearchParams(decodeURIComponent(m[1]))); } catch (e) { return null; }
  }
  function summary() {
    const d = last, q = lastReq;
    if (!d || !q) return '';
    const c = q.accountCurrency;
    return [`${q.currencyPair} ${T[d.direction === 'short' ? 'short' : 'long']}: ${num(d.lotSize, decimals(
      (instruments[q.currencyPair] || {}).lotStep || 0.01))} ${T.lotsUnit} (${num(d.positionSize, 0, 2)} ${T.units})`,
    `${T.entry}: ${priceText(d.entryPrice)} · ${T.stop}: ${priceText(d.stopLoss)} (${num(d.stopDistancePips, 0, 1)} ${
      T.stopPips})`,
    `${T.atRisk}: ${money(d.maxLoss, c)} (${pct(d.riskPercentage)})`,
    d.riskRewardRatio != null ? `${T.rr}: ${(T.rrText || '').replace('{r}', num(d.riskRewardRatio, 0, 2))}` : '',
    BROKER.name || ''].filter(Boolean).join('\n');
  }
  async function copyText(text, done) {
    let ok = false;
    try { await navigator.clipboard.writeText(text); ok = true; } catch (e) {
      // A frame without the clipboard permission: the older copy command, from the click itself.
      const ta = D.createElement('textarea');
      ta.value = text;
      ta.setAttribute('readonly', '');
      ta.className = 'sr';
      D.body.appendChild(ta);
      ta.select();
      try { ok = D.execCommand('copy'); } catch (e2) { ok = false; }
      ta.remove();
    }
    $('acts-s').textContent = ok ? done : T.copyFailed;
  }

  // ---------- take-profit ladder (advancedScenarios) ----------
  // The first target is the `tp` field; each added one is a price and the share of the position closed
  // there (in %). With one target the share is the whole position.
  function addTarget(price, share) {
    const n = $('tps').children.length + 2;
    $('tps').insertAdjacentHTML('beforeend', `<div class="tpr two"><div class="fld"><label for="tp${n}">${
      t('tpN', { n })}</label><input id="tp${n}" data-tp-price inputmode="decimal" autocomplete="off"` +
      ` aria-describedby="tp${n}-e" value="${price == null ? '' : esc(plain(price))}"><small class="err" id="tp${n}-e">` +
      `</small></div><div class="fld"><label for="tp${n}s">${t('tpShare')}</label><div class="pair">` +
      `<input id="tp${n}s" data-tp-share inputmode="decimal" autocomplete="off" aria-describedby="tp${n}s-e"` +
      ` value="${share == null ? '' : esc(plain(share))}"><button type="button" class="x" data-tp="${n}"` +
      ` aria-label="${t('tpRemove', { n })}">×</button></div><small class="err" id="tp${n}s-e"></small></div></div>`);
    if (!$('tp1s')) {
      $('tp').closest('.fld').insertAdjacentHTML('beforeend', `<label for="tp1s" class="sub2">${t('tpShare')}</label>` +
        `<input id="tp1s" data-tp-share inputmode="decimal" autocomplete="off" aria-describedby="tp1s-e"><small` +
        ' class="err" id="tp1s-e"></small>');
    }
    renumberTargets();
  }
  function renumberTargets() {
    const rows = $('tps') ? $('tps').children.length : 0;
    if (!rows && $('tp1s')) { // back to one target: the whole position, no share field
      const f = $('tp1s').closest('.fld');
      f.querySelectorAll('.sub2, #tp1s, #tp1s-e').forEach((el) => el.remove());
    }
    // Equal shares by default for the fields left empty.
    const shares = [...D.querySelectorAll('[data-tp-share]')];
    const empty = shares.filter((el) => !el.value.trim());
    if (empty.length === shares.length) shares.forEach((el) => { el.placeholder = plain(100 / shares.length, 2); });
  }
  function readTargets(errs) {
    const first = parse($('tp').value, false);
    const prices = [['tp', first]].concat([...D.querySelectorAll('[data-tp-price]')]
      .map((el) => [el.id, parse(el.value, false)]));
    const shareEls = [...D.querySelectorAll('[data-tp-share]')];
    if (prices.length === 1) {
      if (first !== null && !(first > 0)) errs.push(['tp', T.errNumber]);
      return first > 0 ? first : null;
    }
    const out = [];
    let total = 0;
    prices.forEach(([id, price], i) => {
      const el = shareEls[i], raw = el.value.trim(), share = raw ? parse(raw, false) : 100 / prices.length;
      if (price === null) errs.push([id, T.errRequired]);
      else if (!(price > 0)) errs.push([id, T.errNumber]);
      if (!(share > 0 && share <= 100)) errs.push([el.id, T.errNumber]);
      total += share;
      out.push({ price, share: share / 100 });
    });
    if (Math.abs(total - 100) > 0.01 && !errs.length) errs.push([shareEls[shareEls.length - 1].id, T.errShares]);
    // Rounded so the shares add up to exactly 1 (the API checks the sum).
    if (!errs.length) {
      let left = 1;
      out.forEach((o, i) => { o.share = i === out.length - 1 ? +left.toFixed(10) : +o.share.toFixed(6); left -= o.share; });
    }
    return out;
  }

  // ---------- ATR stop (advancedScenarios) ----------
  // ATR(14) of the pair's daily history from the API (`/calculate/atr` with a symbol); the stop is that
  // times the multiplier typed in the stop field. Kept per pair for the page's life.
  const atrs = {};
  let atrSeq = 0;
  async function loadAtr() {
    const sym = norm($('sym').value);
    if (stopMode() !== 'atr' || !instruments[sym] || atrs[sym]) { showAtr(); return; }
    const mine = ++atrSeq;
    showAtr(T.atrLoading);
    const r = await api('/api/v1/calculate/atr', { symbol: sym, period: 14, days: 60 });
    if (mine !== atrSeq) return;
    if (r.status === 200 && r.data && r.data.latestAtr > 0) {
      atrs[sym] = r.data;
      showAtr();
      changed(0);
    } else showAtr(T.atrMissing);
  }
  function showAtr(msg) {
    const h = $('stop-h'), a = atrs[norm($('sym').value)];
    if (!h) return;
    h.hidden = stopMode() !== 'atr';
    if (h.hidden) return;
    if (msg || !a) { h.textContent = msg || T.atrLoading; return; }
    const dev = (a.flags || []).some((f) => f.code === 'DEVELOPMENT_HISTORY');
    h.innerHTML = t('atrLine', { v: esc(priceText(a.latestAtr)), days: num(((a.history || {}).observations) || 60, 0) }) +
      (dev ? ' ' + t('atrDev') : '');
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
    const typed = entrySrc !== 'market' && $('entry').value.trim(); // the trader's (or host's) own entry
    h.classList.toggle('note', !!quote && ((quote.stale && !typed) || quote.live === false));
    if (!quote || (quote.stale && typed)) { h.textContent = T.entryHint; return; }
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
    ['bal', 'sym', 'entry', 'stop', 'risk', 'tp', 'lev', 'spread', 'comm'].forEach(clearErr);
    D.querySelectorAll('[data-tp-price],[data-tp-share]').forEach((el) => clearErr(el.id));
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
    const sm = stopMode(), stop = req('stop', false, sm === 'atr' ? 100 : 1e9);
    if (!entry || sm !== 'price') v.direction = side();
    if (sm === 'pips') v.stopLossPips = stop;
    else if (sm === 'points') v.stopLossPoints = stop;
    else if (sm === 'atr') {
      const a = atrs[v.currencyPair];
      if (!a) errs.push(['stop', T.atrLoading]);
      else { v.atr = a.latestAtr; v.atrMultiplier = stop; }
    } else {
      v.stopLoss = stop;
      if (stop && stop === v.entryPrice) errs.push(['stop', T.errStopEq]);
    }
    const rm = riskMode(), risk = req('risk', rm !== 'lots', rm === 'pct' ? 100 : 1e13);
    v[{ pct: 'riskPercentage', amt: 'riskAmount', lots: 'lots' }[rm]] = risk;
    const tp = readTargets(errs);
    if (tp) v.takeProfit = tp;
    const lev = opt('lev', 1);
    if (lev >= 1) v.leverage = lev;
    if ($('more')) {
      const spread = parse($('spread').value), comm = parse($('comm').value, true);
      if (spread !== null && !(spread >= 0)) errs.push(['spread', T.errNumber]);
      else if (spread > 0 && sm === 'atr') { v.spreadPips = spread; v.spreadAdjustStop = true; }
      if (comm !== null && !(comm >= 0)) errs.push(['comm', T.errNumber]);
      else if (comm > 0) v.commissionPerLot = comm;
    }
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
    $('acts').hidden = true;
    $('share-u').hidden = true;
    $('acts-s').textContent = '';
  }
  function stale(on) {
    const res = $('res');
    if (!res) return;
    res.toggleAttribute('data-stale', on);
    $('out').inert = on;
    $('copy').disabled = on; // a copied answer must belong to the inputs too
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
      $('acts').hidden = false;
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
    const ld = decimals(ins.lotStep || 0.01), reverse = req.lots != null;
    const row = (k, v, cls) => `<div${cls ? ` class="${cls}"` : ''}><dt>${k}</dt><dd>${v}</dd></div>`;
    // Amounts and percentages are isolated (<bdi>) so a right-to-left page keeps each one whole and in order.
    const amt = (v, id) => `<bdi${id ? ` id="${id}"` : ''}>${money(v, c)}</bdi>`;
    const share = (p, id) => `<bdi class="mut"${id ? ` id="${id}"` : ''}>(${pct(p)})</bdi>`;
    const flags = (d.flags || []).map((f) => `<li>${flagText(f, c)}</li>`).join('');
    // Reverse mode (lots given): the headline is the money at risk; otherwise the size.
    let html = reverse
      ? `<p class="big"><span class="k" id="r-big-k">${t('riskOfSize')}</span> <output id="r-big"` +
        ` aria-labelledby="r-big-k"><bdi>${money(d.maxLoss, c)}</bdi></output> ${share(d.riskPercentage, 'r-big-pct')}</p>`
      : `<p class="big"><span class="k" id="r-lots-k">${t('lots')}</span> <output id="r-lots"` +
        ` aria-labelledby="r-lots-k">${num(d.lotSize, ld)}</output> <span class="u">${t('lotsUnit')}</span></p>`;
    html += `<p class="sub">${t(d.direction === 'short' ? 'short' : 'long')} ${esc(req.currencyPair)} · ` +
      (reverse ? `<span id="r-lots">${num(d.lotSize, ld)}</span> ${t('lotsUnit')} · ` : '') +
      `<span id="r-units">${num(d.positionSize, 0, 2)}</span> ${t('units')}</p><dl class="kv">` +
      row(t('atRisk'), `${amt(d.maxLoss, 'r-risk')} ${share(d.riskPercentage, 'r-riskpct')}`) +
      (reverse ? '' : row(t('target'), `${amt(d.targetRiskAmount)} ${share(d.targetRiskPercentage)}`)) +
      row(t('stopDist'), t('pips', { n: num(d.stopDistancePips, 0, 1) }) + (req.atr ? ` <span class="mut">${
        t('atrTimes', { m: num(req.atrMultiplier, 0, 2) })}</span>` : '') +
        (req.stopLoss == null ? ` <span class="mut">(${esc(priceText(d.stopLoss))})</span>` : '')) +
      row(t('pipValue'), `<bdi id="r-pip">${money(d.pipValue, c)}</bdi> <span class="mut">` +
        `${t('perLot', { v: iso(money(d.pipValuePerLot, c)) })}</span>`) +
      (d.commission ? row(t('commissionCost'), amt(d.commission, 'r-comm')) : '') +
      (d.requiredMargin == null ? row(t('margin'), '<span id="r-margin">\u2014</span>') :
        row(t('margin'), `${amt(d.requiredMargin, 'r-margin')} <span class="mut">` +
          `${t('marginOf', { p: pct(d.marginPercentage), lev: num(d.leverage, 0, 2) })}</span>`));
    if (d.riskRewardRatio != null) {
      // Said in words, risk first, so it cannot be read backwards ("risk 1 : reward 2").
      html += row(t('rr'), `<span id="r-rr">${t('rrText', { r: num(d.riskRewardRatio, 0, 2) })}</span> <span class="mut">` +
        `${t('profit', { v: iso(money(d.potentialProfit, c)) })}</span>`);
    }
    if (d.takeProfits && d.takeProfits.length > 1) {
      html += `</dl><h3>${t('ladder')}</h3><table class="lt" id="r-ladder"><thead><tr><th scope="col">${t('tpPrice')}</th>` +
        `<th scope="col">${t('tpShare')}</th><th scope="col" class="cap">${t('lotsUnit')}</th><th scope="col">${
          t('rr')}</th><th scope="col">${t('profitCol')}</th></tr></thead><tbody>` +
        d.takeProfits.map((l) => `<tr><td>${esc(priceText(l.price))}</td><td>${pct(l.share * 100)}</td><td>${
          num(l.lots, ld)}</td><td>${t('rrText', { r: num(l.riskRewardRatio, 0, 2) })}</td><td>${amt(l.grossProfit)}</td></tr>`)
          .join('') + '</tbody></table><dl class="kv">';
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
      rewardToRisk: v.prr, numberOfTrades: v.pn, paths: 2000, seed: 19 }; // seeded: the same figures every run
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
      `<div><dt>${t('medianFinal')}</dt><dd id="p-median">${iso(money(d.medianFinalEquity, c))}</dd></div>` +
      `<div><dt>${t('range')}</dt><dd>${iso(money(fp.p5, c))} – ${iso(money(fp.p95, c))}</dd></div>` +
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
    // Each percentile steps up or down with every trade (with a 50 % win rate the median alternates between
    // odd and even trade counts): drawn through every point, the line zigzags. A centred moving average over
    // 2h trades (half weight at both ends, which cancels an odd/even alternation exactly); the ends kept
    // exact: the start and the final figures the table lists.
    const k = Math.max(1, Math.round(n / 25));
    const smooth = (a) => a.map((v, i) => {
      const h = Math.min(k, i, n - i);
      let sum = 0;
      for (let j = -h; j <= h; j++) sum += a[i + j] * (Math.abs(j) === h && h ? 0.5 : 1);
      return h ? sum / (2 * h) : v;
    });
    const pts = (a) => smooth(a).map((v, i) => [+x(i), +y(v)]);
    // Catmull-Rom through the points as cubic Béziers: a smooth curve that still passes through each one.
    const curve = (p, move) => p.map((q, i) => {
      if (!i) return (move ? 'M' : 'L') + q[0] + ',' + q[1];
      const a = p[i - 2] || p[i - 1], b = p[i - 1], d = p[i + 1] || q;
      const c1 = [b[0] + (q[0] - a[0]) / 6, b[1] + (q[1] - a[1]) / 6], c2 = [q[0] - (d[0] - b[0]) / 6, q[1] - (d[1] - b[1]) / 6];
      return `C${c1[0].toFixed(1)},${c1[1].toFixed(1)} ${c2[0].toFixed(1)},${c2[1].toFixed(1)} ${q[0]},${q[1]}`;
    }).join('');
    const band = (a, b, cls) => `<path class="${cls}" d="${curve(pts(a), true)}${curve(pts(b).reverse(), false)}Z"/>`;
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
      `<path class="ln" d="${curve(pts(f.p50), true)}"/>` +
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
    const inp = (i, k, v, label, extra) => `<td data-l="${label}"${k === 'lots' ? ' class="cap"' : ''}><input data-i="${i}" data-k="${k}" aria-label="${label} ${i + 1}"` +
      ` autocomplete="off" value="${v == null ? '' : esc(typeof v === 'number' ? plain(v) : v)}" ${extra}></td>`;
    $('prows').innerHTML = portfolio.map((p, i) => '<tr>' +
      inp(i, 'currencyPair', p.currencyPair, t('instrument'), 'list="syms" spellcheck="false"') +
      `<td data-l="${t('side')}"><select data-i="${i}" data-k="side" aria-label="${t('side')} ${i + 1}">` +
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
    // Correlation from a year of daily history when there are two pairs or more to correlate.
    if (FEAT.correlationAnalysis && new Set(positions.map((p) => p.currencyPair)).size > 1) body.historyDays = 250;
    const errs = [], rates = readRates('q', errs);
    if (errs.length) { errs.forEach(([id, m]) => setErr(id, m)); $(errs[0][0]).focus(); return; }
    if (rates) body.conversionRates = rates;
    const r = await api('/api/v1/calculate/portfolio', body);
    if (r.status !== 200) { apiError(r, {}, 'q', true); return; }
    banner('');
    const d = r.data, c = body.accountCurrency;
    const bars = d.positions.map((p) => `<li><span class="bl">${esc(p.currencyPair)} ${t(p.side === 'short' ? 'sell'
      : 'buy')} ${num(p.lots, 2)}</span><span class="bar"><i style="inline-size:${
      Math.round((p.riskShare || 0) * 100)}%"></i></span><span class="bv">${iso(money(p.riskAtStop || 0, c))} · ${
      iso(pct((p.riskShare || 0) * 100))}</span></li>`).join('');
    const ex = Object.entries(d.netExposureByCurrency || {}).map(([k, v]) =>
      `<li><b>${esc(k)}</b> ${num(v.amount, 0, 2)}</li>`).join('');
    const flags = (d.flags || []).map((f) => `<li>${flagText(f, c)}</li>`).join('');
    $('qout').innerHTML = '<dl class="kv">' +
      `<div><dt>${t('totalRisk')}</dt><dd id="q-risk">${iso(money(d.totalRisk, c))}${d.totalRiskPercentage != null
        ? ` <bdi class="mut">(${pct(d.totalRiskPercentage)})</bdi>` : ''}</dd></div>` +
      `<div><dt>${t('totalMargin')}</dt><dd>${d.totalMargin == null ? '\u2014' : iso(money(d.totalMargin, c))}${
        d.marginPercentage != null ? ` <bdi class="mut">(${pct(d.marginPercentage)})</bdi>` : ''}</dd></div>` +
      (d.largestContributor ? `<div><dt>${t('largest')}</dt><dd>${esc(d.largestContributor.currencyPair)} · ${
        iso(money(d.largestContributor.riskAtStop, c))}</dd></div>` : '') +
      (d.correlationAdjustedRisk != null ? `<div><dt>${t('corrRisk')}</dt><dd id="q-corr">${
        iso(money(d.correlationAdjustedRisk, c))}</dd></div>` : '') +
      `</dl>${d.correlation ? heatMap(d.correlation,
        (d.flags || []).some((f) => f.code === 'DEVELOPMENT_HISTORY') ? null : d.history) : ''}<h3>${t('share')}</h3><ul class="bars">${bars}</ul>` +
      (ex ? `<h3>${t('exposure')}</h3><ul class="chips">${ex}</ul>` : '') +
      (flags ? `<div class="warn" role="note"><h3>${t('warnings')}</h3><ul>${flags}</ul></div>` : '');
    post('calculated', { result: d });
  }

  /** The pairs' correlation as a table coloured from -1 (one colour) to +1 (another), values written in. */
  function heatMap(cr, hist) {
    const n = cr.pairs.length, cell = (v) => {
      const a = Math.min(Math.abs(v), 1), pos = v >= 0;
      return `<td class="${pos ? 'cp' : 'cn'}" style="--a:${a.toFixed(2)}">${num(v, 2)}</td>`;
    };
    const dev = hist && hist.development ? `<p class="warn" role="note">${t('flag_DEVELOPMENT_HISTORY')}</p>` : '';
    return `<h3 id="corr-h">${t('corrTitle')}</h3><div class="tw"><table class="hm" id="q-heat" aria-labelledby="corr-h">` +
      `<thead><tr><td></td>${cr.pairs.map((p) => `<th scope="col">${esc(p)}</th>`).join('')}</tr></thead><tbody>` +
      cr.matrix.map((r, i) => `<tr><th scope="row">${esc(cr.pairs[i])}</th>${r.slice(0, n).map(cell).join('')}</tr>`)
        .join('') + `</tbody></table></div><p class="mut">${t('corrNote', { n: num(cr.observations, 0) })}</p>${dev}`;
  }

  // ---------- host messages ----------
  const setVal = (id, v, o) => {
    if (v == null || v === '' || !Number.isFinite(+v) || +v <= 0) return;
    $(id).value = nf({ useGrouping: false, minimumFractionDigits: o.min || 0, maximumFractionDigits: o.max }).format(+v);
  };
  const recalc = () => changed(30); // several host messages in a row give one calculation
  const HANDLERS = {
    context(p) {
      // The host page's address (the loader sends it) makes share links open that page; its #fxr= the inputs.
      if (typeof p.href === 'string' && p.href.length < 2048 && p.href.startsWith(PARENT + '/')) hostHref = p.href;
      if (typeof p.presets === 'string' && p.presets.length < 65536) {
        try { presetList = JSON.parse(p.presets); } catch (e) { presetList = []; }
        if ($('preset')) listPresets();
      }
      if (typeof p.state === 'string' && p.state && p.state.length < 2048) applyState(readShared('#fxr=' + p.state));
    },
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
    if (BOOT.mode === 'page') applyState(readShared(location.hash));
    post('ready', { version: VERSION });
  }
  start();
})();
