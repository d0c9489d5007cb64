//! The pricing service binary: configuration, logging, then serve until stopped.
//! `pricing healthcheck` probes a running instance instead (for container health checks).

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    if let Some(code) = shared_http::healthcheck::from_args(pricing::config::DEFAULT_PORT) {
        std::process::exit(code);
    }
    let config = pricing::config::Config::from_env()?;
    let _telemetry = shared_http::telemetry::init("pricing", &config.server.telemetry);
    let server = pricing::startup::build(config).await?;
    Ok(server.run_until_stopped().await?)
}
