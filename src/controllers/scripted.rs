//! The driver's paths against a scripted API server (tower-test), as kube-rs's controller-rs
//! tests its reconciler: every request the driver makes is checked in order and answered.
//! These add to the tests against the real API server; none of these paths reaches AWS.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response};
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::{Client, Resource};
use serde_json::{Value, json};

use super::reconcile;
use super::stores::Stores;
use crate::api::IamRole;
use crate::aws::{AwsClients, CallLog};
use crate::context::{Context, Settings};
use crate::telemetry::Telemetry;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const NAMESPACE: &str = "team";

fn role(spec: Value, finalized: bool, status: Option<Value>) -> IamRole {
    let mut object = json!({
        "apiVersion": "iam.rolecall.dev/v1alpha1", "kind": "IamRole",
        "metadata": { "name": "web", "namespace": NAMESPACE, "uid": "u-1", "generation": 1,
                      "resourceVersion": "7" },
        "spec": spec,
    });
    if finalized {
        object["metadata"]["finalizers"] = json!(["iam.rolecall.dev/cleanup"]);
    }
    if let Some(status) = status {
        object["status"] = status;
    }
    serde_json::from_value(object).expect("a valid IamRole")
}

/// A context whose Kubernetes client is the scripted server and whose AWS endpoint nothing
/// answers (a path that reached AWS would fail the test with a connection error).
fn context() -> (Arc<Context>, Handle) {
    context_with(Stores::empty())
}

/// As [`context`], reading `stores`.
fn context_with(stores: Stores) -> (Arc<Context>, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, NAMESPACE);
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:9")
        .build();
    let settings = Settings {
        cluster_name: "test".into(),
        dry_run: false,
        resync: Duration::from_secs(600),
        bulk_drift_checks: false,
    };
    let ctx = Context::new(
        client,
        &AwsClients::new(&sdk),
        Arc::new(Telemetry::new(Arc::new(CallLog::default()))),
        settings,
        "arn:aws:iam::123456789012:".into(),
        stores,
    );
    (Arc::new(ctx), handle)
}

/// Answers the next request after checking its method and path; returns its JSON body.
async fn expect(handle: &mut Handle, method: Method, path: &str, answer: Value) -> Value {
    expect_with(handle, method, path, 200, answer).await
}

/// As [`expect`], answering with the HTTP status `code`.
async fn expect_with(
    handle: &mut Handle,
    method: Method,
    path: &str,
    code: u16,
    answer: Value,
) -> Value {
    let (request, respond) = handle.next_request().await.expect("a request");
    assert_eq!(request.method(), method, "{}", request.uri());
    assert_eq!(request.uri().path(), path);
    let bytes = http_body_util::BodyExt::collect(request.into_body())
        .await
        .expect("the request body")
        .to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    respond.send_response(
        Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(&answer).unwrap()))
            .unwrap(),
    );
    body
}

const ROLE_PATH: &str = "/apis/iam.rolecall.dev/v1alpha1/namespaces/team/iamroles/web";
const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/team/events";

/// Runs one reconcile while `script` answers the server side; fails if the driver makes a
/// request the script did not expect.
async fn run(role: IamRole, script: impl AsyncFnOnce(&mut Handle)) -> (Action, Arc<Context>) {
    let (ctx, mut handle) = context();
    let reconciling = tokio::spawn(reconcile(Arc::new(role), ctx.clone()));
    script(&mut handle).await;
    let action = tokio::time::timeout(Duration::from_secs(10), reconciling)
        .await
        .expect("the reconcile ends")
        .expect("the reconcile does not panic")
        .expect("the driver handles its failures");
    // Nothing more was asked of the server.
    drop(ctx.clone());
    assert!(
        tokio::time::timeout(Duration::from_millis(200), handle.next_request())
            .await
            .is_err(),
        "an unexpected request after the script"
    );
    (action, ctx)
}

