#!/usr/bin/env bash
# The README walkthrough with Stripe: `make run` against localstripe (the Stripe emulator
# services.sh starts), with localstripe's webhooks registered at the API, once with automatic
# capture (the PaymentIntent must be `succeeded`) and once with manual capture (it must be
# `requires_capture` until the order ships, then `succeeded`). make test runs this after the
# plain walkthrough. Needs curl and jq.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
API="http://127.0.0.1:${HTTP_PORT:-8080}"

export PAYMENT_PROVIDER=stripe STRIPE_API_BASE="$LOCALSTRIPE_URL"
export STRIPE_SECRET_KEY="sk_test_walkthrough" STRIPE_WEBHOOK_SECRET="whsec_walkthrough_$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
curl -fsS -X POST "$LOCALSTRIPE_URL/_config/webhooks/walkthrough" \
  -d "url=$API/api/v1/webhooks/stripe" -d "secret=$STRIPE_WEBHOOK_SECRET" >/dev/null

# On failure, the logs that say why.
trap 'status=$?; [ $status = 0 ] || for log in emporium-api emporium-payment-worker emporium-order-worker; do echo "--- $log" >&2; tail -15 "$LOCAL/logs/$log.log" >&2; done' EXIT

intent_status() { curl -fsS -u "$STRIPE_SECRET_KEY:" "$LOCALSTRIPE_URL/v1/payment_intents/$1" | jq -r .status; }

for capture in automatic manual; do
  echo "walkthrough-stripe: make run with PAYMENT_PROVIDER=stripe PAYMENT_CAPTURE=$capture"
  PAYMENT_CAPTURE=$capture EMPORIUM_SKIP_BUILD=1 bash scripts/run.sh >/dev/null
  out=$(PAYMENT_METHOD=pm_card_visa bash scripts/walkthrough.sh)
  order=$(echo "$out" | sed -n 's/^walkthrough: order \(.*\) CONFIRMED$/\1/p')
  [ -n "$order" ] || { echo "$out" >&2; echo "walkthrough-stripe: no confirmed order" >&2; exit 1; }
  intent=$(psql -qtA "$DATABASE_URL" -c "SELECT provider_reference FROM payments WHERE order_id = '$order'")
  status=$(intent_status "$intent")
  echo "walkthrough-stripe: order $order CONFIRMED, PaymentIntent $intent is $status"
  if [ "$capture" = automatic ]; then
    [ "$status" = succeeded ] || { echo "walkthrough-stripe: expected succeeded" >&2; exit 1; }
  else
    [ "$status" = requires_capture ] || { echo "walkthrough-stripe: expected requires_capture" >&2; exit 1; }
    admin=$(curl -fsS -X POST "$API/api/v1/auth/login" -H 'Content-Type: application/json' \
      -d "{\"email\":\"$SEED_ADMIN_EMAIL\",\"password\":\"$SEED_ADMIN_PASSWORD\"}" | jq -r .access_token)
    curl -fsS -X PUT "$API/api/v1/orders/$order/status" -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
      -d '{"status":"SHIPPED"}' >/dev/null
    for _ in $(seq 1 30); do
      status=$(intent_status "$intent")
      [ "$status" = succeeded ] && break
      sleep 1
    done
    echo "walkthrough-stripe: order $order SHIPPED, PaymentIntent $intent is $status"
    [ "$status" = succeeded ] || { echo "walkthrough-stripe: the shipped order's charge was not captured" >&2; exit 1; }
  fi
done
bash scripts/stop.sh --apps-only
