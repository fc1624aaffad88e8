//! Tracing subscriber setup: pretty lines on a terminal, JSON lines otherwise. Secrets never reach a
//! log line because they are typed (`SecretString`) and their `Debug` prints `[REDACTED]`.
//!
//! Optionally (cargo feature `otlp`, off by default) the same spans are exported over OTLP/HTTP
//! (protobuf) to an OpenTelemetry collector named by `OXBADGE_OTLP_ENDPOINT`, for APM back ends.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

/// Installs the global subscriber once per process (the binary calls it; tests may call it repeatedly).
pub fn init(format: LogFormat, filter: &str) {
    drop(init_with_export(format, filter, None));
}

/// Flushes and stops the trace export when dropped (at the end of `main`). Holds nothing when no
/// export is configured.
#[must_use = "dropping the guard stops the trace export"]
pub struct TelemetryGuard {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.provider.take()
            && let Err(err) = provider.shutdown()
        {
            eprintln!("oxbadge: flushing the OTLP trace export failed: {err}");
        }
    }
}

/// Like [`init`], and exports spans to `otlp_endpoint` (an OTLP/HTTP collector base URL such as
/// `http://127.0.0.1:4318`) when given and the binary was built with the `otlp` feature.
pub fn init_with_export(
    format: LogFormat,
    filter: &str,
    otlp_endpoint: Option<&str>,
) -> TelemetryGuard {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let (export, guard, export_error) = export_layer(otlp_endpoint);
    let registry = tracing_subscriber::registry().with(filter).with(export);
    let result = if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init()
    };
    // A second init (tests) keeps the first subscriber; that is fine.
    drop(result);
    if let Some(reason) = export_error {
        tracing::warn!(reason, "OTLP trace export is off");
    }
    guard
}

/// The export layer sits right above the filter, so it sees exactly the spans the logs see.
type BoxedLayer = Box<
    dyn tracing_subscriber::Layer<
            tracing_subscriber::layer::Layered<EnvFilter, tracing_subscriber::Registry>,
        > + Send
        + Sync,
>;

#[cfg(not(feature = "otlp"))]
fn export_layer(endpoint: Option<&str>) -> (Option<BoxedLayer>, TelemetryGuard, Option<String>) {
    let error = endpoint.map(|_| {
        "otlp_endpoint is set but this binary was built without the `otlp` feature \
         (cargo build --release --features otlp)"
            .to_owned()
    });
    (None, TelemetryGuard {}, error)
}

#[cfg(feature = "otlp")]
fn export_layer(endpoint: Option<&str>) -> (Option<BoxedLayer>, TelemetryGuard, Option<String>) {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig;

    let none = TelemetryGuard { provider: None };
    let Some(endpoint) = endpoint else {
        return (None, none, None);
    };
    // The collector's base URL; OTLP/HTTP traces go to /v1/traces under it.
    let traces = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(traces)
        .with_timeout(std::time::Duration::from_secs(5))
        .build()
    {
        Ok(exporter) => exporter,
        Err(err) => return (None, none, Some(err.to_string())),
    };
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("oxbadge")
                .build(),
        )
        .build();
    let tracer = provider.tracer("oxbadge");
    let layer: BoxedLayer = Box::new(tracing_opentelemetry::layer().with_tracer(tracer));
    (
        Some(layer),
        TelemetryGuard {
            provider: Some(provider),
        },
        None,
    )
}