fn waiting_spec() -> Value {
    json!({ "trustedServices": ["ec2.amazonaws.com"], "policyRefs": [{ "name": "missing" }] })
}

#[tokio::test]
async fn a_new_object_gets_the_finalizer_first_and_nothing_else() {
    let (action, _) = run(role(waiting_spec(), false, None), async |server| {
        let patch = expect(
            server,
            Method::PATCH,
            ROLE_PATH,
            serde_json::to_value(role(waiting_spec(), true, None)).unwrap(),
        )
        .await;
        assert!(
            patch.to_string().contains("iam.rolecall.dev/cleanup"),
            "{patch}"
        );
    })
    .await;
    assert_eq!(
        action,
        Action::await_change(),
        "the finalizer's own event wakes it"
    );
}

/// A reconcile that ran on a cached copy older than its own finalizer write gets a 422 for
/// the JSON patch's test: the cache is behind, nothing failed. It looks again soon, and
/// reports, writes and counts nothing as an error.
#[tokio::test]
async fn a_finalizer_patch_refused_as_stale_is_retried_quietly() {
    let stale = json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Invalid",
        "message": "the server rejected our request due to an error in our request", "code": 422,
    });
    let (action, ctx) = run(role(waiting_spec(), false, None), async |server| {
        expect_with(server, Method::PATCH, ROLE_PATH, 422, stale).await;
    })
    .await;
    assert_eq!(action, Action::requeue(super::STALE_CACHE_RETRY));
    let metrics = ctx.telemetry.metrics.render(None);
    assert!(
        !metrics.contains("result=\"error\"} 1"),
        "a stale cache is not an error: {metrics}"
    );
}

#[tokio::test]
async fn a_wait_is_announced_written_once_and_retried_with_backoff() {
    let (action, ctx) = run(role(waiting_spec(), true, None), async |server| {
        let event = expect(server, Method::POST, EVENTS_PATH, json!({})).await;
        assert_eq!(event["reason"], "DependencyNotReady");
        assert_eq!(event["type"], "Normal");
        let status = expect(
            server,
            Method::PATCH,
            &format!("{ROLE_PATH}/status"),
            serde_json::to_value(role(waiting_spec(), true, None)).unwrap(),
        )
        .await;
        let ready = &status["status"]["conditions"][0];
        assert_eq!(ready["reason"], "DependencyNotReady", "{status}");
        assert_eq!(ready["status"], "False");
    })
    .await;
    let text = format!("{action:?}");
    assert!(
        text.contains("requeue_after: Some("),
        "a retry is scheduled: {text}"
    );
    let metrics = ctx.telemetry.metrics.render(None);
    assert!(
        metrics.contains("rolecall_reconciles_total{kind=\"IamRole\",result=\"error\"} 1\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_same_wait_again_writes_no_status_and_says_nothing() {
    // The status the previous reconcile wrote.
    let (ctx, _) = context();
    drop(ctx);
    let status = json!({
        "observedGeneration": 1,
        "conditions": [{
            "type": "Ready", "status": "False", "reason": "DependencyNotReady",
            "message": "IamPolicy missing does not exist in namespace team",
            "observedGeneration": 1, "lastTransitionTime": "2026-12-01T00:00:00Z",
        }],
    });
    let (action, _) = run(role(waiting_spec(), true, Some(status)), async |_| {}).await;
    assert_ne!(action, Action::await_change());
}

#[tokio::test]
async fn a_retained_object_being_deleted_loses_only_its_finalizer() {
    let spec = json!({ "trustedServices": ["ec2.amazonaws.com"], "deletionPolicy": "Retain" });
    let mut deleting = role(spec.clone(), true, None);
    deleting.meta_mut().deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()),
    );
    let (action, _) = run(deleting, async |server| {
        let event = expect(server, Method::POST, EVENTS_PATH, json!({})).await;
        assert_eq!(event["reason"], "Retained");
        let patch = expect(
            server,
            Method::PATCH,
            ROLE_PATH,
            serde_json::to_value(role(spec, false, None)).unwrap(),
        )
        .await;
        assert!(
            patch.to_string().contains("remove"),
            "the finalizer is removed: {patch}"
        );
    })
    .await;
    assert_eq!(action, Action::await_change());
}

