#!/usr/bin/env bash
# The seed's curl commands, checked: each must answer as the HTTP contract says.
# Usage: scripts/seed-commands.sh [INVENTORY_URL ORDER_URL PRICING_URL]
# (defaults: the local stack on 7001/7002/7003).
set -euo pipefail
inventory=${1:-http://localhost:7001}
order=${2:-http://localhost:7002}
pricing=${3:-http://localhost:7003}

failures=0
check() { # description, jq expression that must be true, curl arguments...
  local what=$1 expr=$2
  shift 2
  local body
  body=$(curl -s "$@")
  if echo "$body" | jq -e "$expr" >/dev/null 2>&1; then
    echo "ok    $what"
  else
    echo "FAIL  $what: $body"
    failures=$((failures + 1))
  fi
}

check "GET /items lists the catalogue" '.count >= 12 and (.items | map(.sku) | index("A001") != null)' "$inventory/items"
check "GET /items/A001 is the laptop" '.sku == "A001" and .name == "Laptop" and .category == "electronics"' "$inventory/items/A001"
check "inventory /health" '.service == "inventory" and .status == "ok"' "$inventory/health"
check "GET /price/A001 is 899.99 after 10% off" '.base_price == 999.99 and .final_price == 899.99 and .discount_percent == 10' "$pricing/price/A001"
check "pricing /health" '.service == "pricing" and .status == "ok"' "$pricing/health"
check "POST /orders confirms the seed order" \
  '(.status == "confirmed" or .status == "pending_pricing") and (.items | length) == 2 and (.order_id | length) > 0' \
  -X POST "$order/orders" -H "Content-Type: application/json" -d '{"customer_id": "test", "skus": ["A001", "B001"]}'
check "order /health shows both breakers" '.service == "order" and (.checks.inventory.breaker.state | type) == "string" and (.checks.pricing.breaker.state | type) == "string"' "$order/health"

echo "$((7 - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
