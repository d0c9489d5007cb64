#!/usr/bin/env bash
# The access-control journey, checked end to end against a running stack with
# auth required: two customers sign up and sign in, one orders, lists and
# cancels; the other sees none of it; an operator restocks and reprices, and
# the history says who did it.
#
# Usage: scripts/journey.sh IDENTITY_URL INVENTORY_URL PRICING_URL ORDER_URL
#   e.g. the local stack (scripts/run-local.sh with AUTH=on):
#     scripts/journey.sh http://localhost:7004 http://localhost:7001 http://localhost:7003 http://localhost:7002
#   or through the gateway:
#     g=http://localhost:8080; scripts/journey.sh $g/identity $g/inventory $g/pricing $g/order
# The operator signs in with OPERATOR_EMAIL / OPERATOR_PASSWORD (default: the
# demo operator that AUTH=on seeds). Exits non-zero when any step fails.
set -euo pipefail
identity=${1:?identity URL}
inventory=${2:?inventory URL}
pricing=${3:?pricing URL}
order=${4:?order URL}
operator_email=${OPERATOR_EMAIL:-operator@shop.example}
operator_password=${OPERATOR_PASSWORD:-operator-demo-password}

failures=0
body=""
status=""
# call METHOD URL [TOKEN] [JSON]: sets $status and $body.
call() {
  local method=$1 url=$2 token=${3:-} data=${4:-}
  local args=(-s -o /tmp/journey.$$ -w '%{http_code}' -X "$method" "$url")
  [ -n "$token" ] && args+=(-H "Authorization: Bearer $token")
  [ -n "$data" ] && args+=(-H 'Content-Type: application/json' -d "$data")
  status=$(curl "${args[@]}")
  body=$(cat /tmp/journey.$$)
  rm -f /tmp/journey.$$
}
# expect DESCRIPTION STATUS [JQ]: checks the last call.
expect() {
  local what=$1 want=$2 expr=${3:-true}
  if [ "$status" = "$want" ] && echo "$body" | jq -e "$expr" >/dev/null 2>&1; then
    echo "ok    $what"
  else
    echo "FAIL  $what: HTTP $status $body"
    failures=$((failures + 1))
  fi
}

run=$(date +%s%N | tail -c 9)
password="journey-password-$run"
sign_up() { # email name -> customer_id
  call POST "$identity/accounts" "" "{\"email\":\"$1\",\"password\":\"$password\",\"name\":\"$2\"}"
  expect "sign up $1" 201 '.customer_id | length > 0'
}
sign_in() { # email password -> sets $token
  call POST "$identity/sessions" "" "{\"email\":\"$1\",\"password\":\"$2\"}"
  expect "sign in $1" 200 '.token_type == "Bearer" and (.access_token | length) > 0'
  token=$(echo "$body" | jq -r '.access_token // empty')
}

sign_up "alice-$run@journey.example" Alice
alice_id=$(echo "$body" | jq -r .customer_id)
sign_in "alice-$run@journey.example" "$password"
alice=$token
sign_up "bob-$run@journey.example" Bob
sign_in "bob-$run@journey.example" "$password"
bob=$token
sign_in "$operator_email" "$operator_password"
operator=$token

call POST "$order/orders" "" '{"customer_id": "test", "skus": ["A002"]}'
expect "an anonymous order is refused" 401 '.code == "unauthorized"'
call POST "$order/orders" "$alice" '{"items": [{"sku": "A002", "quantity": 1}]}'
expect "alice orders as herself" 201 ".customer_id == \"$alice_id\""
order_id=$(echo "$body" | jq -r '.order_id // empty')
call POST "$order/orders" "$alice" '{"customer_id": "someone-else", "skus": ["A002"]}'
expect "alice cannot order for someone else" 403 '.code == "customer_mismatch"'

call GET "$order/orders" "$alice"
expect "alice lists her order" 200 ".orders | map(.order_id) | index(\"$order_id\") != null"
call GET "$order/orders/$order_id" "$bob"
expect "bob cannot read alice's order" 404 '.code == "order_not_found"'
call GET "$order/orders?customer_id=$alice_id" "$bob"
expect "bob lists none of alice's orders" 200 '.count == 0'
call POST "$order/orders/$order_id/cancel" "$bob"
expect "bob cannot cancel alice's order" 404 '.code == "order_not_found"'
call POST "$order/orders/$order_id/cancel" "$alice"
expect "alice cancels her order" 200 '.status == "cancelled"'

call POST "$inventory/items/A002/stock" "$alice" '{"delta": 5, "reason": "journey"}'
expect "a customer cannot restock" 403 '.code == "forbidden"'
call GET "$inventory/items/A002" ""
before=$(echo "$body" | jq -r .stock)
call POST "$inventory/items/A002/stock" "$operator" '{"delta": 5, "reason": "journey restock"}'
expect "the operator restocks" 200 ".stock == ($before + 5)"
call GET "$inventory/items/A002/history" "$operator"
expect "the history names the operator" 200 '.changes[0].reason == "journey restock" and (.changes[0].actor | length) > 0'
call PUT "$pricing/price/A002" "$alice" '{"base_price": 30.00, "discount_percent": 0, "tiers": []}'
expect "a customer cannot reprice" 403 '.code == "forbidden"'
call PUT "$pricing/price/A002" "$operator" '{"base_price": 27.50, "discount_percent": 0, "tiers": []}'
expect "the operator reprices" 200 '.final_price == 27.5'
call GET "$pricing/price/A002" ""
expect "the new price is served to anyone" 200 '.final_price == 27.5'
call PUT "$pricing/price/A002" "$operator" '{"base_price": 25.50, "discount_percent": 0, "tiers": []}'
expect "the operator puts the price back" 200 '.final_price == 25.5'

if [ "$failures" -gt 0 ]; then
  echo "$failures step(s) failed"
  exit 1
fi
echo "the journey passed"
