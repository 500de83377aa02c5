// Emporium storefront: the live order status. An element with data-live-stream listens to
// that Server-Sent Events stream and, on each change, re-fetches its data-live-src (HTML the
// server renders) in place; the stream ends when the order is settled. Without JavaScript the
// page is the same and a reload shows the latest status.
(function () {
  'use strict';
  var el = document.querySelector('[data-live-stream]');
  if (!el || el.getAttribute('data-settled') === 'true' || !window.EventSource) { return; }
  var busy = false, again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(el.getAttribute('data-live-src'), { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(function (html) { el.innerHTML = html; })
      .catch(function () { /* the next event tries again */ })
      .then(function () { busy = false; if (again) { again = false; refresh(); } });
  }
  var source = new EventSource(el.getAttribute('data-live-stream'));
  source.addEventListener('change', refresh);
  source.addEventListener('status', refresh);
  // The server ends the stream once the order is settled; do not reconnect then.
  source.addEventListener('error', function () {
    if (source.readyState === EventSource.CLOSED) { return; }
    fetch(el.getAttribute('data-live-src'), { credentials: 'same-origin' })
      .then(function (response) { return response.text(); })
      .then(function (html) {
        el.innerHTML = html;
        var status = el.querySelector('#order-status');
        if (status && ['PENDING', 'AWAITING_PAYMENT'].indexOf(status.textContent.trim()) < 0) { source.close(); }
      })
      .catch(function () {});
  });
})();
