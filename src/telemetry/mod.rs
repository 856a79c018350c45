//! What the operator tells the outside about itself: Prometheus metrics and health, served
//! on one HTTP address (`/metrics`, `/healthz`, `/readyz`).

mod health;
mod metrics;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::CONTENT_TYPE;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;

pub use health::{Health, Leadership};
pub use metrics::{Metrics, ProcessStats, ReadyCounts, SecurityCheck};

use crate::aws::CallLog;

pub struct Telemetry {
    pub metrics: Metrics,
    pub health: Health,
    /// The AWS calls the metrics count.
    pub calls: Arc<CallLog>,
}

impl Telemetry {
    pub fn new(calls: Arc<CallLog>) -> Self {
        Self {
            metrics: Metrics::new(calls.clone()),
            health: Health::default(),
            calls,
        }
    }

    fn respond(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        let (status, content_type, body) = match request.uri().path() {
            "/metrics" => (
                StatusCode::OK,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                self.metrics.render(self.health.leading()),
            ),
            "/healthz" | "/livez" => {
                let (live, words) = self.health.liveness();
                let status = if live {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                (status, "text/plain", format!("{words}\n"))
            }
            "/readyz" => {
                let (ready, words) = self.health.readiness();
                let status = if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                (status, "text/plain", format!("{words}\n"))
            }
            _ => (
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found: try /metrics, /healthz or /readyz\n".into(),
            ),
        };
        Response::builder()
            .status(status)
            .header(CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .expect("static response parts")
    }
}

/// Binds `address` and returns the bound address (port 0 picks a free one) and the server.
pub async fn bind(
    address: SocketAddr,
    telemetry: Arc<Telemetry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let listener = TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let handler = move |request: Request<Incoming>| {
        let telemetry = telemetry.clone();
        async move { telemetry.respond(&request) }
    };
    Ok((bound, crate::http::serve(listener, handler, shutdown)))
}
