//! Running the operator as a service account with exactly the chart's RBAC rules: the rules are
//! bound to a service account name and a client impersonates it, so every reconcile test also
//! proves the chart grants enough.

use std::time::Duration;

use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleBinding};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Config};
use tokio::sync::OnceCell;

const MANAGER: &str = "rolecall-tests";

/// The service account the reconcile tests run the operator as (it need not exist:
/// impersonation and RBAC go by name).
pub const TEST_ACCOUNT_NAMESPACE: &str = "rolecall-test";
pub const TEST_ACCOUNT: &str = "rolecall";

pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// A client for the same API server as `KUBECONFIG`, acting as `user`.
pub async fn impersonating_client(user: &str) -> Client {
    let mut config = Config::infer().await.expect("KUBECONFIG readable");
    config.auth_info.impersonate = Some(user.into());
    Client::try_from(config).expect("an impersonating client")
}

/// Creates (or updates) a ClusterRole named `name` with `rules`.
pub async fn apply_cluster_role(admin: &Client, name: &str, rules: Vec<PolicyRule>) {
    let role = ClusterRole {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            labels: Some([("rolecall.dev/test".to_string(), "true".to_string())].into()),
            ..Default::default()
        },
        rules: Some(rules),
        ..Default::default()
    };
    apply(&Api::<ClusterRole>::all(admin.clone()), name, &role).await;
}

fn subject(namespace: &str, name: &str) -> serde_json::Value {
    serde_json::json!([{ "kind": "ServiceAccount", "name": name, "namespace": namespace }])
}

/// Binds ClusterRole `role` cluster-wide to the service account `namespace/account`.
pub async fn bind_cluster_wide(admin: &Client, role: &str, namespace: &str, account: &str) {
    let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": { "name": role, "labels": { "rolecall.dev/test": "true" } },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
        "subjects": subject(namespace, account),
    }))
    .expect("valid ClusterRoleBinding");
    apply(
        &Api::<ClusterRoleBinding>::all(admin.clone()),
        role,
        &binding,
    )
    .await;
}

/// Binds ClusterRole `role` in namespace `in_namespace` only to `namespace/account`.
pub async fn bind_in_namespace(
    admin: &Client,
    role: &str,
    in_namespace: &str,
    namespace: &str,
    account: &str,
) {
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": { "name": role, "namespace": in_namespace },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
        "subjects": subject(namespace, account),
    }))
    .expect("valid RoleBinding");
    apply(
        &Api::<RoleBinding>::namespaced(admin.clone(), in_namespace),
        role,
        &binding,
    )
    .await;
}

async fn apply<K>(api: &Api<K>, name: &str, object: &K)
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .unwrap_or_else(|e| panic!("applying {name}: {e}"));
}

static CHART_ACCOUNT: OnceCell<String> = OnceCell::const_new();

/// A client acting as the test service account, bound to the chart's own ClusterRole
/// (rendered with `helm template` once per test process), with `rbac.userSecrets` on so that
/// IamUsers can write their Secrets (tests/users.rs shows what happens without it).
pub async fn chart_service_account_client(admin: &Client) -> Client {
    let user = CHART_ACCOUNT
        .get_or_init(|| async {
            let role = super::chart::cluster_role_with(&["--set", "rbac.userSecrets=true"]);
            let name = "rolecall-test-chart-rules";
            apply_cluster_role(admin, name, role.rules.unwrap_or_default()).await;
            bind_cluster_wide(admin, name, TEST_ACCOUNT_NAMESPACE, TEST_ACCOUNT).await;
            let reader = "rolecall-test-chart-tenancy-reader";
            let rules = super::chart::tenancy_reader_role()
                .rules
                .unwrap_or_default();
            apply_cluster_role(admin, reader, rules).await;
            bind_cluster_wide(admin, reader, TEST_ACCOUNT_NAMESPACE, TEST_ACCOUNT).await;
            let user = service_account_user(TEST_ACCOUNT_NAMESPACE, TEST_ACCOUNT);
            let client = impersonating_client(&user).await;
            wait_until_allowed(&client, None, "iam.rolecall.dev", "iampolicies", "watch").await;
            user
        })
        .await;
    impersonating_client(user).await
}

/// Waits until the API server's RBAC cache lets `client` do `verb` on `resource` (bindings
/// take effect a moment after they are written).
pub async fn wait_until_allowed(
    client: &Client,
    namespace: Option<&str>,
    group: &str,
    resource: &str,
    verb: &str,
) {
    let review: SelfSubjectAccessReview = serde_json::from_value(serde_json::json!({
        "spec": { "resourceAttributes": {
            "namespace": namespace, "group": group, "resource": resource, "verb": verb,
        } }
    }))
    .expect("valid SelfSubjectAccessReview");
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    super::wait_for(
        &format!("RBAC to allow {verb} {resource}.{group}"),
        Duration::from_secs(30),
        || {
            let api = api.clone();
            let review = review.clone();
            async move {
                let answer = api.create(&PostParams::default(), &review).await.ok()?;
                answer.status.filter(|status| status.allowed)
            }
        },
    )
    .await;
}
