//! Shared helpers for the integration tests: finding the environment (a real API server
//! through `KUBECONFIG`, moto through `ROLECALL_TEST_AWS_ENDPOINT`), installing the CRDs, and
//! polling with deadlines.

#![allow(dead_code)] // each test binary uses a different subset

pub mod chart;
pub mod ec2;
pub mod leaks;
pub mod operator;
pub mod pairs;
pub mod process;
pub mod rbac;
pub mod ready;
pub mod schema;

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Config};
use tokio::sync::OnceCell;

const HOW_TO_START: &str = "start the local environment with `scripts/test.sh` (runs everything), \
or `scripts/cluster.sh up && scripts/moto.sh up` then \
`eval \"$(scripts/cluster.sh env)\" \"$(scripts/moto.sh env)\"`; \
to use another cluster, point KUBECONFIG at it (see README, \"Testing against another cluster\")";

/// A client for the cluster `KUBECONFIG` names; fails the test with instructions when absent.
pub async fn kube_client() -> Client {
    if std::env::var_os("KUBECONFIG").is_none() {
        panic!("KUBECONFIG is not set: {HOW_TO_START}");
    }
    let config = Config::infer()
        .await
        .unwrap_or_else(|error| panic!("cannot read KUBECONFIG ({error}): {HOW_TO_START}"));
    let client = Client::try_from(config).expect("a client from a valid kubeconfig");
    client
        .apiserver_version()
        .await
        .unwrap_or_else(|error| panic!("the API server does not answer ({error}): {HOW_TO_START}"));
    client
}

/// The moto endpoint the tests use; fails the test with instructions when absent.
pub fn aws_endpoint() -> String {
    std::env::var("ROLECALL_TEST_AWS_ENDPOINT")
        .unwrap_or_else(|_| panic!("ROLECALL_TEST_AWS_ENDPOINT is not set: {HOW_TO_START}"))
}

/// The CRDs as `crds/` holds them, parsed from the checked-in files (not from the Rust types),
/// so the tests exercise what users apply.
pub fn checked_in_crds() -> Vec<CustomResourceDefinition> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/crds");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("crds/ exists")
        .map(|entry| entry.expect("readable crds/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).expect("readable CRD file");
            serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

static CRDS_INSTALLED: OnceCell<()> = OnceCell::const_new();

/// Applies `crds/` (server-side apply, idempotent) once per test process and waits until
/// every CRD is Established.
pub async fn install_crds(client: &Client) {
    CRDS_INSTALLED
        .get_or_init(|| install_crds_into(client))
        .await;
}

/// The Tenancy granting the test namespaces (labelled `rolecall.dev/test: "true"` by
/// [`fresh_namespace`]) everything the tests of other behaviour need: the old permissive
/// behaviour, so that each test exercises its own subject. tests/tenancy.rs uses namespaces
/// without that label to test the rules and the defaults.
pub const TEST_TENANCY: &str = "rolecall-tests";

/// Applies the [`TEST_TENANCY`] (server-side apply, idempotent).
pub async fn apply_test_tenancy(client: &Client) {
    let tenancy = serde_json::json!({
        "apiVersion": "iam.rolecall.dev/v1alpha1",
        "kind": "Tenancy",
        "metadata": { "name": TEST_TENANCY },
        "spec": {
            "namespaceSelector": { "matchLabels": { "rolecall.dev/test": "true" } },
            "path": "/",
            "managedPolicies": ["*"],
            "allowPrivilegeEscalation": true,
            "trust": {
                "accounts": (0..100).map(|i| format!("{:012}", 100_000_000_000u64 + i)).collect::<Vec<_>>(),
                "federated": ["*"],
            },
            "references": { "roles": ["*"], "instanceProfiles": ["*"] },
            "instances": { "matchTags": {}, "replaceUnownedAssociations": true },
            "adopt": { "roles": ["*"], "policies": ["*"], "instanceProfiles": ["*"], "groups": ["*"], "users": ["*"] },
        },
    });
    let api: Api<kube::api::DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::erase::<rolecall::api::Tenancy>(&()),
    );
    api.patch(
        TEST_TENANCY,
        &PatchParams::apply("rolecall-tests").force(),
        &Patch::Apply(&tenancy),
    )
    .await
    .unwrap_or_else(|e| panic!("applying Tenancy {TEST_TENANCY}: {e}"));
}

/// Applies `crds/` to the cluster of `client` (another cluster than the shared one, say),
/// and the [`TEST_TENANCY`].
pub async fn install_crds_into(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("rolecall-tests").force();
    for crd in checked_in_crds() {
        let name = crd.metadata.name.clone().expect("CRDs are named");
        api.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("applying CRD {name}: {e}"));
        wait_for(
            &format!("CRD {name} Established"),
            Duration::from_secs(30),
            || {
                let api = api.clone();
                let name = name.clone();
                async move { api.get(&name).await.ok().filter(is_established) }
            },
        )
        .await;
    }
    apply_test_tenancy(client).await;
}

pub fn is_established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

static NAMESPACE_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A random 12-digit AWS account id from `base` on: moto keeps each account's IAM apart, so a
/// test in an account of its own never meets another test's users, policies or password
/// policy (each test file takes its own `base`).
pub fn fresh_account(base: u64) -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("random bytes");
    format!("{:012}", base + u64::from_le_bytes(bytes) % 99_999_999_999)
}

/// Creates a fresh namespace so tests never see each other's objects. Namespaces are left
/// behind: without kube-controller-manager they could not finish terminating anyway.
pub async fn fresh_namespace(client: &Client, prefix: &str) -> String {
    let name = format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NAMESPACE_COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let namespace: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name, "labels": { "rolecall.dev/test": "true" } }
    }))
    .expect("valid namespace");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
    name
}

/// Polls `check` until it yields a value or `timeout` passes, then fails naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Ready condition of an object, as (status, reason, message).
pub fn ready_condition(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> Option<(String, String, String)> {
    conditions
        .iter()
        .find(|condition| condition.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// A Get's answer, or `None` when AWS says the entity does not exist (the operator's own
/// classification); any other error fails the test.
pub fn found<T, E>(
    operation: &'static str,
    result: Result<T, aws_sdk_iam::error::SdkError<E, aws_smithy_runtime_api::http::Response>>,
) -> Option<T>
where
    E: aws_sdk_iam::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(output) => Some(output),
        Err(error) => {
            let error = rolecall::aws::AwsError::from_sdk(operation, error);
            assert!(error.is_not_found(), "{operation}: {error}");
            None
        }
    }
}
