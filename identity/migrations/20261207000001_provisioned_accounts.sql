-- Portable SQL: the same migration runs on SQLite and PostgreSQL.

-- When IDENTITY_ACCOUNTS last set this account's credentials (milliseconds
-- since the Unix epoch); NULL for an account signed up through POST /accounts.
-- Operator scopes attach only to accounts where it is set, so an operator's
-- email registered by someone else before it was provisioned never carries
-- them (provisioning takes such an account over).
ALTER TABLE accounts ADD COLUMN provisioned_at BIGINT;
