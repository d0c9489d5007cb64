#!/bin/bash
# Run once by the official postgres image's entrypoint, when the data volume is
# empty: one role and one database per service, each service owning its database
# and nothing else (no shared tables, no cross-database access). The role
# passwords come from the Secret shop-secrets, mounted as files.
set -euo pipefail

secrets=${POSTGRES_SECRETS_DIR:-/etc/postgres-secrets}
inventory_password=$(<"$secrets/INVENTORY_DB_PASSWORD")
order_password=$(<"$secrets/ORDER_DB_PASSWORD")
identity_password=$(<"$secrets/IDENTITY_DB_PASSWORD")
pricing_password=$(<"$secrets/PRICING_DB_PASSWORD")

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  --set inventory_password="$inventory_password" \
  --set order_password="$order_password" \
  --set pricing_password="$pricing_password" \
  --set identity_password="$identity_password" <<'SQL'
CREATE ROLE inventory_svc LOGIN PASSWORD :'inventory_password';
CREATE ROLE order_svc LOGIN PASSWORD :'order_password';
CREATE ROLE identity_svc LOGIN PASSWORD :'identity_password';
CREATE ROLE pricing_svc LOGIN PASSWORD :'pricing_password';
CREATE DATABASE shop_inventory OWNER inventory_svc;
CREATE DATABASE shop_order OWNER order_svc;
CREATE DATABASE shop_identity OWNER identity_svc;
CREATE DATABASE shop_pricing OWNER pricing_svc;
REVOKE ALL ON DATABASE shop_inventory FROM PUBLIC;
REVOKE ALL ON DATABASE shop_order FROM PUBLIC;
REVOKE ALL ON DATABASE shop_identity FROM PUBLIC;
REVOKE ALL ON DATABASE shop_pricing FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE shop_inventory TO inventory_svc;
GRANT CONNECT, TEMPORARY ON DATABASE shop_order TO order_svc;
GRANT CONNECT, TEMPORARY ON DATABASE shop_identity TO identity_svc;
GRANT CONNECT, TEMPORARY ON DATABASE shop_pricing TO pricing_svc;
SQL
