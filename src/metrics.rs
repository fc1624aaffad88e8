//! Prometheus metrics owned by the application state (no global registry, so every test app has its
//! own). Later capabilities register their counters here.

use std::sync::Mutex;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

/// Labels of the per-request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The OpenAPI operation id, or `unmatched` (stable, low cardinality: never the raw path).
    pub operation: String,
    pub status: u16,
}

/// Labels of the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: String,
}

/// Labels of the verification counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// The report's outcome (`verified`, `invalid`, ...).
    pub outcome: &'static str,
}

/// All metrics of one running service.
pub struct Metrics {
    registry: Mutex<Registry>,
    /// `oxbadge_http_requests_total{method,operation,status}`.
    pub http_requests: Family<RequestLabels, Counter>,
    /// `oxbadge_http_request_duration_seconds{operation}`.
    pub http_latency: Family<OperationLabels, Histogram>,
    /// `oxbadge_verifications_total{outcome}`.
    pub verifications: Family<OutcomeLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ])
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with the HTTP metrics registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("oxbadge");
        let http_requests = Family::<RequestLabels, Counter>::default();
        let http_latency = Family::<OperationLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "http_requests",
            "HTTP requests by method, operation and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by operation",
            http_latency.clone(),
        );
        let verifications = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "verifications",
            "Verification reports by outcome",
            verifications.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            http_requests,
            http_latency,
            verifications,
        }
    }

    /// Records one finished request.
    pub fn observe_request(&self, method: &str, operation: &str, status: u16, seconds: f64) {
        self.http_requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                operation: operation.to_owned(),
                status,
            })
            .inc();
        self.http_latency
            .get_or_create(&OperationLabels {
                operation: operation.to_owned(),
            })
            .observe(seconds);
    }

    /// Records one verification report.
    pub fn record_verification(&self, outcome: crate::verify::report::Outcome) {
        self.verifications
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = match self.registry.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}