/// Two reconciles in quick succession, both on the store's copy from before the first one's
/// status write (its watch event has not arrived): the second must not take that old copy
/// for the status the object has now. (Seen after a leader hand-over: a role stayed
/// "waiting to read the Tenancies" although its next reconcile succeeded.)
#[tokio::test]
async fn a_status_is_written_even_when_the_stale_cached_copy_already_shows_it() {
    let (policies, mut policy_writer) = kube::runtime::reflector::store::<crate::api::IamPolicy>();
    let policy: crate::api::IamPolicy = serde_json::from_value(json!({
        "apiVersion": "iam.rolecall.dev/v1alpha1", "kind": "IamPolicy",
        "metadata": { "name": "missing", "namespace": NAMESPACE, "uid": "p-1", "generation": 1,
                      "resourceVersion": "3" },
        "spec": { "document": { "Version": "2012-10-17", "Statement": [] } },
    }))
    .expect("a valid IamPolicy");
    policy_writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(policy.clone()));
    let mut stores = Stores::empty();
    stores.policies = super::stores::Scoped::new(vec![policies]);
    let (ctx, mut server) = context_with(stores);

    let absent = json!({
        "observedGeneration": 1,
        "conditions": [{
            "type": "Ready", "status": "False", "reason": "DependencyNotReady",
            "message": "IamPolicy missing does not exist in namespace team",
            "observedGeneration": 1, "lastTransitionTime": "2026-12-01T00:00:00Z",
        }],
    });
    // The store's copy: rv 7, saying the policy does not exist.
    let stale = Arc::new(role(waiting_spec(), true, Some(absent)));

    // The policy exists now, not Ready: new words for the same wait, written (rv 8).
    let first = tokio::spawn(reconcile(stale.clone(), ctx.clone()));
    let written = expect(
        &mut server,
        Method::PATCH,
        &format!("{ROLE_PATH}/status"),
        json!({
            "apiVersion": "iam.rolecall.dev/v1alpha1", "kind": "IamRole",
            "metadata": { "name": "web", "namespace": NAMESPACE, "uid": "u-1",
                          "generation": 1, "resourceVersion": "8" },
            "spec": waiting_spec(),
        }),
    )
    .await;
    let message = &written["status"]["conditions"][0]["message"];
    assert_eq!(message, "IamPolicy missing is not Ready yet", "{written}");
    first.await.unwrap().unwrap();

    // The policy goes again before the store shows rv 8: the object must say so, although
    // the stale copy does.
    policy_writer.apply_watcher_event(&kube::runtime::watcher::Event::Delete(policy));
    let second = tokio::spawn(reconcile(stale, ctx.clone()));
    let (request, respond) = tokio::time::timeout(Duration::from_secs(5), server.next_request())
        .await
        .expect("the second reconcile writes the status back (it waited for none)")
        .expect("a request");
    assert_eq!(request.method(), Method::PATCH);
    assert_eq!(request.uri().path(), format!("{ROLE_PATH}/status"));
    let bytes = http_body_util::BodyExt::collect(request.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        body["status"]["conditions"][0]["message"],
        "IamPolicy missing does not exist in namespace team",
        "{body}"
    );
    respond.send_response(
        Response::builder()
            .body(Body::from(
                serde_json::to_vec(&json!({
                    "apiVersion": "iam.rolecall.dev/v1alpha1", "kind": "IamRole",
                    "metadata": { "name": "web", "namespace": NAMESPACE, "uid": "u-1",
                                  "generation": 1, "resourceVersion": "9" },
                    "spec": waiting_spec(),
                }))
                .unwrap(),
            ))
            .unwrap(),
    );
    second.await.unwrap().unwrap();
}
