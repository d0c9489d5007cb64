//! The order service binary: configuration, logging, then serve until stopped.

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let config = order::config::Config::from_env()?;
    shared::telemetry::init(config.server.log_format);
    let server = order::startup::build(config).await?;
    Ok(server.run_until_stopped().await?)
}
