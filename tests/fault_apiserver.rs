//! kube-apiserver stops and starts again while `rolecall run` works: the operator survives,
//! its watches recover, and objects created and changed after the restart converge.
//!
//! The test brings up a control plane of its own (`scripts/cluster.sh` with a private state
//! directory) so that stopping its apiserver disturbs no other test.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::pairs;
use common::process::OperatorProcess;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use rolecall::api::IamPolicy;
use serde_json::json;

/// A private control plane, stopped and removed on drop.
struct PrivateCluster {
    state: PathBuf,
}

impl PrivateCluster {
    fn up() -> Self {
        let state = std::env::temp_dir().join(format!("rolecall-apiserver-{}", std::process::id()));
        let cluster = Self { state };
        cluster.script("up");
        cluster
    }

    fn script(&self, command: &str) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster.sh");
        let status = Command::new("bash")
            .arg(script)
            .arg(command)
            .env("ROLECALL_STATE", &self.state)
            .status()
            .expect("run scripts/cluster.sh");
        assert!(
            status.success(),
            "scripts/cluster.sh {command} failed ({status}); it needs the tools `scripts/cluster.sh install` builds"
        );
    }

    fn kubeconfig(&self) -> PathBuf {
        self.state.join("cluster/kubeconfig")
    }

    async fn client(&self) -> Client {
        let kubeconfig = Kubeconfig::read_from(self.kubeconfig()).expect("private kubeconfig");
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("config from the private kubeconfig");
        Client::try_from(config).expect("client")
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        self.script("down");
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

/// The watches of rolecall's kinds open at the API server, by resource (its own gauge).
async fn rolecall_watches(client: &Client) -> std::collections::BTreeMap<String, f64> {
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let metrics = client
        .request_text(request)
        .await
        .expect("the API server's metrics");
    metrics
        .lines()
        .filter(|line| line.starts_with("apiserver_longrunning_requests{"))
        .filter(|line| {
            line.contains("group=\"iam.rolecall.dev\"") && line.contains("verb=\"WATCH\"")
        })
        .filter_map(|line| {
            let resource = line.split("resource=\"").nth(1)?.split('"').next()?;
            let value = line.rsplit(' ').next()?.parse::<f64>().ok()?;
            Some((resource.to_owned(), value))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_recover_after_the_apiserver_restarts() {
    let cluster = PrivateCluster::up();
    let client = cluster.client().await;
    common::install_crds_into(&client).await;
    let namespace = common::fresh_namespace(&client, "restart").await;
    let kubeconfig = cluster.kubeconfig();
    let mut operator = OperatorProcess::start_logging(
        kubeconfig.to_str().expect("utf-8 path"),
        env!("CARGO_BIN_EXE_rolecall"),
        &namespace,
        &common::aws_endpoint(),
        &[],
        "info,kube=warn,kube_runtime::watcher=debug",
    );

    pairs::apply(&client, &namespace, 0..3).await;
    pairs::wait_all_ready(&client, &namespace, 3, Duration::from_secs(60)).await;
    // One watch per kind, however many controllers follow it: each is a connection, a list at
    // start, and a relist after every outage (this cluster has no other client watching).
    let kinds = [
        "iampolicies",
        "iamroles",
        "instanceprofiles",
        "ec2instancebindings",
        "iamgroups",
        "iamusers",
        "tenancies",
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let watches = rolecall_watches(&client).await;
        if kinds.iter().all(|kind| watches.get(*kind) == Some(&1.0)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not one watch per kind: {watches:?}\n{}",
            operator.output()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    cluster.script("stop-apiserver");
    // The operator notices: its watches fail and it says so.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !operator.output().contains("watch failed; retrying") {
        assert!(
            std::time::Instant::now() < deadline,
            "the operator did not report its watches failing within 60 s:\n{}",
            operator.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        operator.is_running(),
        "the operator died without its API server"
    );
    cluster.script("start-apiserver");
    let back = std::time::Instant::now();
    let client = cluster.client().await;

    // New objects and a change to an old one, all after the restart.
    pairs::apply(&client, &namespace, 3..6).await;
    let policies: Api<IamPolicy> = Api::namespaced(client.clone(), &namespace);
    let change = json!({
        "apiVersion": "iam.rolecall.dev/v1alpha1",
        "kind": "IamPolicy",
        "metadata": { "name": "p0" },
        "spec": {
            "name": pairs::policy_name(&namespace, 0),
            "document": { "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": "*",
            }] },
        },
    });
    policies
        .patch(
            "p0",
            &PatchParams::apply("rolecall-tests").force(),
            &Patch::Apply(&change),
        )
        .await
        .expect("change p0");
    // Every watch fails at least twice across a restart (the dropped connection, then a
    // resourceVersion too old for the new watch cache), and waits its backoff after each:
    // rolecall's waits at most 10 s (kube's default, up to 60 s, took 90 s here). With a
    // watch per controller (about 20) it took 20-75 s; with one per kind, about 5 s. The
    // deadline leaves room for a slow machine; a failure prints every watch retry.
    if let Err(message) =
        pairs::try_wait_all_ready(&client, &namespace, 6, Duration::from_secs(60)).await
    {
        panic!("{message}\noperator output:\n{}", operator.output());
    }
    eprintln!(
        "all objects Ready {:.1}s after the API server was back",
        back.elapsed().as_secs_f64()
    );
    let p0 = policies.get("p0").await.expect("p0");
    assert_eq!(
        p0.status
            .as_ref()
            .and_then(|s| s.common.observed_generation),
        p0.metadata.generation,
        "the change made after the restart was reconciled"
    );
    assert!(operator.is_running(), "{}", operator.output());

    pairs::delete_all(&client, &namespace, Duration::from_secs(60)).await;
    let aws = common::operator::aws_clients().await;
    common::leaks::assert_no_leaks(&client, &aws, &namespace).await;
    drop(operator);
    drop(cluster);
}
