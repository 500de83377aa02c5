// Emporium console: live updates. Elements with data-live-src are re-fetched (server-rendered
// HTML) when an event they care about arrives over /admin/live (Server-Sent Events):
// data-live-order="<id>" for one order's events, data-live-types="order. payment." for type
// prefixes, neither for every event; data-live-every="ms" also refreshes on a timer. When the
// stream is down the page polls every 5 s instead. Pages work without this script.
(function () {
  'use strict';
  var state = document.getElementById('live-state');
  var parts = Array.prototype.slice.call(document.querySelectorAll('[data-live-src]'));
  var minGap = 1000, pollEvery = 5000;

  function setState(text) {
    if (!state) { return; }
    state.textContent = text;
    state.setAttribute('data-state', text);
  }

  function refresh(el) {
    el.liveBusy = true;
    el.liveLast = Date.now();
    fetch(el.getAttribute('data-live-src'), { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(function (html) { el.innerHTML = html; })
      .catch(function () { /* the next event or poll tries again */ })
      .then(function () {
        el.liveBusy = false;
        if (el.liveAgain) { el.liveAgain = false; schedule(el); }
      });
  }

  // At most one fetch in flight and one per second per element; a burst collapses into one.
  function schedule(el) {
    if (el.liveBusy) { el.liveAgain = true; return; }
    var wait = (el.liveLast || 0) + minGap - Date.now();
    if (wait > 0) {
      if (!el.liveTimer) { el.liveTimer = setTimeout(function () { el.liveTimer = null; refresh(el); }, wait); }
      return;
    }
    refresh(el);
  }

  function concerns(el, change) {
    var order = el.getAttribute('data-live-order');
    if (order) { return change.order_id === order; }
    var types = el.getAttribute('data-live-types');
    if (!types) { return true; }
    return types.split(' ').some(function (prefix) { return change.type && change.type.indexOf(prefix) === 0; });
  }

  var poller = null;
  function startPolling() {
    setState(parts.length ? 'polling' : 'offline');
    if (poller || !parts.length) { return; }
    poller = setInterval(function () { parts.forEach(schedule); }, pollEvery);
  }
  function stopPolling() {
    if (poller) { clearInterval(poller); poller = null; }
  }

  parts.forEach(function (el) {
    var every = parseInt(el.getAttribute('data-live-every') || '0', 10);
    if (every > 0) { setInterval(function () { schedule(el); }, every); }
  });

  if (!state || !parts.length) { return; } // signed out, or nothing on this page is live
  if (!window.EventSource) { startPolling(); return; }
  var source = new EventSource('/admin/live');
  source.addEventListener('open', function () { setState('live'); stopPolling(); });
  source.addEventListener('change', function (message) {
    var change;
    try { change = JSON.parse(message.data); } catch (e) { return; }
    parts.forEach(function (el) { if (concerns(el, change)) { schedule(el); } });
  });
  // EventSource reconnects by itself (sending Last-Event-ID); meanwhile, poll.
  source.addEventListener('error', function () { startPolling(); });
})();
