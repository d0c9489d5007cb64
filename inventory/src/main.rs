//! The inventory service binary: configuration, logging, then serve until stopped.
//! `inventory healthcheck` probes a running instance instead (for container health checks).

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    if let Some(code) = shared_http::healthcheck::from_args(inventory::config::DEFAULT_PORT) {
        std::process::exit(code);
    }
    let config = inventory::config::Config::from_env()?;
    let _telemetry = shared_http::telemetry::init("inventory", &config.server.telemetry);
    let server = inventory::startup::build(config).await?;
    Ok(server.run_until_stopped().await?)
}
