//! The shared bearer token between services (`SERVICE_TOKEN`).
//!
//! It predates signed tokens and keeps working beside them: a service that
//! registers a [`ServiceToken`] as app data treats a request bearing exactly
//! that token as [`super::Caller`] "service", holding the scopes the token
//! grants there (inventory grants its reservation scope, nothing else).

/// The expected token and what it grants, registered as app data by the
/// services that accept it.
#[derive(Clone)]
pub struct ServiceToken {
    token: Option<String>,
    grants: &'static [&'static str],
}

impl ServiceToken {
    /// `token` (unset: no service token is accepted) grants `grants`.
    pub fn new(token: Option<String>, grants: &'static [&'static str]) -> Self {
        Self { token, grants }
    }

    /// The scopes a caller presenting the token holds; none when no token is set.
    pub fn grants(&self) -> &'static [&'static str] {
        if self.token.is_some() {
            self.grants
        } else {
            &[]
        }
    }

    /// Whether `presented` is the token, compared in constant time so that
    /// response timing does not reveal how much of a guess was right.
    pub fn accepts(&self, presented: &str) -> bool {
        let Some(expected) = &self.token else {
            return false;
        };
        let (a, b) = (expected.as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Debug for ServiceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.token.is_some() {
            "ServiceToken(<set>)"
        } else {
            "ServiceToken(<unset>)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison_and_grants() {
        let unset = ServiceToken::new(None, &["s:x"]);
        assert!(!unset.accepts(""));
        assert!(unset.grants().is_empty(), "no token, nothing granted");
        let token = ServiceToken::new(Some("s3cret".into()), &["s:x"]);
        assert!(token.accepts("s3cret"));
        assert!(!token.accepts("s3cre"));
        assert!(!token.accepts("s3cres"));
        assert!(!token.accepts(""));
        assert_eq!(token.grants(), ["s:x"]);
        assert_eq!(format!("{token:?}"), "ServiceToken(<set>)");
    }
}
