//! `rolecall fault-proxy`: a reverse proxy on loopback between rolecall and an AWS endpoint
//! (moto) that injects faults per operation: throttling, 500s, latency, dropped connections,
//! outages, and "fail after forwarding" (the write happened, the client is told it failed).
//!
//! Requests are forwarded byte for byte with their `Host` header, so SigV4 signatures made for
//! the proxy's address stay valid upstream. Rules change at run time through `/__faults` on the
//! same listener (`GET` shows them with counters, `PUT` replaces them, `DELETE` clears them;
//! `GET /__faults/log` lists the requests seen), or in-process through [`FaultProxy`].

pub mod protocol;
pub mod rules;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub use protocol::Service;
pub use rules::{Fault, Rule, Rules};

/// The admin path on the proxy's own listener.
pub const ADMIN_PATH: &str = "/__faults";

#[derive(clap::Args, Clone, Debug)]
pub struct FaultProxyArgs {
    /// Address to serve on; port 0 picks a free port. The first line on stdout is
    /// `listening on http://<address>`.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    /// The AWS endpoint to forward to (for example http://127.0.0.1:5000).
    #[arg(long)]
    pub upstream: String,

    /// JSON rule set to start with (the format `PUT /__faults` takes).
    #[arg(long)]
    pub rules: Option<PathBuf>,
}

/// One request the proxy saw and what it did with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LogEntry {
    pub seq: u64,
    pub operation: String,
    pub service: Option<Service>,
    pub names: std::collections::BTreeMap<String, String>,
    /// The fault applied, by name (`throttle`, `drop`...), if any.
    pub fault: Option<&'static str>,
    /// Whether the request reached the upstream (a write may have happened).
    pub forwarded: bool,
    /// What the upstream answered, when forwarded and it answered.
    pub upstream_status: Option<u16>,
    /// What the client got; `None` when the connection was closed without an answer.
    pub status: Option<u16>,
}

impl LogEntry {
    /// The upstream carried out the request (2xx), whatever the client was told.
    pub fn succeeded_upstream(&self) -> bool {
        self.upstream_status
            .is_some_and(|status| (200..300).contains(&status))
    }
}

#[derive(Debug)]
struct State {
    upstream: Uri,
    injector: Mutex<rules::Injector>,
    log: Mutex<Vec<LogEntry>>,
    sequence: AtomicU64,
}

/// Why a connection is closed without an answer; hyper drops the connection when the service
/// fails.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by fault-proxy ({0})")]
struct Dropped(&'static str);

impl State {
    fn install(&self, rules: Rules) {
        *self.injector.lock().expect("injector lock") = rules::Injector::new(rules, Instant::now());
    }

    fn rules_json(&self) -> String {
        let injector = self.injector.lock().expect("injector lock");
        serde_json::to_string_pretty(&serde_json::json!({ "rules": injector.rules() }))
            .expect("rules serialize")
    }

    async fn respond(&self, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Dropped> {
        let path = request.uri().path();
        if path == ADMIN_PATH || path.starts_with(&format!("{ADMIN_PATH}/")) {
            return Ok(self.admin(request).await);
        }
        let outage = self
            .injector
            .lock()
            .expect("injector lock")
            .outage(Instant::now());
        let seq = self.sequence.fetch_add(1, Ordering::Relaxed);
        if outage {
            self.record(LogEntry {
                seq,
                operation: String::new(),
                service: None,
                names: Default::default(),
                fault: Some(Fault::Outage.name()),
                forwarded: false,
                upstream_status: None,
                status: None,
            });
            return Err(Dropped("outage"));
        }
        let (parts, body) = request.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return Err(Dropped("client went away")),
        };
        let authorization = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        let call = protocol::parse_call(&body, authorization);
        let fault = self
            .injector
            .lock()
            .expect("injector lock")
            .decide(&call.operation, Instant::now());
        let service = call.service.unwrap_or(Service::Unknown);
        let request_id = format!("fault-proxy-{seq}");
        let mut entry = LogEntry {
            seq,
            operation: call.operation,
            service: call.service,
            names: call.names,
            fault: fault.as_ref().map(Fault::name),
            forwarded: false,
            upstream_status: None,
            status: None,
        };
        let upstream_request = Request::from_parts(parts, Full::new(body));
        let result = match fault {
            None => self
                .forward(upstream_request)
                .await
                .map_err(|_| Dropped("upstream unreachable")),
            Some(Fault::Latency { ms }) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                self.forward(upstream_request)
                    .await
                    .map_err(|_| Dropped("upstream unreachable"))
            }
            Some(Fault::Throttle) => Ok(error_response(protocol::throttling(service, &request_id))),
            Some(Fault::InternalError) => Ok(error_response(protocol::internal_error(
                service,
                &request_id,
            ))),
            Some(Fault::Drop | Fault::Outage) => Err(Dropped("drop")),
            Some(Fault::FailAfterForward) => {
                entry.forwarded = true;
                match self.forward(upstream_request).await {
                    Ok(upstream) => {
                        entry.upstream_status = Some(upstream.status().as_u16());
                        Ok(error_response(protocol::internal_error(
                            service,
                            &request_id,
                        )))
                    }
                    Err(_) => Err(Dropped("upstream unreachable")),
                }
            }
        };
        if matches!(fault, None | Some(Fault::Latency { .. })) {
            entry.forwarded = true;
            entry.upstream_status = result.as_ref().ok().map(|r| r.status().as_u16());
        }
        entry.status = result.as_ref().ok().map(|r| r.status().as_u16());
        tracing::debug!(?entry, "proxied");
        self.record(entry);
        result
    }

    fn record(&self, entry: LogEntry) {
        self.log.lock().expect("log lock").push(entry);
    }

    /// One request to the upstream on a fresh connection, its answer read in full.
    async fn forward(
        &self,
        mut request: Request<Full<Bytes>>,
    ) -> std::io::Result<Response<Full<Bytes>>> {
        let authority = self
            .upstream
            .authority()
            .ok_or_else(|| std::io::Error::other("upstream has no host"))?
            .clone();
        let stream = TcpStream::connect(authority.as_str()).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(connection);
        // Only the path goes upstream; the Host header stays the one the client signed.
        let path = request
            .uri()
            .path_and_query()
            .map(|pq| pq.as_str().to_owned())
            .unwrap_or_else(|| "/".into());
        *request.uri_mut() = path.parse().map_err(std::io::Error::other)?;
        let response = sender
            .send_request(request)
            .await
            .map_err(std::io::Error::other)?;
        let (mut parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        // The body is re-framed by hyper from its length.
        parts.headers.remove(hyper::header::TRANSFER_ENCODING);
        parts.headers.remove(hyper::header::CONNECTION);
        Ok(Response::from_parts(parts, Full::new(body)))
    }

    async fn admin(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let log_path = format!("{ADMIN_PATH}/log");
        let method = request.method().clone();
        let is_log = request.uri().path() == log_path;
        match (method, is_log) {
            (Method::GET, true) => {
                let mut log = self.log.lock().expect("log lock").clone();
                log.sort_by_key(|entry| entry.seq);
                json_response(
                    StatusCode::OK,
                    serde_json::to_string_pretty(&log).expect("log"),
                )
            }
            (Method::GET, false) => json_response(StatusCode::OK, self.rules_json()),
            (Method::PUT, false) => {
                let body = match request.into_body().collect().await {
                    Ok(collected) => collected.to_bytes(),
                    Err(error) => return text_response(StatusCode::BAD_REQUEST, error.to_string()),
                };
                match serde_json::from_slice::<Rules>(&body) {
                    Ok(rules) => {
                        self.install(rules);
                        json_response(StatusCode::OK, self.rules_json())
                    }
                    Err(error) => {
                        text_response(StatusCode::BAD_REQUEST, format!("invalid rules: {error}\n"))
                    }
                }
            }
            (Method::DELETE, false) => {
                self.install(Rules::default());
                json_response(StatusCode::OK, self.rules_json())
            }
            _ => text_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "GET, PUT or DELETE\n".into(),
            ),
        }
    }
}

