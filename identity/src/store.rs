//! All of identity's SQL: accounts, created once and looked up by email.

use anyhow::Context;
use shared::config::DatabaseConfig;
use shared::db::Database;
use shared::timestamp::now_ms;
use sqlx::Row;

use crate::domain::{CustomerId, Email, Name};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Identity's data. Cheap to clone (the pools are shared).
#[derive(Clone)]
pub struct Store {
    db: Database,
}

/// An account as created.
#[derive(Debug)]
pub struct NewAccount {
    pub customer_id: CustomerId,
    pub email: Email,
    pub name: Name,
    pub password_hash: String,
}

/// What signing in needs to know about an account.
pub struct Credentials {
    pub customer_id: CustomerId,
    pub password_hash: String,
}

impl Store {
    /// Connects and brings the schema up to date.
    ///
    /// # Errors
    /// When the database cannot be reached or a migration fails.
    pub async fn connect(config: &DatabaseConfig) -> anyhow::Result<Self> {
        let db = Database::connect(config).await?;
        db.migrate(&MIGRATOR)
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
        let inserted = sqlx::query(
            "INSERT INTO accounts (customer_id, email, name, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (email) DO NOTHING",
        )
        .bind(account.customer_id.as_str())
        .bind(account.email.as_str())
        .bind(account.name.as_str())
        .bind(&account.password_hash)
        .bind(now_ms())
        .execute(&mut *self.db.write().await?)
        .await
        .context("inserting an account")?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// The id and password hash of the account with this email, if any.
    ///
    /// # Errors
    /// On a database error.
    #[tracing::instrument(skip_all)]
    pub async fn credentials(&self, email: &Email) -> anyhow::Result<Option<Credentials>> {
        let row = sqlx::query("SELECT customer_id, password_hash FROM accounts WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(&mut *self.db.read().await?)
            .await
            .context("looking up an account")?;
        row.map(|row| {
            Ok(Credentials {
                customer_id: CustomerId::from_stored(row.try_get("customer_id")?),
                password_hash: row.try_get("password_hash")?,
            })
        })
        .transpose()
    }
}
