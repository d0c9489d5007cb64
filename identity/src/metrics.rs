//! The identity service's own metrics (names in its `names` module).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use shared_http::metrics::Registry;

/// Identity's metrics (counters gain `_total` on the wire).
pub mod names {
    pub const IDENTITY_ACCOUNTS_CREATED: &str = "identity_accounts_created";
    pub const IDENTITY_SIGN_INS: &str = "identity_sign_ins";
    pub const IDENTITY_TOKENS_ISSUED: &str = "identity_tokens_issued";
    pub const IDENTITY_PASSWORD_HASHES: &str = "identity_password_hashes";
    pub const IDENTITY_PASSWORD_HASHES_IN_FLIGHT: &str = "identity_password_hashes_in_flight";
    pub const IDENTITY_PASSWORD_HASHES_REFUSED: &str = "identity_password_hashes_refused";
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrantLabels {
    grant: &'static str,
}

/// How a sign-in ended (the `outcome` label).
#[derive(Debug, Clone, Copy)]
pub enum SignInOutcome {
    Success,
    InvalidCredentials,
    Throttled,
}

impl SignInOutcome {
    const ALL: [Self; 3] = [Self::Success, Self::InvalidCredentials, Self::Throttled];

    fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::InvalidCredentials => "invalid_credentials",
            Self::Throttled => "throttled",
        }
    }
}

/// What a token was issued for (the `grant` label).
#[derive(Debug, Clone, Copy)]
pub enum Grant {
    Session,
    ClientCredentials,
}

impl Grant {
    const ALL: [Self; 2] = [Self::Session, Self::ClientCredentials];

    fn label(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::ClientCredentials => "client_credentials",
        }
    }
}

/// Accounts created, sign-ins by outcome, tokens by grant, password hashing.
#[derive(Clone)]
pub struct IdentityMetrics {
    accounts: Counter,
    sign_ins: Family<OutcomeLabels, Counter>,
    tokens: Family<GrantLabels, Counter>,
    hashes: Counter,
    hashes_in_flight: Gauge,
    hashes_refused: Counter,
}

/// One argon2 computation under way; dropping it ends it in the gauge.
pub struct HashInFlight(Gauge);

impl Drop for HashInFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl IdentityMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            accounts: Counter::default(),
            sign_ins: Family::default(),
            tokens: Family::default(),
            hashes: Counter::default(),
            hashes_in_flight: Gauge::default(),
            hashes_refused: Counter::default(),
        };
        registry.register(
            names::IDENTITY_ACCOUNTS_CREATED,
            "Accounts created",
            metrics.accounts.clone(),
        );
        registry.register(
            names::IDENTITY_SIGN_INS,
            "Sign-in attempts, by outcome (success, invalid_credentials, throttled)",
            metrics.sign_ins.clone(),
        );
        registry.register(
            names::IDENTITY_TOKENS_ISSUED,
            "Access tokens issued, by grant (session, client_credentials)",
            metrics.tokens.clone(),
        );
        registry.register(
            names::IDENTITY_PASSWORD_HASHES,
            "Argon2 computations run for requests (hashing at sign-up, verifying at sign-in)",
            metrics.hashes.clone(),
        );
        registry.register(
            names::IDENTITY_PASSWORD_HASHES_IN_FLIGHT,
            "Argon2 computations running now (at most IDENTITY_HASHING_MAX_IN_FLIGHT)",
            metrics.hashes_in_flight.clone(),
        );
        registry.register(
            names::IDENTITY_PASSWORD_HASHES_REFUSED,
            "Requests answered 503 busy because no hashing slot came free in time",
            metrics.hashes_refused.clone(),
        );
        // Every series exists (at 0) from the start.
        for outcome in SignInOutcome::ALL {
            let _ = metrics.sign_ins.get_or_create(&OutcomeLabels {
                outcome: outcome.label(),
            });
        }
        for grant in Grant::ALL {
            let _ = metrics.tokens.get_or_create(&GrantLabels {
                grant: grant.label(),
            });
        }
        metrics
    }

    pub fn account_created(&self) {
        self.accounts.inc();
    }

    pub fn sign_in(&self, outcome: SignInOutcome) {
        self.sign_ins
            .get_or_create(&OutcomeLabels {
                outcome: outcome.label(),
            })
            .inc();
    }

    pub fn token_issued(&self, grant: Grant) {
        self.tokens
            .get_or_create(&GrantLabels {
                grant: grant.label(),
            })
            .inc();
    }

    /// An argon2 computation starts; it ends when the guard is dropped.
    pub fn hash_started(&self) -> HashInFlight {
        self.hashes.inc();
        self.hashes_in_flight.inc();
        HashInFlight(self.hashes_in_flight.clone())
    }

    pub fn hash_refused(&self) {
        self.hashes_refused.inc();
    }
}
