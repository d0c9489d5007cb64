//! Validated types: what an account, a password and a scope may be.
//!
//! Wire types are plain serde structs in `routes/`; they become these types
//! before any rule runs, and past that edge nothing re-checks.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Why an input was refused (the text is safe to send: it never echoes a password).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("email must look like name@example.com (at most {MAX_EMAIL_CHARS} characters)")]
    Email,
    #[error("password must have at least {MIN_PASSWORD_CHARS} characters")]
    PasswordTooShort,
    #[error("password must be at most {MAX_PASSWORD_BYTES} bytes")]
    PasswordTooLong,
    #[error("password must not be the email address")]
    PasswordIsEmail,
    #[error("password must not be one character repeated")]
    PasswordRepeated,
    #[error("name must have 1 to {MAX_NAME_CHARS} characters and no control characters")]
    Name,
    #[error("unknown scope {0:?}")]
    Scope(String),
}

/// RFC 5321's limit on a forward path.
pub const MAX_EMAIL_CHARS: usize = 254;
/// Shorter passwords are refused (NIST SP 800-63B asks for at least 8; we ask 10).
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longer passwords are refused before hashing, so that a huge one costs nothing.
pub const MAX_PASSWORD_BYTES: usize = 128;
pub const MAX_NAME_CHARS: usize = 100;

/// An email address, trimmed and lowercased: the account's login, compared as is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

impl Email {
    /// # Errors
    /// When the text is not `local@domain.tld` after trimming, or is too long.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let email = raw.trim().to_lowercase();
        let (local, domain) = email.split_once('@').ok_or(ParseError::Email)?;
        let fits = email.chars().count() <= MAX_EMAIL_CHARS
            && !local.is_empty()
            && local.len() <= 64
            && !email
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "<>()[]\\,;:\"".contains(c))
            && !domain.contains('@')
            && is_domain(domain);
        if fits {
            Ok(Self(email))
        } else {
            Err(ParseError::Email)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `example.com`: dot-separated labels of letters, digits and inner hyphens,
/// ending in a top-level label of two or more letters.
fn is_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |label: &&str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    let tld_ok = labels
        .last()
        .is_some_and(|tld| tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic));
    labels.len() >= 2 && labels.iter().all(label_ok) && tld_ok
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password as typed, never printed (its `Debug` is redacted).
pub struct Password(String);

