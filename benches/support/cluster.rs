//! The benchmark's side of the cluster: CRDs, namespaces, applying objects, and the instant each
//! object first reports Ready for its generation (seen through watches, not polling).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

/// (kind, plural) of every rolecall kind, in dependency order.
pub const KINDS: [(&str, &str); 4] = [
    ("IamPolicy", "iampolicies"),
    ("IamRole", "iamroles"),
    ("InstanceProfile", "instanceprofiles"),
    ("Ec2InstanceBinding", "ec2instancebindings"),
];

pub type Key = (&'static str, String);

pub fn api(client: &Client, namespace: &str, kind: &str) -> Api<DynamicObject> {
    let plural = KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .expect("a rolecall kind")
        .1;
    let gvk = GroupVersionKind::gvk("iam.rolecall.dev", "v1alpha1", kind);
    Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

/// Applies `crds/*.yaml` and waits until each is Established.
pub async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/crds");
    let params = PatchParams::apply("rolecall-bench").force();
    for entry in std::fs::read_dir(dir).expect("crds/") {
        let path = entry.expect("crds/ entry").path();
        if path.extension().is_none_or(|ext| ext != "yaml") {
            continue;
        }
        let crd: CustomResourceDefinition =
            serde_norway::from_str(&std::fs::read_to_string(&path).expect("CRD file"))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = crd.name_any();
        api.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let established = api.get(&name).await.ok().is_some_and(|crd| {
                crd.status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
            if established {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "CRD {name} not Established in 30s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub async fn create_namespace(client: &Client, name: &str) {
    let namespace: Namespace =
        serde_json::from_value(json!({ "metadata": { "name": name } })).expect("namespace");
    Api::<Namespace>::all(client.clone())
        .create(&Default::default(), &namespace)
        .await
        .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
    // The platform team's step: the chains bind instances by id, which a namespace no Tenancy
    // selects may not do.
    let tenancy = json!({
        "apiVersion": "iam.rolecall.dev/v1alpha1",
        "kind": "Tenancy",
        "metadata": { "name": name },
        "spec": {
            "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": name } },
            "instances": { "matchTags": {} },
        },
    });
    let resource = kube::api::ApiResource::erase::<rolecall::api::Tenancy>(&());
    Api::<kube::api::DynamicObject>::all_with(client.clone(), &resource)
        .patch(
            name,
            &kube::api::PatchParams::apply("rolecall-bench").force(),
            &kube::api::Patch::Apply(&tenancy),
        )
        .await
        .unwrap_or_else(|e| panic!("apply Tenancy {name}: {e}"));
}

/// An object manifest of `kind` named `name`.
pub fn manifest(kind: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "iam.rolecall.dev/v1alpha1",
        "kind": kind,
        "metadata": { "name": name },
        "spec": spec,
    })
}

pub async fn apply(client: &Client, namespace: &str, object: &Value) {
    let kind = object["kind"].as_str().expect("kind");
    let name = object["metadata"]["name"].as_str().expect("name");
    api(client, namespace, kind)
        .patch(
            name,
            &PatchParams::apply("rolecall-bench").force(),
            &Patch::Apply(object),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {kind} {name}: {e}"));
}

fn is_ready(object: &DynamicObject) -> bool {
    let status = &object.data["status"];
    status["observedGeneration"].as_i64() == object.metadata.generation
        && status["conditions"].as_array().is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// The instant each object of the namespace was first seen Ready (for its generation).
#[derive(Clone, Default)]
pub struct ReadyLog(Arc<Mutex<HashMap<Key, Instant>>>);

impl ReadyLog {
    /// Watches every rolecall kind in `namespace` for the life of the runtime's tasks.
    pub fn watch(client: &Client, namespace: &str) -> (Self, Vec<tokio::task::JoinHandle<()>>) {
        let log = Self::default();
        let tasks = KINDS
            .iter()
            .map(|(kind, _)| {
                let kind: &'static str = kind;
                let stream = watcher(api(client, namespace, kind), watcher::Config::default())
                    .default_backoff()
                    .applied_objects();
                let log = log.clone();
                tokio::spawn(async move {
                    let mut stream = std::pin::pin!(stream);
                    while let Some(next) = stream.next().await {
                        let Ok(object) = next else { continue };
                        if is_ready(&object) {
                            let now = Instant::now();
                            log.0
                                .lock()
                                .expect("ready log")
                                .entry((kind, object.name_any()))
                                .or_insert(now);
                        }
                    }
                })
            })
            .collect();
        (log, tasks)
    }

    pub fn get(&self, key: &Key) -> Option<Instant> {
        self.0.lock().expect("ready log").get(key).copied()
    }

    /// Waits until every key is Ready; on the deadline, the keys still not Ready.
    pub async fn wait_all(&self, keys: &[Key], timeout: Duration) -> Result<(), Vec<Key>> {
        let deadline = Instant::now() + timeout;
        loop {
            let missing: Vec<Key> = {
                let log = self.0.lock().expect("ready log");
                keys.iter()
                    .filter(|key| !log.contains_key(*key))
                    .cloned()
                    .collect()
            };
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(missing);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// How many rolecall objects are left in `namespace`.
pub async fn count_objects(client: &Client, namespace: &str) -> usize {
    let mut count = 0;
    for (kind, _) in KINDS {
        count += api(client, namespace, kind)
            .list(&ListParams::default())
            .await
            .map(|list| list.items.len())
            .unwrap_or(usize::MAX / 8);
    }
    count
}

/// Deletes every rolecall object in `namespace`, dependents first.
pub async fn delete_all(client: &Client, namespace: &str) {
    for (kind, _) in KINDS.iter().rev() {
        let _ = api(client, namespace, kind)
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await;
    }
}

/// After the operator is gone: strips finalizers so nothing is left stuck, then deletes the
/// namespace (it stays Terminating without a controller-manager; that is harmless).
pub async fn remove_leftovers(client: &Client, namespace: &str) {
    delete_all(client, namespace).await;
    let strip = json!({ "metadata": { "finalizers": null } });
    for (kind, _) in KINDS {
        let api = api(client, namespace, kind);
        let names: Vec<String> = api
            .list(&ListParams::default())
            .await
            .map(|list| list.items.iter().map(|o| o.name_any()).collect())
            .unwrap_or_default();
        futures::stream::iter(names)
            .for_each_concurrent(16, |name| {
                let api = api.clone();
                let strip = strip.clone();
                async move {
                    let _ = api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&strip))
                        .await;
                }
            })
            .await;
    }
    let _ = Api::<Namespace>::all(client.clone())
        .delete(namespace, &DeleteParams::default())
        .await;
}
