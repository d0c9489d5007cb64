-- Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d),
-- as POSTGRES_USER, who then owns them all: one database per service that keeps state.
-- The services create their tables themselves (migrations at start-up).
CREATE DATABASE shop_inventory;
CREATE DATABASE shop_order;
CREATE DATABASE shop_pricing;
CREATE DATABASE shop_identity;
