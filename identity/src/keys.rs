//! The signing keys: loaded from PEM, or generated once for development; their
//! public halves as JWKs for `GET /.well-known/jwks.json`.
//!
//! The first key signs; every key is published, so that tokens signed by a key
//! being rotated out still verify. Rotation: add the new key second (published,
//! not yet signing), wait for verifiers to refetch the JWKS, then move it first.
//! A key's `kid` is its RFC 7638 thumbprint, so it is the same on every replica
//! and across restarts without being configured.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::EncodingKey;
use p256::SecretKey;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// Where the keys come from (`IDENTITY_SIGNING_KEY_FILES`, `IDENTITY_SIGNING_KEYS`, or neither).
#[derive(Clone)]
pub enum KeySource {
    /// PEM files, the first signing.
    Files(Vec<PathBuf>),
    /// PEM text holding one or more keys, the first signing.
    Pem(String),
    /// One key generated into this file at first start and reused after.
    Generated(PathBuf),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Files(paths) => f.debug_tuple("Files").field(paths).finish(),
            Self::Pem(_) => f.write_str("Pem(<redacted>)"),
            Self::Generated(path) => f.debug_tuple("Generated").field(path).finish(),
        }
    }
}

/// A public key as a JWK (RFC 7517/7518), as published.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct Jwk {
    #[schema(example = "EC")]
    pub kty: &'static str,
    #[schema(example = "P-256")]
    pub crv: &'static str,
    /// The curve point's x coordinate, base64url.
    pub x: String,
    /// The curve point's y coordinate, base64url.
    pub y: String,
    /// The RFC 7638 thumbprint of the key.
    pub kid: String,
    #[schema(example = "sig")]
    pub r#use: &'static str,
    #[schema(example = "ES256")]
    pub alg: &'static str,
}

/// The RFC 7638 thumbprints (`kid`s) of the private keys published in this
/// project's repository, now or in its history: anyone can sign tokens with
/// them, so identity refuses to start with one unless
/// `IDENTITY_ALLOW_PUBLISHED_KEYS=true` (development only). A test scans the
/// repository for private keys and fails on one missing from this list.
pub const PUBLISHED_KEYS: &[&str] = &[
    // The throwaway key of the Kubernetes manifests (k8s/base/secret.yaml at first).
    "yQCmF-sNayuRmXmeR_ZEg7IDi4E3Xli_vymCm16dn9w",
    // identity/tests/fixtures/published-signing-key.pem: the refusal's own test.
    "DLElbdJdyB-laq_ctf78jN4W9AY8c17iDmhYwZe6vb8",
];

/// One private key, ready to sign, with its public JWK.
pub struct SigningKey {
    encoding: EncodingKey,
    jwk: Jwk,
    /// Where it was read from, for messages: a file, or the variable.
    origin: String,
}

impl SigningKey {
    fn from_secret(secret: &SecretKey, origin: String) -> anyhow::Result<Self> {
        let der = secret
            .to_pkcs8_der()
            .context("encoding the key as PKCS#8")?;
        let point = secret.public_key().to_encoded_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            anyhow::bail!("the public key has no coordinates");
        };
        let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        Ok(Self {
            origin,
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            jwk: Jwk {
                kid: thumbprint(&x, &y),
                kty: "EC",
                crv: "P-256",
                x,
                y,
                r#use: "sig",
                alg: "ES256",
            },
        })
    }

    pub fn kid(&self) -> &str {
        &self.jwk.kid
    }

    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.jwk.kid)
            .finish_non_exhaustive()
    }
}

/// RFC 7638: SHA-256 over the required members in lexical order, base64url.
fn thumbprint(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The keys in order: the first signs, all are published.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<SigningKey>,
}

impl KeySet {
    /// # Errors
    /// When a file cannot be read, holds no P-256 PKCS#8 key, or the generated
    /// key cannot be written.
    pub fn load(source: &KeySource) -> anyhow::Result<Self> {
        // Each secret with where it came from.
        let mut secrets = Vec::new();
        match source {
            KeySource::Files(paths) => {
                for path in paths {
                    let pem = std::fs::read_to_string(path).with_context(|| {
                        format!("IDENTITY_SIGNING_KEY_FILES: reading {}", path.display())
                    })?;
                    let origin = format!("IDENTITY_SIGNING_KEY_FILES: {}", path.display());
                    let keys = parse_pems(&pem).with_context(|| origin.clone())?;
                    secrets.extend(keys.into_iter().map(|k| (k, origin.clone())));
                }
            }
            KeySource::Pem(pem) => {
                let keys = parse_pems(pem).context("IDENTITY_SIGNING_KEYS")?;
                secrets.extend(
                    keys.into_iter()
                        .map(|k| (k, "IDENTITY_SIGNING_KEYS".into())),
                );
            }
            KeySource::Generated(path) => {
                secrets.push((generated(path)?, path.display().to_string()));
            }
        }
        let keys = secrets
            .into_iter()
            .map(|(secret, origin)| SigningKey::from_secret(&secret, origin))
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(!keys.is_empty(), "no signing key was configured");
        Ok(Self { keys })
    }

