//! The identity service binary: configuration, logging, then serve until stopped.
//! `identity healthcheck` probes a running instance instead (for container health checks).

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    if let Some(code) = shared_http::healthcheck::from_args(identity::config::DEFAULT_PORT) {
        std::process::exit(code);
    }
    let config = identity::config::Config::from_env()?;
    let _telemetry = shared_http::telemetry::init("identity", &config.server.telemetry);
    let server = identity::startup::build(config).await?;
    Ok(server.run_until_stopped().await?)
}
