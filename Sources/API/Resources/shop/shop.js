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

// The pay page: Stripe's card field (Stripe.js, loaded only on this page). Stripe confirms a
// SetupIntent with the card and gives back a payment method id (the number never reaches
// the shop); the shop confirms the order's payment with it; if the bank asks for 3-D Secure,
// Stripe.js completes it here. Then the order page shows the order move, on Stripe's webhook.
(function () {
  'use strict';
  var form = document.getElementById('pay-form');
  if (!form) { return; }
  var button = document.getElementById('pay-button');
  var problem = document.getElementById('pay-problem');
  var progress = document.getElementById('pay-status');
  function say(text) { progress.textContent = text; progress.hidden = false; problem.hidden = true; }
  function fail(text) {
    problem.textContent = text; problem.hidden = false; progress.hidden = true; button.disabled = false;
  }
  if (!window.Stripe) { fail('Stripe\'s card field could not be loaded. Check your connection and reload the page.'); button.disabled = true; return; }
  var stripe = window.Stripe(form.getAttribute('data-key'));
  var card = stripe.elements().create('card');
  card.mount('#card-element');
  var orderPage = form.getAttribute('data-order');
  // A form post to the shop answered with JSON; a refusal rejects with its message.
  function post(url, fields) {
    var body = new URLSearchParams();
    Object.keys(fields).forEach(function (name) { body.set(name, fields[name]); });
    return fetch(url, { method: 'POST', body: body, credentials: 'same-origin', headers: { 'Accept': 'application/json' } })
      .then(function (response) {
        // A page instead of JSON: the session ended (the sign-in page) or the form expired.
        if ((response.headers.get('Content-Type') || '').indexOf('application/json') < 0) {
          return Promise.reject('Your session has ended or the page has expired: reload it (and sign in) to pay.');
        }
        return response.json().then(function (answer) {
          if (!response.ok) { return Promise.reject(answer.message || 'The payment could not be sent; reload the page and try again.'); }
          return answer;
        });
      });
  }
  form.addEventListener('submit', function (event) {
    event.preventDefault();
    if (button.disabled) { return; }
    button.disabled = true;
    say('Checking your card with Stripe…');
    var csrf = form.querySelector('input[name=csrf]').value;
    // Each attempt gets its own SetupIntent: a card that failed can be followed by another.
    post(form.getAttribute('action') + '/setup', { csrf: csrf })
      .then(function (answer) {
        return stripe.confirmCardSetup(answer.setup_secret, { payment_method: { card: card } });
      })
      .then(function (setup) {
        if (setup.error) { return Promise.reject(setup.error.message || 'Stripe refused the card.'); }
        say('Paying…');
        return post(form.getAttribute('action'), { csrf: csrf, payment_method: setup.setupIntent.payment_method });
      })
      .then(function (answer) {
        if (answer.status === 'requires_action') {
          say('Your bank asks you to confirm the payment…');
          return stripe.confirmCardPayment(answer.client_secret).then(function (result) {
            var paid = result.paymentIntent && ['succeeded', 'requires_capture', 'processing'].indexOf(result.paymentIntent.status) >= 0;
            if (result.error || !paid) {
              return Promise.reject('Your bank did not confirm the payment; nothing was charged. Try again, or use another card.');
            }
            window.location.assign(orderPage);
          });
        }
        // Paid, or declined (a decline ends the order and its items go back): the order page
        // shows which, live.
        window.location.assign(orderPage);
      })
      .catch(function (reason) { fail(typeof reason === 'string' ? reason : 'Something went wrong; reload the page and try again.'); });
  });
})();