    /// The key that signs new tokens.
    pub fn current(&self) -> &SigningKey {
        // `load` refuses an empty set.
        &self.keys[0]
    }

    /// Refuses a key published in this repository ([`PUBLISHED_KEYS`]),
    /// naming where it was read from; with `allow` (development), warns instead.
    ///
    /// # Errors
    /// When a key is published and `allow` is false.
    pub fn refuse_published(&self, allow: bool) -> anyhow::Result<()> {
        for key in self
            .keys
            .iter()
            .filter(|k| PUBLISHED_KEYS.contains(&k.kid()))
        {
            anyhow::ensure!(
                allow,
                "the signing key from {} is published in this project's repository \
                 (kid {}): anyone can sign tokens with it. Configure a key of your own, \
                 or set IDENTITY_ALLOW_PUBLISHED_KEYS=true for development only",
                key.origin,
                key.kid()
            );
            tracing::warn!(
                kid = key.kid(),
                origin = key.origin.as_str(),
                "signing with a key published in this project's repository: anyone can \
                 sign tokens with it (IDENTITY_ALLOW_PUBLISHED_KEYS=true: development only)"
            );
        }
        Ok(())
    }

    /// Every public key, the signing one first.
    pub fn jwks(&self) -> Vec<Jwk> {
        self.keys.iter().map(|k| k.jwk.clone()).collect()
    }
}

/// Every `PRIVATE KEY` block of `pem` (one or more concatenated).
fn parse_pems(pem: &str) -> anyhow::Result<Vec<SecretKey>> {
    const BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
    const END: &str = "-----END PRIVATE KEY-----";
    let mut keys = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(BEGIN) {
        let block = &rest[start..];
        let end = block
            .find(END)
            .context("a PRIVATE KEY block has no END line")?
            + END.len();
        // The parse error names no key material (it is an ASN.1 or PEM position).
        let key = SecretKey::from_pkcs8_pem(&block[..end])
            .map_err(|e| anyhow::anyhow!("not a PKCS#8 P-256 private key: {e}"))?;
        keys.push(key);
        rest = &block[end..];
    }
    anyhow::ensure!(
        !keys.is_empty(),
        "no -----BEGIN PRIVATE KEY----- block found"
    );
    Ok(keys)
}

/// The development key at `path`: read when present, else generated and
/// written with mode 0600. Two replicas starting at once agree: only one
/// creates the file, the other reads it.
fn generated(path: &Path) -> anyhow::Result<SecretKey> {
    if let Ok(pem) = std::fs::read_to_string(path) {
        return first_key(&pem, path);
    }
    tracing::warn!(
        path = %path.display(),
        "no IDENTITY_SIGNING_KEY_FILES or IDENTITY_SIGNING_KEYS: generating a signing key \
         into the data directory; this is for development only"
    );
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let secret = SecretKey::random(&mut rand_core::OsRng);
    let pem = secret
        .to_pkcs8_pem(LineEnding::LF)
        .context("encoding the generated key")?;
    match create_private(path) {
        Ok(mut file) => {
            file.write_all(pem.as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(secret)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            first_key(&pem, path)
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

fn first_key(pem: &str, path: &Path) -> anyhow::Result<SecretKey> {
    parse_pems(pem)
        .with_context(|| format!("reading the generated key {}", path.display()))?
        .into_iter()
        .next()
        .context("no key")
}

#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// A fresh key as PKCS#8 PEM (for tests and for operators making one).
///
/// # Errors
/// Never in practice; encoding a valid key cannot fail.
pub fn generate_pem() -> anyhow::Result<String> {
    let secret = SecretKey::random(&mut rand_core::OsRng);
    Ok(secret
        .to_pkcs8_pem(LineEnding::LF)
        .context("encoding the key")?
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_thumbprint_example() {
        // RFC 7638 §3.1 is for RSA; this checks our canonical form against a
        // thumbprint computed independently for this P-256 point.
        let kid = thumbprint(
            "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
        );
        assert_eq!(kid, "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U");
    }

    #[test]
    fn concatenated_pems_load_in_order() {
        let (a, b) = (generate_pem().expect("a"), generate_pem().expect("b"));
        let set = KeySet::load(&KeySource::Pem(format!("{a}\n{b}"))).expect("two keys");
        let only_a = KeySet::load(&KeySource::Pem(a)).expect("one key");
        assert_eq!(set.jwks().len(), 2);
        assert_eq!(set.current().kid(), only_a.current().kid());
        assert!(KeySet::load(&KeySource::Pem("nothing".into())).is_err());
    }
}
