//! Accounts provisioned by configuration (`IDENTITY_ACCOUNTS`), created at
//! start-up when missing.
//!
//! This is how operator accounts come to exist: an email listed in
//! `IDENTITY_OPERATORS` cannot be signed up through `POST /accounts`
//! (whoever registered it first would otherwise hold the operator scopes), so
//! it is provisioned here, or by hand in the store. An account that exists
//! already is left as it is: its password is not reset by a restart.

use anyhow::Context;
use serde::Deserialize;

use crate::domain::{CustomerId, Email, Name, Password};
use crate::passwords::Hasher;
use crate::store::{NewAccount, Store};

/// One account to provision. Its `Debug` shows no password.
#[derive(Debug)]
pub struct SeedAccount {
    email: Email,
    name: Name,
    password: Password,
}

/// The JSON as written: `[{"email", "password", "name"}]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeedAccount {
    email: String,
    password: String,
    name: String,
}

impl SeedAccount {
    /// Reads the JSON list, each account under the rules of `POST /accounts`.
    ///
    /// # Errors
    /// When the JSON is not such a list or an account breaks a rule (named by
    /// its email, never by its password).
    pub fn parse_list(json: &str) -> anyhow::Result<Vec<Self>> {
        let raw: Vec<RawSeedAccount> =
            serde_json::from_str(json).context("not a list of {email, password, name}")?;
        raw.into_iter()
            .map(|account| {
                let email = Email::parse(&account.email)
                    .with_context(|| format!("{:?} is not an email", account.email))?;
                let name = Name::parse(&account.name)
                    .with_context(|| format!("the name of {}", email.as_str()))?;
                let password = Password::new_for(account.password, &email)
                    .with_context(|| format!("the password of {}", email.as_str()))?;
                Ok(Self {
                    email,
                    name,
                    password,
                })
            })
            .collect()
    }
}

/// Creates the accounts that do not exist yet; returns how many were created.
///
/// # Errors
/// When hashing or the store fails.
pub async fn provision(
    store: &Store,
    hasher: &Hasher,
    accounts: &[SeedAccount],
) -> anyhow::Result<usize> {
    let mut created = 0;
    for account in accounts {
        if store.credentials(&account.email).await?.is_some() {
            continue;
        }
        // At start-up, before serving: hashing on this thread blocks nobody.
        let password_hash = hasher.hash(&account.password)?;
        let new = NewAccount {
            customer_id: CustomerId::generate(),
            email: account.email.clone(),
            name: account.name.clone(),
            password_hash,
        };
        if store.create_account(&new).await? {
            tracing::info!(
                customer_id = new.customer_id.as_str(),
                "provisioned account created"
            );
            created += 1;
        }
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_follow_the_sign_up_rules_and_never_print_passwords() {
        let list = SeedAccount::parse_list(
            r#"[{"email": " Ops@Shop.Example ", "password": "operator-demo-password", "name": "Ops"}]"#,
        )
        .expect("a valid list");
        assert_eq!(list[0].email.as_str(), "ops@shop.example");
        assert!(!format!("{list:?}").contains("operator-demo-password"));

        for bad in [
            r#"[{"email": "nope", "password": "long enough pw", "name": "X"}]"#,
            r#"[{"email": "a@b.example", "password": "short", "name": "X"}]"#,
            r#"[{"email": "a@b.example", "password": "long enough pw"}]"#,
            r#"{"email": "a@b.example"}"#,
        ] {
            let err = SeedAccount::parse_list(bad).expect_err(bad);
            assert!(!format!("{err:#}").contains("short"), "{err:#}");
        }
    }
}
