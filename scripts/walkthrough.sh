#!/usr/bin/env bash
# The README's checkout walkthrough, exactly (make test checks the two agree and runs it
# against `make run`). Needs curl and jq.
set -euo pipefail
API="${API:-http://127.0.0.1:8080}"
# --- walkthrough ---
EMAIL="ann.$RANDOM$RANDOM@example.com"
curl -fsS -X POST "$API/api/v1/auth/register" -H 'Content-Type: application/json' \
  -d "{\"email\":\"$EMAIL\",\"password\":\"a long passphrase\",\"first_name\":\"Ann\",\"last_name\":\"Lee\"}"
TOKEN=$(curl -fsS -X POST "$API/api/v1/auth/login" -H 'Content-Type: application/json' \
  -d "{\"email\":\"$EMAIL\",\"password\":\"a long passphrase\"}" | jq -r .access_token)
PRODUCT=$(curl -fsS "$API/api/v1/products" | jq -r '.items[0].id')
curl -fsS -X POST "$API/api/v1/cart/items" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d "{\"product_id\":\"$PRODUCT\",\"quantity\":2}"
ORDER=$(curl -fsS -X POST "$API/api/v1/orders" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -H "Idempotency-Key: $(cat /proc/sys/kernel/random/uuid)" \
  -d "{\"payment_method\":\"${PAYMENT_METHOD:-tok_visa}\",\"shipping_address\":{\"line1\":\"1 Main St\",\"city\":\"Berlin\",\"postal_code\":\"10115\",\"country\":\"DE\"}}" \
  | jq -r .id)
for _ in $(seq 1 30); do
  STATUS=$(curl -fsS "$API/api/v1/orders/$ORDER" -H "Authorization: Bearer $TOKEN" | jq -r .status)
  echo "order $ORDER: $STATUS"
  [ "$STATUS" = CONFIRMED ] || [ "$STATUS" = CANCELLED ] && break
  sleep 1
done
# --- end ---
[ "$STATUS" = CONFIRMED ] || { echo "walkthrough: the order ended $STATUS, not CONFIRMED" >&2; exit 1; }
echo "walkthrough: order $ORDER CONFIRMED"