impl Password {
    /// A password someone is signing in with: only the size is checked, so
    /// that a huge one is refused before it costs a hash.
    ///
    /// # Errors
    /// When it is over [`MAX_PASSWORD_BYTES`].
    pub fn for_sign_in(raw: String) -> Result<Self, ParseError> {
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(ParseError::PasswordTooLong);
        }
        Ok(Self(raw))
    }

    /// A new account's password: long enough, not too long, not the email,
    /// not one character repeated.
    ///
    /// # Errors
    /// Naming the rule it breaks.
    pub fn new_for(raw: String, email: &Email) -> Result<Self, ParseError> {
        let password = Self::for_sign_in(raw)?;
        let text = password.0.as_str();
        let mut chars = text.chars();
        if text.chars().count() < MIN_PASSWORD_CHARS {
            return Err(ParseError::PasswordTooShort);
        }
        if text.trim().to_lowercase() == email.as_str() {
            return Err(ParseError::PasswordIsEmail);
        }
        let first = chars.next();
        if chars.all(|c| Some(c) == first) {
            return Err(ParseError::PasswordRepeated);
        }
        Ok(password)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A person's display name: 1 to 100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    /// # Errors
    /// When empty, too long, or holding a control character.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let name = raw.trim();
        let count = name.chars().count();
        if count == 0 || count > MAX_NAME_CHARS || name.chars().any(char::is_control) {
            return Err(ParseError::Name);
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An account's id: a UUID v7 (time-ordered), in its hyphenated text form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerId(String);

impl CustomerId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// An id read back from the store.
    pub fn from_stored(id: String) -> Self {
        Self(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A permission a token can carry (the contract's list).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
pub enum Scope {
    #[serde(rename = "inventory:reserve")]
    InventoryReserve,
    #[serde(rename = "inventory:write")]
    InventoryWrite,
    #[serde(rename = "pricing:write")]
    PricingWrite,
    #[serde(rename = "orders:admin")]
    OrdersAdmin,
    #[serde(rename = "chaos:write")]
    ChaosWrite,
}

impl Scope {
    pub const ALL: [Self; 5] = [
        Self::InventoryReserve,
        Self::InventoryWrite,
        Self::PricingWrite,
        Self::OrdersAdmin,
        Self::ChaosWrite,
    ];

    /// What an operator's session token carries.
    pub const OPERATOR: [Self; 4] = [
        Self::InventoryWrite,
        Self::PricingWrite,
        Self::OrdersAdmin,
        Self::ChaosWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InventoryReserve => "inventory:reserve",
            Self::InventoryWrite => "inventory:write",
            Self::PricingWrite => "pricing:write",
            Self::OrdersAdmin => "orders:admin",
            Self::ChaosWrite => "chaos:write",
        }
    }

    /// # Errors
    /// When the text names no scope.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| ParseError::Scope(raw.to_owned()))
    }
}

/// A set of scopes, written space-separated in tokens (RFC 6749 §3.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    /// The space-separated form; empty for no scope.
    pub fn to_claim(&self) -> String {
        self.0
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Every scope of `wanted` (space-separated) when all are in `self`;
    /// otherwise the first one that is not (or that names no scope).
    ///
    /// # Errors
    /// With the offending scope's text.
    pub fn narrow_to(&self, wanted: &str) -> Result<Self, String> {
        let mut narrowed = BTreeSet::new();
        for word in wanted.split(' ').filter(|w| !w.is_empty()) {
            match Scope::parse(word) {
                Ok(scope) if self.0.contains(&scope) => {
                    narrowed.insert(scope);
                }
                _ => return Err(word.to_owned()),
            }
        }
        Ok(Self(narrowed))
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").expect("valid").as_str(),
            "ada@example.com"
        );
        for ok in [
            "a@b.co",
            "first.last+tag@mail.example.org",
            "x@xn--bcher-kva.ch",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@example",
            "ada@@example.com",
            "a@b@example.com",
            "ada@example.c",
            "ada@exa mple.com",
            "ada@-x.com",
            "ada@example.123",
            "ada@.com",
            "ad\u{0}a@example.com",
            "ada@example..com",
            long.as_str(),
        ] {
            assert_eq!(Email::parse(bad), Err(ParseError::Email), "{bad:?}");
        }
    }

    #[test]
    fn weak_or_oversized_passwords_are_refused() {
        let email = Email::parse("ada@example.com").expect("valid");
        let check = |p: &str| Password::new_for(p.to_owned(), &email).map(|_| ());
        assert_eq!(check("correct horse"), Ok(()));
        assert_eq!(check("short"), Err(ParseError::PasswordTooShort));
        assert_eq!(
            check("ÄÄÄÄÄbcde"),
            Err(ParseError::PasswordTooShort),
            "chars, not bytes"
        );
        assert_eq!(check("aaaaaaaaaaaa"), Err(ParseError::PasswordRepeated));
        assert_eq!(check("ADA@example.com"), Err(ParseError::PasswordIsEmail));
        assert_eq!(check(&"x1".repeat(65)), Err(ParseError::PasswordTooLong));
        assert!(format!("{:?}", Password::for_sign_in("secret".into())).contains("redacted"));
    }

    #[test]
    fn names_are_bounded_and_printable() {
        assert_eq!(Name::parse(" Ada ").expect("valid").as_str(), "Ada");
        assert!(Name::parse(&"n".repeat(100)).is_ok());
        for bad in ["", "   ", "a\nb", &"n".repeat(101)] {
            assert_eq!(Name::parse(bad), Err(ParseError::Name), "{bad:?}");
        }
    }

    #[test]
    fn scopes_narrow_only_within_the_set() {
        let granted: Scopes = [Scope::InventoryReserve, Scope::PricingWrite]
            .into_iter()
            .collect();
        assert_eq!(granted.to_claim(), "inventory:reserve pricing:write");
        assert_eq!(
            granted
                .narrow_to("pricing:write")
                .expect("subset")
                .to_claim(),
            "pricing:write"
        );
        assert_eq!(
            granted.narrow_to("orders:admin"),
            Err("orders:admin".into())
        );
        assert_eq!(granted.narrow_to("nonsense"), Err("nonsense".into()));
    }
}
