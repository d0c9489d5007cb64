//! Password hashing: argon2id with OWASP's parameters, stored as PHC strings.
//!
//! Hashing takes tens of milliseconds of CPU and 19 MiB on purpose, so the
//! handlers run it through [`crate::hashing`] (a few threads of its own,
//! bounded) rather than on a worker thread, which would stall every other
//! request that worker holds.

//!
//! Each computation runs in a [`Memory`] the caller keeps: a hashing thread
//! owns one and reuses it, so resident memory is 19 MiB per thread, whatever
//! the traffic. (Allocating it per hash, as argon2 does by default, left
//! every freed block resident: +19 MiB per sign-in, measured, because the
//! allocator could not reuse the aligned blocks it got back.)

use std::cell::RefCell;

use anyhow::Context;
use argon2::password_hash::{
    self, Decimal, Ident, Output, ParamsString, PasswordHash, PasswordHasher, PasswordVerifier,
    Salt, SaltString,
};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use crate::domain::Password;

/// OWASP's argon2id configuration: 19 MiB of memory, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19_456;
const PASSES: u32 = 2;
const LANES: u32 = 1;

/// The working memory of argon2 (19 MiB at our parameters), kept between
/// computations by whoever owns it; empty until first used.
#[derive(Default)]
pub struct Memory(Vec<Block>);

/// argon2 computing in a [`Memory`]; verifying comes with it
/// (`PasswordVerifier` is implemented for every `PasswordHasher`).
struct InMemory<'m> {
    memory: RefCell<&'m mut Memory>,
}

impl PasswordHasher for InMemory<'_> {
    type Params = Params;

    fn hash_password_customized<'a>(
        &self,
        password: &[u8],
        algorithm: Option<Ident<'a>>,
        version: Option<Decimal>,
        params: Params,
        salt: impl Into<Salt<'a>>,
    ) -> password_hash::Result<PasswordHash<'a>> {
        let algorithm = algorithm
            .map(Algorithm::try_from)
            .transpose()?
            .unwrap_or_default();
        let version = version
            .map(Version::try_from)
            .transpose()?
            .unwrap_or_default();
        let salt = salt.into();
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let mut memory = self.memory.borrow_mut();
        if memory.0.len() < params.block_count() {
            memory.0.resize(params.block_count(), Block::default());
        }
        let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let hash = Output::init_with(output_len, |out| {
            Ok(argon2.hash_password_into_with_memory(password, salt_bytes, out, &mut memory.0)?)
        })?;
        Ok(PasswordHash {
            algorithm: algorithm.ident(),
            version: Some(version.into()),
            params: ParamsString::try_from(&params)?,
            salt: Some(salt),
            hash: Some(hash),
        })
    }
}

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
        hasher.dummy = hasher.hash(&dummy, &mut Memory::default())?;
        Ok(hasher)
    }

    /// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) to store,
    /// computed in `memory`.
    ///
    /// # Errors
    /// When hashing fails (out of memory).
    pub fn hash(&self, password: &Password, memory: &mut Memory) -> anyhow::Result<String> {
        let salt = SaltString::generate(&mut rand_core::OsRng);
        let argon2 = InMemory {
            memory: RefCell::new(memory),
        };
        argon2
            .hash_password_customized(
                password.expose().as_bytes(),
                Some(Algorithm::Argon2id.ident()),
                Some(Version::V0x13.into()),
                self.params.clone(),
                &salt,
            )
            .map(|hash| hash.to_string())
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
    }

    /// Whether `password` matches `stored` (computed in `memory`); with no
    /// stored hash, the dummy one is checked (and fails) so that the time
    /// taken gives nothing away.
    pub fn verify(&self, password: &Password, stored: Option<&str>, memory: &mut Memory) -> bool {
        let argon2 = InMemory {
            memory: RefCell::new(memory),
        };
        let matches = |phc: &str| {
            PasswordHash::new(phc).is_ok_and(|parsed| {
                argon2
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
        let memory = &mut Memory::default();
        let password = Password::for_sign_in("correct horse battery".into()).expect("ok");
        let wrong = Password::for_sign_in("correct horse battery!".into()).expect("ok");
        let phc = hasher.hash(&password, memory).expect("hashed");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(hasher.verify(&password, Some(&phc), memory));
        assert!(!hasher.verify(&wrong, Some(&phc), memory));
        assert!(!hasher.verify(&password, None, memory));
        assert!(!hasher.verify(&password, Some("not a phc string"), memory));
        assert_eq!(memory.0.len(), 19_456, "one block set, reused");
        // A hash made by argon2's own allocating API verifies the same way.
        let salt = SaltString::generate(&mut rand_core::OsRng);
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, hasher.params.clone())
            .hash_password(b"correct horse battery", &salt)
            .expect("hashed")
            .to_string();
        assert!(hasher.verify(&password, Some(&theirs), memory));
    }
}
