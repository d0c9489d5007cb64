//! The issuer's signing keys as a verifier holds them: which published keys
//! it may use, and how long a fetched key set stands before it is fetched
//! again.
//!
//! A key set stands for the JWKS response's `Cache-Control: max-age`
//! ([`DEFAULT_MAX_AGE`] without one), never longer than [`MAX_AGE_CEILING`]
//! (a provider asking for a day would keep a withdrawn key trusted a day)
//! and never shorter than `AUTH_JWKS_REFRESH_MS` (a provider asking for 0
//! would be fetched on every tick).

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};

/// RSA keys shorter than this are skipped (NIST SP 800-131A: 1024-bit RSA
/// has not been acceptable for signatures since 2013).
pub const MIN_RSA_BITS: usize = 2048;

/// How long a key set stands when its response names no `max-age`.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(5 * 60);

/// The longest a key set stands, whatever the provider says.
pub const MAX_AGE_CEILING: Duration = Duration::from_secs(60 * 60);

/// One published key, with the algorithm it verifies.
#[derive(Clone)]
pub(super) struct Key {
    pub algorithm: Algorithm,
    pub decoding: DecodingKey,
    /// The key material as published, to tell a key republished under the
    /// same `kid` from a different key under that `kid`.
    published: AlgorithmParameters,
}

impl Key {
    pub fn same_as(&self, other: &Key) -> bool {
        self.algorithm == other.algorithm && self.published == other.published
    }
}

/// The usable keys of a set, by `kid`.
pub(super) type Keys = HashMap<String, Key>;

/// The keys of `set` a verifier can use; the others are skipped (RSA keys
/// under [`MIN_RSA_BITS`] with a warning, since they are a provider's mistake
/// rather than a kind of key meant for someone else).
pub(super) fn usable_keys(set: &JwkSet) -> Keys {
    set.keys.iter().filter_map(usable_key).collect()
}

/// A JWK this verifier can use: an ES256 (P-256) or RS256 key (of at least
/// [`MIN_RSA_BITS`]) with a `kid`. Keys meant for encryption, other curves or
/// algorithms are skipped.
fn usable_key(jwk: &Jwk) -> Option<(String, Key)> {
    use jsonwebtoken::jwk::{KeyAlgorithm, PublicKeyUse};
    let kid = jwk.common.key_id.clone()?;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
            if ec.curve == EllipticCurve::P256 =>
        {
            Algorithm::ES256
        }
        (AlgorithmParameters::RSA(rsa), None | Some(KeyAlgorithm::RS256)) => {
            let bits = modulus_bits(&rsa.n);
            if bits < MIN_RSA_BITS {
                tracing::warn!(
                    kid = %kid,
                    bits,
                    min_bits = MIN_RSA_BITS,
                    "a published RSA key is too short: skipped, its tokens are refused"
                );
                return None;
            }
            Algorithm::RS256
        }
        _ => return None,
    };
    let decoding = DecodingKey::from_jwk(jwk).ok()?;
    Some((
        kid,
        Key {
            algorithm,
            decoding,
            published: jwk.algorithm.clone(),
        },
    ))
}

/// The length in bits of an RSA modulus as a JWK writes it (base64url of
/// the big-endian bytes, RFC 7518 §6.3.1.1); 0 when it is not base64url.
fn modulus_bits(n: &str) -> usize {
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(n.trim_end_matches('=')) else {
        return 0;
    };
    let mut significant = bytes.iter().skip_while(|b| **b == 0);
    match significant.next() {
        Some(first) => (significant.count() + 1) * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

/// The `max-age` of a `Cache-Control` value (RFC 9111 §5.2.2.1); `no-store`
/// and `no-cache` count as 0. `None` when it names none, or none readable.
pub(super) fn max_age(cache_control: &str) -> Option<Duration> {
    let mut found = None;
    for directive in cache_control.split(',') {
        let directive = directive.trim();
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        if name.eq_ignore_ascii_case("max-age") {
            found = value
                .trim_matches('"')
                .parse()
                .ok()
                .map(Duration::from_secs);
        }
    }
    found
}

/// How long a key set fetched with `max_age` stands: see the module.
pub(super) fn refresh_period(max_age: Option<Duration>, floor: Duration) -> Duration {
    max_age
        .unwrap_or(DEFAULT_MAX_AGE)
        .min(MAX_AGE_CEILING)
        .max(floor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_and_no_cache_means_now() {
        let s = Duration::from_secs;
        for (value, expected) in [
            ("public, max-age=300", Some(s(300))),
            ("MAX-AGE=\"60\"", Some(s(60))),
            ("max-age=60, no-cache", Some(Duration::ZERO)),
            ("no-store", Some(Duration::ZERO)),
            ("public", None),
            ("max-age=soon", None),
            ("s-maxage=60", None),
        ] {
            assert_eq!(max_age(value), expected, "{value}");
        }
    }

    #[test]
    fn the_period_is_the_max_age_clamped_between_the_floor_and_an_hour() {
        let s = Duration::from_secs;
        assert_eq!(refresh_period(None, s(30)), DEFAULT_MAX_AGE);
        assert_eq!(refresh_period(Some(s(300)), s(30)), s(300));
        assert_eq!(refresh_period(Some(s(0)), s(30)), s(30));
        assert_eq!(refresh_period(Some(s(86_400)), s(30)), MAX_AGE_CEILING);
        // A floor above the ceiling wins: fetches are never more frequent.
        assert_eq!(refresh_period(Some(s(86_400)), s(7200)), s(7200));
    }

    #[test]
    fn modulus_length_counts_significant_bits() {
        let n = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(modulus_bits(&n(&[0x80; 256])), 2048);
        assert_eq!(modulus_bits(&n(&[0x7f; 256])), 2047);
        assert_eq!(modulus_bits(&n(&[0x00, 0xff, 0x01])), 16);
        assert_eq!(modulus_bits(&n(&[0x00])), 0);
        assert_eq!(modulus_bits("not base64!"), 0);
    }
}
