/*! ForexRisk widget loader v1 | embed:
 * <script src="https://<host>/widget.js" data-key="fxr_live_pk_..." async></script>
 * <div id="risk-calculator" data-broker="acme-forex"></div>
 * JS: ForexRisk.mount(el, {broker, locale, theme, height, features}) -> {setAccount, setSymbol, setPrices,
 * setTheme, on, destroy}; ForexRisk.get(el) -> the handle of a mounted (also auto-mounted) element.
 * Plain ES2020, served as written (no build step). */
(function () {
  'use strict';
  if (window.ForexRisk && window.ForexRisk.mount) return; // loaded twice: the first copy serves both
  var script = document.currentScript || document.querySelector('script[src*="widget.js"][data-key]');
  if (!script) return;
  var BASE = new URL(script.src).origin;
  var KEY = script.getAttribute('data-key') || '';
  var LOCALES = ['en', 'de', 'es', 'fr', 'it', 'pt', 'ja', 'zh', 'ar'];
  var widgets = new WeakMap();

  function warn(m) { if (window.console) console.warn('[ForexRisk] ' + m); }

  function mount(el, options) {
    if (typeof el === 'string') el = document.querySelector(el);
    if (!el || el.nodeType !== 1) throw new TypeError('ForexRisk.mount: a container element is required');
    var old = widgets.get(el);
    if (old) old.destroy(); // re-mount replaces, never duplicates
    var o = options || {}, d = el.dataset;
    var broker = o.broker || d.broker, key = o.key || KEY;
    var locale = o.locale || d.locale, theme = o.theme || d.theme || 'auto';
    var fixed = +(o.height || d.height) || 0, features = o.features || d.features || '';
    if (Array.isArray(features)) features = features.join(',');
    var wid = 'fxr' + Math.random().toString(36).slice(2, 10) + Date.now().toString(36);
    var listeners = {}, queue = [], frame = null, ready = false, dead = false;

    function emit(type, payload) {
      (listeners[type] || []).slice().forEach(function (cb) {
        try { cb(payload); } catch (e) { setTimeout(function () { throw e; }); }
      });
      el.dispatchEvent(new CustomEvent('forexrisk:' + type, { detail: payload }));
    }
    function fail(code, message) { warn(message); emit('error', { code: code, message: message }); }
    function send(type, payload) {
      if (dead) return;
      var msg = { fxr: 1, type: type, wid: wid, payload: payload || {} };
      if (ready && frame && frame.contentWindow) frame.contentWindow.postMessage(msg, BASE);
      else queue.push(msg);
    }
    function onMessage(ev) {
      if (!frame || ev.origin !== BASE || ev.source !== frame.contentWindow) return;
      var m = ev.data;
      if (!m || m.fxr !== 1 || m.wid !== wid || typeof m.type !== 'string') return;
      var p = m.payload || {};
      if (m.type === 'ready') {
        ready = true;
        queue.splice(0).forEach(function (q) { frame.contentWindow.postMessage(q, BASE); });
      } else if (m.type === 'resize' && !fixed && p.height > 0) {
        frame.style.height = Math.min(Math.ceil(p.height), 10000) + 'px';
      } else if (m.type === 'savePresets') {
        if (typeof p.value === 'string' && p.value.length < 65536) {
          try { localStorage.setItem(store, p.value); } catch (e) { /* storage off */ }
        }
        return; // internal: not an event for the host
      }
      emit(m.type, p);
    }

    var handle = {
      wid: wid,
      setAccount: function (a) { send('setAccount', a); return handle; },
      setSymbol: function (s) { send('setSymbol', typeof s === 'string' ? { symbol: s } : s); return handle; },
      setPrices: function (p) { send('setPrices', p); return handle; },
      setTheme: function (t) { send('setTheme', typeof t === 'string' ? { theme: t } : t); return handle; },
      on: function (type, cb) { (listeners[type] = listeners[type] || []).push(cb); return handle; },
      destroy: function () {
        dead = true;
        window.removeEventListener('message', onMessage);
        if (frame && frame.parentNode) frame.parentNode.removeChild(frame);
        if (widgets.get(el) === handle) widgets.delete(el);
      }
    };
    widgets.set(el, handle);
    // Where a share link should open (this page) and the inputs of a link that opened it (#fxr=…).
    // Presets are kept here, in the host page's own storage, which a browser blocking third-party storage
    // still allows (the iframe's would be refused).
    var shared = /(?:^|[#&])fxr=([^&]*)/.exec(location.hash), store = 'fxr:presets:' + broker, kept = '[]';
    try { kept = localStorage.getItem(store) || '[]'; } catch (e) { /* storage off: no presets */ }
    send('context', { href: location.href.split('#')[0], state: shared ? shared[1] : '', presets: kept });
    if (!broker || !key) {
      setTimeout(function () { fail('config', 'data-broker and data-key are required'); });
      return handle;
    }
    window.addEventListener('message', onMessage);
    var loc = LOCALES.indexOf(locale) >= 0 ? locale : '';
    fetch(BASE + '/api/v1/widget/config?broker=' + encodeURIComponent(broker) + '&key=' + encodeURIComponent(key) +
      (loc ? '&locale=' + loc : ''), { credentials: 'omit' })
      .then(function (r) {
        if (!r.ok) throw new Error('config refused (HTTP ' + r.status + '): is this origin on the allow-list?');
        return r.json();
      })
      .then(function (c) {
        if (dead) return;
        var q = '&wid=' + wid + '&locale=' + (loc || c.locale || 'en') +
          '&theme=' + (/^(light|dark|auto)$/.test(theme) ? theme : 'auto') +
          (features ? '&features=' + encodeURIComponent(features) : '');
        var url = new URL(c.frameUrl, BASE);
        if (url.origin !== BASE) throw new Error('unexpected frame origin');
        frame = document.createElement('iframe');
        frame.src = url.href + q;
        frame.title = c.title || ((c.broker && c.broker.name) || broker); // localised by the server
        frame.setAttribute('sandbox', 'allow-scripts allow-same-origin allow-forms');
        frame.setAttribute('allow', '');
        frame.style.cssText = 'border:0;width:100%;display:block;color-scheme:normal;height:' + (fixed || 560) + 'px';
        el.appendChild(frame);
      })
      .catch(function (e) { if (!dead) fail('config', String(e && e.message || e)); });
    return handle;
  }

  function autoMount() {
    document.querySelectorAll('#risk-calculator,[data-forexrisk]').forEach(function (el) {
      if (!widgets.get(el)) mount(el);
    });
  }
  function get(el) { return widgets.get(typeof el === 'string' ? document.querySelector(el) : el) || null; }
  window.ForexRisk = { version: '1', mount: mount, get: get };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', autoMount);
  else autoMount();
  document.dispatchEvent(new CustomEvent('forexrisk:loaded'));
})();
