//! `rolecall imds-mock`: the EC2 instance metadata service of one instance, on a local
//! address, answering from live AWS (or moto) state: the instance's profile association, the
//! profile's role, and credentials minted for it with STS AssumeRole.
//!
//! Served: `PUT /latest/api/token` (IMDSv2), `meta-data/instance-id`, `meta-data/iam/info`,
//! `meta-data/iam/security-credentials/<role>`,
//! `dynamic/identity-credentials/ec2/security-credentials/ec2-instance`, and the listing of
//! every directory above them (`/latest/`, `meta-data/`, `iam/security-credentials/` naming
//! the role, ...), which names only what the instance has right now. Real EC2 serves the
//! identity credentials to every instance, with no permissions attached; there is no instance
//! principal to mint them for here, so this mock serves the role's credentials there too, and
//! 404 when the instance has no role.

pub mod credentials;
pub mod protocol;
pub mod tokens;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderValue, SERVER};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;

use crate::aws::{AwsArgs, AwsClients, AwsError};
use credentials::{Binding, LiveCredentials};
use protocol::{CredentialsDocument, IamInfo, Route, TOKEN_HEADER, TOKEN_TTL_HEADER};
use tokens::TokenStore;

#[derive(clap::Args, Clone, Debug)]
pub struct ImdsArgs {
    /// Address to serve on; port 0 picks a free port. The first line on stdout is
    /// `listening on http://<address>`.
    #[arg(long, env = "ROLECALL_IMDS_LISTEN", default_value = "127.0.0.1:1338")]
    pub listen: SocketAddr,

    /// The EC2 instance this metadata service belongs to (i-...).
    #[arg(long, env = "ROLECALL_IMDS_INSTANCE_ID")]
    pub instance_id: String,

    #[command(flatten)]
    pub aws: AwsArgs,

    /// Also answer requests without an IMDSv2 token (IMDSv1). By default a token is required.
    #[arg(long, env = "ROLECALL_IMDS_ALLOW_V1")]
    pub imdsv1: bool,

    /// Mint new credentials once cached ones are this close to expiring (`90s`, `5m`).
    #[arg(
        long,
        env = "ROLECALL_IMDS_REFRESH_MARGIN",
        default_value = "5m",
        value_parser = crate::cli::parse_duration
    )]
    pub refresh_margin: Duration,
}

/// How the metadata service behaves.
#[derive(Clone, Debug)]
pub struct Settings {
    pub instance_id: String,
    pub allow_imdsv1: bool,
    pub refresh_margin: Duration,
}

impl From<&ImdsArgs> for Settings {
    fn from(args: &ImdsArgs) -> Self {
        Self {
            instance_id: args.instance_id.clone(),
            allow_imdsv1: args.imdsv1,
            refresh_margin: args.refresh_margin,
        }
    }
}

/// The metadata service of one instance.
#[derive(Debug)]
pub struct Imds {
    settings: Settings,
    tokens: TokenStore,
    live: LiveCredentials,
}

/// An answer before it becomes an HTTP response.
#[derive(Debug, PartialEq, Eq)]
struct Reply {
    status: StatusCode,
    body: String,
    token_ttl: Option<u64>,
}

impl Reply {
    fn ok(body: String) -> Self {
        Self {
            status: StatusCode::OK,
            body,
            token_ttl: None,
        }
    }

    fn status(status: StatusCode) -> Self {
        Self {
            status,
            body: status.canonical_reason().unwrap_or_default().to_owned(),
            token_ttl: None,
        }
    }

    fn json(document: &impl serde::Serialize) -> Self {
        Self::ok(serde_json::to_string_pretty(document).expect("IMDS documents serialize"))
    }
}

impl Imds {
    pub fn new(clients: AwsClients, settings: Settings) -> Self {
        let live = LiveCredentials::new(
            clients,
            settings.instance_id.clone(),
            settings.refresh_margin,
        );
        Self {
            settings,
            tokens: TokenStore::default(),
            live,
        }
    }

