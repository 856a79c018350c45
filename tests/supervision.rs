//! A long-running task that stops on its own is seen from outside: `/healthz`, served by the
//! real HTTP server, answers 503 naming it (and `/readyz` still answers on its own terms),
//! while a task that ends at shutdown leaves `/healthz` at 200.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use rolecall::aws::CallLog;
use rolecall::telemetry::{self, Telemetry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let request = format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("answer");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad response {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

async fn serve(telemetry: &Arc<Telemetry>) -> SocketAddr {
    let address = "127.0.0.1:0".parse().expect("address");
    let (bound, server) = telemetry::bind(address, telemetry.clone(), std::future::pending())
        .await
        .expect("bind");
    tokio::spawn(server);
    bound
}

#[tokio::test]
async fn a_controller_that_stops_before_shutdown_fails_healthz() {
    let telemetry = Arc::new(Telemetry::new(Arc::new(CallLog::default())));
    let address = serve(&telemetry).await;
    assert_eq!(get(address, "/healthz").await, (200, "ok\n".into()));

    let shutdown = std::future::pending::<()>().boxed().shared();
    let stopped = telemetry.health.stopped();
    // A controller whose stream ends by itself, as one whose watch ended would.
    tokio::spawn(
        telemetry
            .health
            .supervise("the IamRole controller", async {}, shutdown),
    );
    tokio::time::timeout(Duration::from_secs(5), stopped)
        .await
        .expect("the stop is announced to `rolecall run`");
    assert_eq!(
        get(address, "/healthz").await,
        (503, "the IamRole controller stopped\n".into())
    );
    let (status, body) = get(address, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("caches syncing"), "{body}");
}

#[tokio::test]
async fn controllers_that_stop_at_shutdown_leave_healthz_at_200() {
    let telemetry = Arc::new(Telemetry::new(Arc::new(CallLog::default())));
    let address = serve(&telemetry).await;
    let (stop, stopping) = tokio::sync::oneshot::channel::<()>();
    let shutdown = stopping.map(drop).boxed().shared();
    let controller = tokio::spawn(telemetry.health.supervise(
        "the IamPolicy controller",
        shutdown.clone(),
        shutdown,
    ));
    stop.send(()).expect("the controller waits");
    controller.await.expect("the controller ends");
    assert_eq!(get(address, "/healthz").await, (200, "ok\n".into()));
    assert_eq!(telemetry.health.stopped_task(), None);
}
