//! All of identity's SQL: accounts, created (signed up or provisioned),
//! looked up by email, and taken over by provisioning.

use anyhow::Context;
use shared_db::Database;
use shared_db::DatabaseConfig;
use shared_http::timestamp::now_ms;
use sqlx::Row;

use crate::domain::{CustomerId, Email, Name};

/// Identity's data. Cheap to clone (the pools are shared).
#[derive(Clone)]
pub struct Store {
    db: Database,
}

/// Who set an account's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Whoever called `POST /accounts`.
    SignedUp,
    /// The operator configuration (`IDENTITY_ACCOUNTS`): the only accounts
    /// that may carry operator scopes.
    Provisioned,
}

/// An account as created (or as provisioning rewrites it).
#[derive(Debug)]
pub struct NewAccount {
    pub customer_id: CustomerId,
    pub email: Email,
    pub name: Name,
    pub password_hash: String,
    pub origin: Origin,
}

/// What signing in needs to know about an account.
pub struct Credentials {
    pub customer_id: CustomerId,
    pub password_hash: String,
    pub origin: Origin,
}

impl Store {
    /// Connects and brings the schema up to date.
    ///
    /// # Errors
    /// When the database cannot be reached or a migration fails.
    pub async fn connect(config: &DatabaseConfig) -> anyhow::Result<Self> {
        let db = Database::connect(config).await?;
        db.migrate(sqlx::migrate!("./migrations"))
            .await
            .context("migrating the identity store")?;
        Ok(Self { db })
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Inserts the account; `false` when the email is taken (nothing written).
    ///
    /// # Errors
    /// On a database error.
    #[tracing::instrument(skip_all)]
    pub async fn create_account(&self, account: &NewAccount) -> anyhow::Result<bool> {
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO accounts (customer_id, email, name, password_hash, created_at, provisioned_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (email) DO NOTHING",
        )
        .bind(account.customer_id.as_str())
        .bind(account.email.as_str())
        .bind(account.name.as_str())
        .bind(&account.password_hash)
        .bind(now)
        .bind((account.origin == Origin::Provisioned).then_some(now))
        .execute(&mut *self.db.write().await?)
        .await
        .context("inserting an account")?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// Provisioning: rewrites the account with `account`'s email (id, name,
    /// password hash) and marks it provisioned; `false` when there is none.
    ///
    /// # Errors
    /// On a database error.
    #[tracing::instrument(skip_all)]
    pub async fn provision_over(&self, account: &NewAccount) -> anyhow::Result<bool> {
        let updated = sqlx::query(
            "UPDATE accounts SET customer_id = $1, name = $2, password_hash = $3, \
             provisioned_at = $4 WHERE email = $5",
        )
        .bind(account.customer_id.as_str())
        .bind(account.name.as_str())
        .bind(&account.password_hash)
        .bind(now_ms())
        .bind(account.email.as_str())
        .execute(&mut *self.db.write().await?)
        .await
        .context("provisioning over an account")?
        .rows_affected();
        Ok(updated == 1)
    }

    /// The id, password hash and origin of the account with this email, if any.
    ///
    /// # Errors
    /// On a database error.
    #[tracing::instrument(skip_all)]
    pub async fn credentials(&self, email: &Email) -> anyhow::Result<Option<Credentials>> {
        let row = self
            .db
            .reading(async |conn| {
                let select = sqlx::query(
                    "SELECT customer_id, password_hash, provisioned_at FROM accounts WHERE email = $1",
                );
                Ok(select.bind(email.as_str()).fetch_optional(&mut **conn).await?)
            })
            .await
            .context("looking up an account")?;
        row.map(|row| {
            Ok(Credentials {
                customer_id: CustomerId::from_stored(row.try_get("customer_id")?),
                password_hash: row.try_get("password_hash")?,
                origin: match row.try_get::<Option<i64>, _>("provisioned_at")? {
                    Some(_) => Origin::Provisioned,
                    None => Origin::SignedUp,
                },
            })
        })
        .transpose()
    }
}
