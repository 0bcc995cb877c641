//! Exporters that drop what they are given: the benches measure making and
//! processing telemetry, not a backend.

use std::time::Duration;

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::trace::SpanData;

#[derive(Debug)]
pub struct NoopSpans;

impl opentelemetry_sdk::trace::SpanExporter for NoopSpans {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        Ok(())
    }
}

#[derive(Debug)]
pub struct NoopMetrics;

impl opentelemetry_sdk::metrics::exporter::PushMetricExporter for NoopMetrics {
    async fn export(&self, _metrics: &ResourceMetrics) -> OTelSdkResult {
        Ok(())
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}
