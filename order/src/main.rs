//! The order service binary: configuration, logging, then serve until stopped.
//! `order healthcheck` probes a running instance instead (for container health checks).

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    if let Some(code) = shared_http::healthcheck::from_args(order::config::DEFAULT_PORT) {
        std::process::exit(code);
    }
    let config = order::config::Config::from_env()?;
    let _telemetry = shared_http::telemetry::init("order", &config.server.telemetry);
    let server = order::startup::build(config).await?;
    Ok(server.run_until_stopped().await?)
}
