//! The one HTTP client for what auth fetches from the OpenID provider: its
//! discovery document, its signing keys (JWKS) and this service's tokens.
//!
//! https is spoken with rustls on the *ring* crypto provider, given here to
//! the TLS config itself (no process-wide provider is installed or needed).
//! Servers are verified against Mozilla's roots compiled in (`webpki-roots`:
//! the distroless images carry no CA bundle) and the CAs of `AUTH_CA_FILE`
//! ([`crate::ExtraRoots`]). http URLs work as before (a provider
//! reached inside the network).
//!
//! Redirects are not followed: a token request would carry the client secret
//! on, and an OpenID provider serves its documents where it says it does.
//! Each fetch, connect and TLS handshake included, is bounded by
//! [`FETCH_TIMEOUT`].

use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConfig, RootCertStore};

use crate::AuthConfig;

/// How long one fetch may take, connect to last byte.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds the awc clients for the provider; made once, shared by the workers.
#[derive(Clone)]
pub struct ProviderHttp {
    tls: Arc<ClientConfig>,
}

impl ProviderHttp {
    /// Trusting Mozilla's roots and `config`'s extra CAs.
    pub fn new(config: &AuthConfig) -> Self {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        roots
            .roots
            .extend(config.extra_roots.roots().roots.iter().cloned());
        Self {
            tls: Arc::new(tls_config(roots)),
        }
    }

    /// A client: awc clients belong to the runtime of the worker that made
    /// them, and fetches are rare, so each fetch makes its own.
    pub fn client(&self) -> awc::Client {
        let connector = awc::Connector::new()
            .rustls_0_23(self.tls.clone())
            .timeout(FETCH_TIMEOUT)
            .handshake_timeout(FETCH_TIMEOUT);
        awc::Client::builder()
            .connector(connector)
            .disable_redirects()
            .timeout(FETCH_TIMEOUT)
            .finish()
    }
}

/// TLS 1.2 and 1.3 with ring's safe defaults, verifying servers against
/// `roots`, offering HTTP/2 and HTTP/1.1.
fn tls_config(roots: RootCertStore) -> ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        // Only fails for a provider without a cipher suite of those
        // versions; ring's default provider has them all.
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuthConfig;

    #[test]
    fn mozilla_roots_are_trusted_without_a_global_provider() {
        // No `CryptoProvider::install_default` anywhere: building must not
        // need it (it would panic if it did).
        let http = ProviderHttp::new(&AuthConfig::off());
        assert!(http.tls.alpn_protocols.contains(&b"http/1.1".to_vec()));
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());
    }
}