    /// Answers one HTTP request.
    pub async fn respond<B>(&self, request: Request<B>) -> Response<Full<Bytes>> {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let reply = self.handle(&method, &path, request.headers()).await;
        tracing::debug!(%method, %path, status = reply.status.as_u16(), "request");
        let mut response = Response::new(if method == Method::HEAD {
            Full::default()
        } else {
            Full::new(Bytes::from(reply.body))
        });
        *response.status_mut() = reply.status;
        let headers = response.headers_mut();
        headers.insert(SERVER, HeaderValue::from_static("EC2ws"));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        if let Some(ttl) = reply.token_ttl {
            headers.insert(TOKEN_TTL_HEADER, HeaderValue::from(ttl));
        }
        response
    }

    async fn handle(&self, method: &Method, path: &str, headers: &HeaderMap) -> Reply {
        let route = protocol::route(method, path);
        match route {
            Route::Token => return self.issue_token(headers),
            Route::MethodNotAllowed => return Reply::status(StatusCode::METHOD_NOT_ALLOWED),
            _ => {}
        }
        let token = headers
            .get(TOKEN_HEADER)
            .map(|value| value.to_str().unwrap_or_default());
        let now = Instant::now();
        let token_is_valid = |token: &str| self.tokens.is_valid(token, now);
        if !protocol::may_read(token, token_is_valid, self.settings.allow_imdsv1) {
            return Reply::status(StatusCode::UNAUTHORIZED);
        }
        match self.read(route).await {
            Ok(reply) => reply,
            Err(error) => {
                tracing::warn!(%path, %error, "cannot read the instance's IAM state");
                Reply::status(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    fn issue_token(&self, headers: &HeaderMap) -> Reply {
        // EC2 refuses token requests that went through a proxy, so a token never leaves the
        // instance by way of a misconfigured forwarder.
        if headers.contains_key("x-forwarded-for") {
            return Reply::status(StatusCode::FORBIDDEN);
        }
        let ttl_header = headers
            .get(TOKEN_TTL_HEADER)
            .map(|value| value.to_str().unwrap_or_default());
        let ttl = match protocol::parse_token_ttl(ttl_header) {
            Ok(ttl) => ttl,
            Err(error) => {
                return Reply {
                    status: StatusCode::BAD_REQUEST,
                    body: error.to_string(),
                    token_ttl: None,
                };
            }
        };
        match self.tokens.issue(ttl, Instant::now()) {
            Ok(token) => Reply {
                token_ttl: Some(ttl.as_secs()),
                ..Reply::ok(token)
            },
            Err(error) => {
                tracing::error!(%error, "no randomness for a token");
                Reply::status(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    async fn read(&self, route: Route) -> Result<Reply, AwsError> {
        let not_found = || Reply::status(StatusCode::NOT_FOUND);
        match route {
            Route::InstanceId => return Ok(Reply::ok(self.settings.instance_id.clone())),
            // Like EC2, the token is checked first: without one, every path is 401.
            Route::NotFound => return Ok(not_found()),
            _ => {}
        }
        let binding = self.live.binding().await?;
        if let Route::Listing(directory) = route {
            let role = binding.as_ref().and_then(|binding| binding.role.as_ref());
            let files = protocol::served_files(binding.is_some(), role.map(|role| &*role.name));
            return Ok(match protocol::listing(&files, directory) {
                Some(entries) => Reply::ok(entries.join("\n")),
                None => not_found(),
            });
        }
        let Some(binding) = binding else {
            return Ok(not_found());
        };
        let Binding {
            profile_arn,
            profile_id,
            role,
        } = binding;
        Ok(match (route, role) {
            (Route::IamInfo, _) => {
                Reply::json(&IamInfo::new(&profile_arn, &profile_id, SystemTime::now()))
            }
            (Route::RoleCredentials(asked), Some(role)) if asked == role.name => {
                let credentials = self.live.credentials(&role).await?;
                Reply::json(&CredentialsDocument::from(&credentials))
            }
            (Route::IdentityCredentials, Some(role)) => {
                let credentials = self.live.credentials(&role).await?;
                Reply::json(&CredentialsDocument::from(&credentials))
            }
            _ => not_found(),
        })
    }
}

/// Serves `imds` on `listener` until `shutdown` completes, then lets open requests finish
/// (for at most five seconds).
pub async fn serve(
    listener: TcpListener,
    imds: Arc<Imds>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let handler = move |request: Request<Incoming>| {
        let imds = imds.clone();
        async move { imds.respond(request).await }
    };
    crate::http::serve(listener, handler, shutdown).await
}

/// The binary's entry point for `rolecall imds-mock`.
pub async fn main(args: ImdsArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    init_logging();
    // Handlers are installed before the address is announced, so a SIGTERM sent right after
    // always shuts down cleanly.
    let shutdown = shutdown_signal()?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", args.listen))?;
    let address = listener.local_addr()?;
    if !address.ip().is_loopback() {
        tracing::warn!(%address, "serving instance credentials on a non-loopback address");
    }
    let clients = AwsClients::from_args(&args.aws).await;
    let imds = Arc::new(Imds::new(clients, Settings::from(&args)));
    println!("listening on http://{address}");
    tracing::info!(%address, instance_id = %args.instance_id, imdsv1 = args.imdsv1, "imds-mock serving");
    serve(listener, imds, shutdown).await?;
    tracing::info!("imds-mock stopped");
    Ok(())
}

/// Logs go to stderr: stdout carries the address line that callers read.
fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
        tracing::info!("shutting down");
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A service whose AWS clients are never called by the requests these tests make.
    fn imds(allow_imdsv1: bool) -> Imds {
        let config = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        Imds::new(
            AwsClients::new(&config),
            Settings {
                instance_id: "i-0123456789abcdef0".into(),
                allow_imdsv1,
                refresh_margin: Duration::from_secs(300),
            },
        )
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    hyper::header::HeaderName::from_static(name),
                    HeaderValue::from_str(value).unwrap(),
                )
            })
            .collect()
    }

    const INSTANCE_ID: &str = "/latest/meta-data/instance-id";

    #[tokio::test]
    async fn a_token_from_put_unlocks_reads() {
        let imds = imds(false);
        let token = imds
            .handle(
                &Method::PUT,
                "/latest/api/token",
                &headers(&[(TOKEN_TTL_HEADER, "60")]),
            )
            .await;
        assert_eq!(token.status, StatusCode::OK);
        assert_eq!(token.token_ttl, Some(60));
        let read = imds
            .handle(
                &Method::GET,
                INSTANCE_ID,
                &headers(&[(TOKEN_HEADER, &token.body)]),
            )
            .await;
        assert_eq!(read, Reply::ok("i-0123456789abcdef0".into()));
    }

    #[tokio::test]
    async fn reads_without_a_valid_token_are_unauthorized() {
        let imds = imds(false);
        let none = imds
            .handle(&Method::GET, INSTANCE_ID, &HeaderMap::new())
            .await;
        assert_eq!(none.status, StatusCode::UNAUTHORIZED);
        let made_up = headers(&[(TOKEN_HEADER, "made-up")]);
        let stale = imds.handle(&Method::GET, INSTANCE_ID, &made_up).await;
        assert_eq!(stale.status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn listings_need_a_token_like_every_read() {
        let imds = imds(false);
        for path in ["/latest/", "/latest/meta-data", "/latest/meta-data/iam/"] {
            let reply = imds.handle(&Method::GET, path, &HeaderMap::new()).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path}");
        }
    }

    #[tokio::test]
    async fn imdsv1_reads_are_answered_when_allowed() {
        let imds = imds(true);
        let read = imds
            .handle(&Method::GET, INSTANCE_ID, &HeaderMap::new())
            .await;
        assert_eq!(read.status, StatusCode::OK);
    }

    #[tokio::test]
    async fn token_requests_are_checked_like_ec2() {
        let imds = imds(false);
        let put = |pairs: &'static [(&'static str, &'static str)]| {
            let imds = &imds;
            async move {
                imds.handle(&Method::PUT, "/latest/api/token", &headers(pairs))
                    .await
                    .status
            }
        };
        assert_eq!(put(&[]).await, StatusCode::BAD_REQUEST);
        assert_eq!(
            put(&[(TOKEN_TTL_HEADER, "0")]).await,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            put(&[(TOKEN_TTL_HEADER, "21601")]).await,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            put(&[(TOKEN_TTL_HEADER, "60"), ("x-forwarded-for", "10.0.0.1")]).await,
            StatusCode::FORBIDDEN
        );
    }

    #[tokio::test]
    async fn unknown_paths_are_not_found_once_the_token_is_checked() {
        let imds = imds(true);
        let reply = imds
            .handle(&Method::GET, "/latest/user-data", &HeaderMap::new())
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        let imds = self::imds(false);
        let reply = imds
            .handle(&Method::GET, "/latest/user-data", &HeaderMap::new())
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
}
