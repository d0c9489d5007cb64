//! Starts the pricing service on a free port for one test.

use pricing::config::Config;
use pricing::domain::PriceBook;
use shared::config::ServerConfig;
use shared::testing::{Spawned, init_tracing, spawn};

pub async fn spawn_app() -> Spawned {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], after `adjust` has changed the configuration.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> Spawned {
    init_tracing();
    let mut config = Config {
        server: ServerConfig::for_tests(),
        price_book: PriceBook::shipped(),
    };
    adjust(&mut config);
    spawn(
        pricing::startup::build(config)
            .await
            .expect("pricing starts"),
    )
}