fn error_response(answer: protocol::ErrorAnswer) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(answer.body)));
    *response.status_mut() = StatusCode::from_u16(answer.status).expect("valid status");
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    response
}

fn json_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = text_response(status, body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn text_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    address: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port in front of `upstream` (an http:// URL).
    pub async fn start(upstream: &str) -> std::io::Result<Self> {
        Self::bind(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream,
            Rules::default(),
        )
        .await
    }

    pub async fn bind(listen: SocketAddr, upstream: &str, rules: Rules) -> std::io::Result<Self> {
        let upstream: Uri = upstream
            .parse()
            .map_err(|error| std::io::Error::other(format!("upstream {upstream}: {error}")))?;
        if upstream.scheme_str() != Some("http") || upstream.authority().is_none() {
            return Err(std::io::Error::other(format!(
                "upstream {upstream} must be an http://host:port URL"
            )));
        }
        let listener = TcpListener::bind(listen).await?;
        let address = listener.local_addr()?;
        let state = Arc::new(State {
            upstream,
            injector: Mutex::new(rules::Injector::new(rules, Instant::now())),
            log: Mutex::new(Vec::new()),
            sequence: AtomicU64::new(0),
        });
        let task = tokio::spawn(serve(listener, state.clone()));
        Ok(Self {
            address,
            state,
            task,
        })
    }

    /// The URL to give AWS clients as their endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Replaces the rules (and resets their counters).
    pub fn set_rules(&self, rules: Rules) {
        self.state.install(rules);
    }

    /// No faults from now on: every request is forwarded.
    pub fn clear(&self) {
        self.state.install(Rules::default());
    }

    /// Every request seen so far, in arrival order of their sequence numbers.
    pub fn log(&self) -> Vec<LogEntry> {
        let mut log = self.state.log.lock().expect("log lock").clone();
        log.sort_by_key(|entry| entry.seq);
        log
    }

    /// Requests faulted so far, per rule, in rule order.
    pub fn applied(&self) -> Vec<u64> {
        let injector = self.state.injector.lock().expect("injector lock");
        injector.rules().iter().map(|state| state.applied).collect()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    let http = hyper::server::conn::http1::Builder::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let state = state.clone();
            // Its own task: a client that goes away mid-call (a killed operator) must not cancel
            // a call already forwarded, since AWS would have carried it out and the log must say so.
            async move {
                tokio::spawn(async move { state.respond(request).await })
                    .await
                    .unwrap_or(Err(Dropped("proxy task failed")))
            }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended");
            }
        });
    }
}

/// The binary's entry point for `rolecall fault-proxy`.
pub async fn main(args: FaultProxyArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let rules = match &args.rules {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
            serde_json::from_str(&text)
                .map_err(|error| format!("invalid rules in {}: {error}", path.display()))?
        }
        None => Rules::default(),
    };
    let proxy = FaultProxy::bind(args.listen, &args.upstream, rules)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", args.listen))?;
    println!("listening on {}", proxy.endpoint());
    tracing::info!(address = %proxy.address(), upstream = %args.upstream, "fault-proxy serving");
    shutdown_signal().await?;
    tracing::info!("fault-proxy stopped");
    Ok(())
}

async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => {},
        _ = interrupt.recv() => {},
    }
    Ok(())
}
