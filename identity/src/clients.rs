//! OAuth clients (`IDENTITY_CLIENTS`) and their authentication by HTTP Basic.
//!
//! Secrets are compared as SHA-256 digests in constant time, and a client id
//! nobody has is compared against a dummy, so the time taken says nothing
//! about which ids exist or how much of a secret was right.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::{Scope, Scopes};

/// A client secret; its `Debug` is redacted.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }
}

/// One entry of `IDENTITY_CLIENTS`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub client_id: String,
    pub client_secret: Secret,
    pub scopes: Vec<Scope>,
}

impl ClientConfig {
    /// Parses `[{"client_id","client_secret","scopes":[...]}]`.
    ///
    /// # Errors
    /// When the JSON does not fit, names an unknown scope, repeats an id or
    /// has an empty id or secret.
    pub fn parse_list(json: &str) -> anyhow::Result<Vec<Self>> {
        let clients: Vec<Self> = serde_json::from_str(json)
            .map_err(|e| anyhow::anyhow!("not a list of clients: {e}"))?;
        for (i, client) in clients.iter().enumerate() {
            anyhow::ensure!(
                !client.client_id.is_empty() && !client.client_secret.0.is_empty(),
                "client {i} has an empty client_id or client_secret"
            );
            anyhow::ensure!(
                !clients[..i].iter().any(|c| c.client_id == client.client_id),
                "client_id {:?} appears twice",
                client.client_id
            );
        }
        Ok(clients)
    }
}

/// An authenticated client.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub scopes: Scopes,
}

struct Registered {
    client: Client,
    secret_digest: [u8; 32],
}

/// Every configured client.
pub struct ClientRegistry {
    clients: Vec<Registered>,
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

impl ClientRegistry {
    pub fn new(configs: &[ClientConfig]) -> Self {
        let clients = configs
            .iter()
            .map(|c| Registered {
                client: Client {
                    id: c.client_id.clone(),
                    scopes: c.scopes.iter().copied().collect(),
                },
                secret_digest: digest(&c.client_secret.0),
            })
            .collect();
        Self { clients }
    }

    /// The client whose id and secret these are.
    pub fn authenticate(&self, credentials: &BasicCredentials) -> Option<&Client> {
        let offered = digest(&credentials.secret);
        let found = self.clients.iter().find(|c| c.client.id == credentials.id);
        let expected = found.map_or([0u8; 32], |c| c.secret_digest);
        let same: bool = offered.ct_eq(&expected).into();
        found.filter(|_| same).map(|c| &c.client)
    }
}

/// The id and secret of an `Authorization: Basic` header (RFC 6749 §2.3.1:
/// both form-urlencoded before base64).
pub struct BasicCredentials {
    pub id: String,
    secret: String,
}

impl BasicCredentials {
    /// `None` when the header is not Basic, not base64, not `id:secret`, or not UTF-8.
    pub fn parse(header: &str) -> Option<Self> {
        let (scheme, encoded) = header.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        Some(Self {
            id: form_decode(id)?,
            secret: form_decode(secret)?,
        })
    }
}

/// application/x-www-form-urlencoded decoding of one value (`+` is a space).
fn form_decode(value: &str) -> Option<String> {
    percent_decode_str(&value.replace('+', " "))
        .decode_utf8()
        .ok()
        .map(|v| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(raw: &str) -> String {
        format!("Basic {}", STANDARD.encode(raw))
    }

    #[test]
    fn basic_credentials_are_url_decoded() {
        let creds = BasicCredentials::parse(&basic("my%3Aclient:p%40ss+word%2B")).expect("parses");
        assert_eq!(creds.id, "my:client");
        assert_eq!(creds.secret, "p@ss word+");
        assert!(BasicCredentials::parse("Bearer abc").is_none());
        assert!(BasicCredentials::parse("Basic !!!").is_none());
        assert!(BasicCredentials::parse(&basic("no-colon")).is_none());
    }

    #[test]
    fn only_the_right_secret_authenticates() {
        let clients = ClientConfig::parse_list(
            r#"[{"client_id":"order","client_secret":"s3cret","scopes":["inventory:reserve"]}]"#,
        )
        .expect("valid");
        let registry = ClientRegistry::new(&clients);
        let ok = BasicCredentials::parse(&basic("order:s3cret")).expect("parses");
        assert_eq!(registry.authenticate(&ok).expect("known").id, "order");
        for wrong in ["order:s3cre", "order:", "other:s3cret"] {
            let creds = BasicCredentials::parse(&basic(wrong)).expect("parses");
            assert!(registry.authenticate(&creds).is_none(), "{wrong}");
        }
        assert!(format!("{clients:?}").contains("redacted"));
        assert!(!format!("{clients:?}").contains("s3cret"));
        assert!(
            ClientConfig::parse_list(
                r#"[{"client_id":"a","client_secret":"b","scopes":["root"]}]"#
            )
            .is_err()
        );
    }
}
