//! Accounts provisioned by configuration (`IDENTITY_ACCOUNTS`), brought in
//! line with it at every start.
//!
//! This is how operator accounts come to exist, and the only way: operator
//! scopes attach only to accounts marked provisioned (see
//! [`crate::store::Origin`]). An email listed in `IDENTITY_OPERATORS` cannot
//! be signed up through `POST /accounts` either, but it may have been before
//! it was listed. So, for each configured account:
//! - none with its email: created, provisioned;
//! - one whose password is the configured one: marked provisioned and kept
//!   (an account provisioned before the mark existed, or by an earlier start);
//! - a provisioned one with another password: the configured password
//!   replaces it (the configuration changed);
//! - one signed up by someone else, with another password: **taken over**. It
//!   gets the configured password and name and a new customer id, so the
//!   password its registrant chose never works, and nothing issued to or
//!   placed by that registrant (tokens, whose `sub` is the old id; orders)
//!   belongs to the operator. Logged as a warning naming both ids.

use anyhow::Context;
use serde::Deserialize;

use crate::domain::{CustomerId, Email, Name, Password};
use crate::passwords::{Hasher, Memory};
use crate::store::{NewAccount, Origin, Store};

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

/// What provisioning did to one configured account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisioned {
    Created,
    /// Already provisioned with this password: left as it was.
    Unchanged,
    /// The account keeps its id and now holds the configured credentials.
    Updated,
    /// Someone else's account: new id, configured credentials.
    TakenOver,
}

/// Brings every configured account in line with the configuration (see the
/// module's doc); returns what was done to each, in order.
///
/// # Errors
/// When hashing or the store fails.
pub async fn provision(
    store: &Store,
    hasher: &Hasher,
    accounts: &[SeedAccount],
) -> anyhow::Result<Vec<Provisioned>> {
    let mut done = Vec::with_capacity(accounts.len());
    let mut memory = Memory::default();
    for account in accounts {
        done.push(provision_one(store, hasher, &mut memory, account).await?);
    }
    Ok(done)
}

async fn provision_one(
    store: &Store,
    hasher: &Hasher,
    memory: &mut Memory,
    account: &SeedAccount,
) -> anyhow::Result<Provisioned> {
    // At start-up, before serving: hashing on this thread blocks nobody.
    let new = |customer_id, memory: &mut Memory| -> anyhow::Result<NewAccount> {
        Ok(NewAccount {
            customer_id,
            email: account.email.clone(),
            name: account.name.clone(),
            password_hash: hasher.hash(&account.password, memory)?,
            origin: Origin::Provisioned,
        })
    };
    // A second look when the first one raced a sign-up on another replica.
    for _ in 0..2 {
        let Some(existing) = store.credentials(&account.email).await? else {
            let created = new(CustomerId::generate(), memory)?;
            if store.create_account(&created).await? {
                tracing::info!(
                    customer_id = created.customer_id.as_str(),
                    "provisioned account created"
                );
                return Ok(Provisioned::Created);
            }
            continue;
        };
        let same_password = hasher.verify(&account.password, Some(&existing.password_hash), memory);
        let (customer_id, outcome) = match (existing.origin, same_password) {
            (Origin::Provisioned, true) => return Ok(Provisioned::Unchanged),
            (_, true) | (Origin::Provisioned, false) => {
                (existing.customer_id.clone(), Provisioned::Updated)
            }
            (Origin::SignedUp, false) => (CustomerId::generate(), Provisioned::TakenOver),
        };
        let account = new(customer_id, memory)?;
        if store.provision_over(&account).await? {
            log(outcome, &existing.customer_id, &account);
            return Ok(outcome);
        }
    }
    anyhow::bail!(
        "provisioning {}: the account changed under us twice",
        account.email.as_str()
    )
}

fn log(outcome: Provisioned, before: &CustomerId, after: &NewAccount) {
    if outcome == Provisioned::TakenOver {
        tracing::warn!(
            email = after.email.as_str(),
            previous_customer_id = before.as_str(),
            customer_id = after.customer_id.as_str(),
            "an account signed up with a provisioned email was taken over: the configured \
             password replaces its own, and it has a new customer id"
        );
    } else {
        tracing::info!(
            customer_id = after.customer_id.as_str(),
            "provisioned account updated"
        );
    }
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
