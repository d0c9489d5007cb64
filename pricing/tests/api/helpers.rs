//! Starts the pricing service on a free port and a fresh database for one test.

use pricing::config::Config;
use pricing::domain::PriceBook;
use shared_server::ServerConfig;
use shared_server::ShutdownHandle;
use shared_testkit::{Spawned, TestClient, TestDatabase, init_tracing, spawn};

/// A running pricing service and its throwaway database (dropped with it).
/// The server's fields are at the top level, as the plumbing tests use them.
pub struct TestApp {
    pub port: u16,
    pub client: TestClient,
    pub shutdown: ShutdownHandle,
    pub task: actix_web::rt::task::JoinHandle<std::io::Result<()>>,
    pub db: TestDatabase,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Pricing's settings for tests: a free port, the shipped catalogue, `db`.
pub fn test_config(db: &TestDatabase) -> Config {
    Config {
        server: ServerConfig::for_tests(),
        database: db.config.clone(),
        price_book: PriceBook::shipped(),
        events: shared_events::EventsConfig::off(),
    }
}

/// Like [`spawn_app`], after `adjust` has changed the configuration.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let db = TestDatabase::create("pricing").await;
    let mut config = test_config(&db);
    adjust(&mut config);
    let Spawned {
        port,
        client,
        shutdown,
        task,
    } = start(config).await;
    TestApp {
        port,
        client,
        shutdown,
        task,
        db,
    }
}

/// Starts pricing with exactly `config` (e.g. again on a database a
/// previous instance used).
pub async fn start(config: Config) -> Spawned {
    init_tracing();
    spawn(
        pricing::startup::build(config)
            .await
            .expect("pricing starts"),
    )
}
