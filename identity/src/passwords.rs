//! Password hashing: argon2id with OWASP's parameters, stored as PHC strings.
//!
//! Hashing takes tens of milliseconds of CPU on purpose, so the handlers run
//! it on actix's blocking pool (`web::block`) rather than on a worker thread,
//! which would stall every other request that worker holds.

use anyhow::Context;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::domain::Password;

/// OWASP's argon2id configuration: 19 MiB of memory, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19_456;
const PASSES: u32 = 2;
const LANES: u32 = 1;

/// Hashes and verifies passwords; holds a dummy hash so that signing in to
/// an account that does not exist costs the same as to one that does.
#[derive(Clone)]
pub struct Hasher {
    params: Params,
    dummy: String,
}

impl Hasher {
    /// # Errors
    /// When the parameters are refused (they are constants; never in practice).
    pub fn new() -> anyhow::Result<Self> {
        let params = Params::new(MEMORY_KIB, PASSES, LANES, None)
            .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let mut hasher = Self {
            params,
            dummy: String::new(),
        };
        let dummy = Password::for_sign_in("not a password anyone has".into())
            .context("the dummy password")?;
        hasher.dummy = hasher.hash(&dummy)?;
        Ok(hasher)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) to store.
    ///
    /// # Errors
    /// When hashing fails (out of memory).
    pub fn hash(&self, password: &Password) -> anyhow::Result<String> {
        let salt = SaltString::generate(&mut rand_core::OsRng);
        self.argon2()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
    }

    /// Whether `password` matches `stored`; with no stored hash, the dummy
    /// one is checked (and fails) so that the time taken gives nothing away.
    pub fn verify(&self, password: &Password, stored: Option<&str>) -> bool {
        let matches = |phc: &str| {
            PasswordHash::new(phc).is_ok_and(|parsed| {
                self.argon2()
                    .verify_password(password.expose().as_bytes(), &parsed)
                    .is_ok()
            })
        };
        match stored {
            Some(phc) => matches(phc),
            None => {
                let _ = matches(&self.dummy);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_carry_the_owasp_parameters() {
        let hasher = Hasher::new().expect("hasher");
        let password = Password::for_sign_in("correct horse battery".into()).expect("ok");
        let wrong = Password::for_sign_in("correct horse battery!".into()).expect("ok");
        let phc = hasher.hash(&password).expect("hashed");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(hasher.verify(&password, Some(&phc)));
        assert!(!hasher.verify(&wrong, Some(&phc)));
        assert!(!hasher.verify(&password, None));
        assert!(!hasher.verify(&password, Some("not a phc string")));
    }
}
