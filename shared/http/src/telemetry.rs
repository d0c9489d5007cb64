//! Logging and tracing through `tracing`, set up once, first thing in `main`.
//!
//! - `RUST_LOG` filters as `env_logger` does (default `info`); records from
//!   crates that use the `log` facade are bridged into the same output.
//! - `LOG_FORMAT=json` writes one JSON object per line, carrying the fields of
//!   the enclosing `request` span (service, request id, method, route, status).
//! - With `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are also exported over OTLP
//!   (HTTP/protobuf) and W3C `traceparent` headers are read on incoming
//!   requests ([`crate::request_id`]) and written on outgoing ones
//!   ([`trace_headers`]). Unset, none of that machinery runs.

use std::collections::HashMap;
use std::str::FromStr;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use shared_config::{ConfigError, Env};

/// Keeps the exporter alive; dropping it flushes the spans not yet sent.
#[must_use = "hold the guard until the process exits, or buffered spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// A boxed layer, so that text, JSON and tracing layers can be chosen at run time.
pub type BoxedLayer<S> = Box<dyn Layer<S> + Send + Sync>;

/// What the output layers sit on: the registry behind the `RUST_LOG` filter,
/// which so applies to every layer.
type Filtered = Layered<EnvFilter, Registry>;

/// The log output layer for `format`, writing to stdout.
pub fn fmt_layer<S>(format: LogFormat) -> BoxedLayer<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let layer = tracing_subscriber::fmt::layer().with_target(true);
    match format {
        LogFormat::Text => layer.boxed(),
        LogFormat::Json => layer
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    }
}

/// Installs the global subscriber (a second call is a no-op) and, when an
/// OTLP endpoint is configured, the span exporter.
pub fn init(service: &'static str, config: &TelemetryConfig) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (otel_layer, provider) = match &config.otlp_endpoint {
        None => (None, None),
        Some(endpoint) => match tracer_provider(service, endpoint) {
            Ok(provider) => {
                opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
                let tracer = provider.tracer(service);
                let layer: BoxedLayer<Filtered> =
                    tracing_opentelemetry::layer().with_tracer(tracer).boxed();
                (Some(layer), Some(provider))
            }
            Err(e) => {
                eprintln!("tracing export disabled: {e}");
                (None, None)
            }
        },
    };
    let mut layers: Vec<BoxedLayer<Filtered>> = vec![fmt_layer(config.log_format)];
    layers.extend(otel_layer);
    // `try_init` also installs the `log` -> `tracing` bridge.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layers)
        .try_init();
    if let Some(endpoint) = &config.otlp_endpoint {
        tracing::info!(endpoint, "exporting spans over OTLP");
    }
    Telemetry { provider }
}

fn tracer_provider(service: &'static str, endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    // As with the standard variable, the endpoint is the collector's base URL.
    let endpoint = endpoint.trim_end_matches('/');
    let url = if endpoint.ends_with("/v1/traces") {
        endpoint.to_owned()
    } else {
        format!("{endpoint}/v1/traces")
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

struct HeaderExtractor<'a>(&'a actix_web::http::header::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Makes `span` a child of the caller's trace when the request carries a
/// W3C `traceparent` (and tracing export is on).
pub fn adopt_remote_parent(span: &tracing::Span, headers: &actix_web::http::header::HeaderMap) {
    if headers.contains_key("traceparent") {
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        let _ = span.set_parent(parent);
    }
}

/// The `traceparent` (and `tracestate`) headers for a downstream call made
/// inside the current span; empty when tracing export is off.
pub fn trace_headers() -> HashMap<String, String> {
    let mut headers = HashMap::new();
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut headers));
    headers
}

/// The W3C `traceparent` of the current span, for a message that leaves the
/// process (an event). With tracing export off there is no trace to join, so
/// a fresh, unsampled one is made: whoever reads the event can still tell the
/// events of one change apart from the rest.
pub fn current_traceparent() -> String {
    trace_headers().remove("traceparent").unwrap_or_else(|| {
        let trace: u128 = rand::random::<u128>() | 1;
        let span: u64 = rand::random::<u64>() | 1;
        format!("00-{trace:032x}-{span:016x}-00")
    })
}

/// Makes `span` a child of the trace a message's `traceparent` names (when
/// tracing export is on; a malformed value is ignored).
pub fn adopt_traceparent(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(parent);
}

/// Where the log lines and spans go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// `LOG_FORMAT` (`text`|`json`, default text).
    pub log_format: LogFormat,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: where to export spans (OTLP over HTTP); off when unset.
    pub otlp_endpoint: Option<String>,
}

impl TelemetryConfig {
    /// Text lines, no export: what tests use.
    pub fn off() -> Self {
        Self {
            log_format: LogFormat::Text,
            otlp_endpoint: None,
        }
    }

    /// # Errors
    /// When `LOG_FORMAT` or `OTEL_EXPORTER_OTLP_ENDPOINT` has a bad value.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            log_format: env.parse("LOG_FORMAT", LogFormat::Text)?,
            otlp_endpoint: env.optional_http_url("OTEL_EXPORTER_OTLP_ENDPOINT")?,
        })
    }
}

/// Output format of the log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl FromStr for LogFormat {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err("expected text or json"),
        }
    }
}
