//! SIGKILL `rolecall run` at random points while 100 policies and roles and 10 whole chains
//! (profile and binding too) converge, restart it, ten times over: in the end every object is
//! Ready, moto holds exactly one AWS object per Kubernetes object, every chain's instance holds
//! its profile, and nothing is orphaned, before and after deletion. A binding killed right after
//! associating, before its status was written, still disassociates when deleted.
//!
//! The kill points come from a random seed printed at the start; set ROLECALL_CRASH_SEED to
//! replay a run.

mod common;

use std::time::Duration;

use common::ec2::{associated_profile, external_profile, object, run_instance};
use common::leaks;
use common::pairs;
use common::process::OperatorProcess;
use common::ready::Ready;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use rolecall::api::{Ec2InstanceBinding, InstanceProfile};
use rolecall::aws::AwsClients;
use serde_json::json;

const PAIRS: usize = 50;
/// The first pairs also get a profile and a binding on an instance of their own.
const CHAINS: usize = 10;
const KILLS: usize = 10;

/// Profile `c<i>` around role `r<i>` and binding `c<i>` on `instances[i]`.
async fn apply_chains(client: &kube::Client, namespace: &str, instances: &[String]) {
    let profiles: Api<InstanceProfile> = Api::namespaced(client.clone(), namespace);
    let bindings: Api<Ec2InstanceBinding> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams::apply("rolecall-tests").force();
    for (index, instance) in instances.iter().enumerate() {
        let name = format!("c{index}");
        let profile: InstanceProfile = object(
            "InstanceProfile",
            &name,
            json!({
                "name": format!("{namespace}-c{index}"), "roleRef": { "name": format!("r{index}") },
            }),
        );
        profiles
            .patch(&name, &params, &Patch::Apply(&profile))
            .await
            .unwrap();
        let binding: Ec2InstanceBinding = object(
            "Ec2InstanceBinding",
            &name,
            json!({
                "instanceProfileRef": { "name": name }, "instanceIds": [instance],
            }),
        );
        bindings
            .patch(&name, &params, &Patch::Apply(&binding))
            .await
            .unwrap();
    }
}

/// How many profiles and bindings in `namespace` are Ready.
async fn chains_ready(client: &kube::Client, namespace: &str) -> usize {
    let profiles: Api<InstanceProfile> = Api::namespaced(client.clone(), namespace);
    let bindings: Api<Ec2InstanceBinding> = Api::namespaced(client.clone(), namespace);
    let ready = |r: Option<(String, String, String)>| r.is_some_and(|(s, _, _)| s == "True");
    let profiles = profiles.list(&ListParams::default()).await.unwrap().items;
    let bindings = bindings.list(&ListParams::default()).await.unwrap().items;
    profiles.iter().filter(|p| ready(p.ready())).count()
        + bindings.iter().filter(|b| ready(b.ready())).count()
}

async fn instances(aws: &AwsClients, count: usize) -> Vec<String> {
    let mut launched = Vec::new();
    for _ in 0..count {
        launched.push(run_instance(aws, &[]).await);
    }
    launched
}

/// A small deterministic generator (xorshift) so a seed replays the same kill points.
struct KillPoints(u64);

impl KillPoints {
    fn next_millis(&mut self, max: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % max
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_converges_once_through_ten_sigkills() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, "crash").await;
    let seed = std::env::var("ROLECALL_CRASH_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes).expect("random seed");
            u64::from_le_bytes(bytes) | 1
        });
    println!("kill points from ROLECALL_CRASH_SEED={seed}");
    let mut points = KillPoints(seed);

    let aws = common::operator::aws_clients().await;
    let chain_instances = instances(&aws, CHAINS).await;
    pairs::apply(&client, &namespace, 0..PAIRS).await;
    apply_chains(&client, &namespace, &chain_instances).await;
    for kill in 0..KILLS {
        let mut operator = OperatorProcess::start(&namespace, &[]);
        // Between start-up and well into the work: a kill at any moment must be survivable.
        let after = Duration::from_millis(points.next_millis(4000));
        tokio::time::sleep(after).await;
        operator.kill();
        let ready = pairs::ready_count(&client, &namespace).await;
        println!(
            "kill {}: after {after:?}, {ready} of {} Ready",
            kill + 1,
            PAIRS * 2
        );
    }

    let _operator = OperatorProcess::start(&namespace, &[]);
    pairs::wait_all_ready(&client, &namespace, PAIRS, Duration::from_secs(180)).await;
    common::wait_for("every chain Ready", Duration::from_secs(180), || async {
        (chains_ready(&client, &namespace).await == CHAINS * 2).then_some(())
    })
    .await;
    // No start reconciled before it knew the namespace's rules.
    let waits = pairs::waits_for_the_rules(&client, &namespace).await;
    assert!(waits.is_empty(), "objects waited for the rules: {waits:?}");

    let tagged = leaks::tagged_in_namespace(&aws, &namespace).await;
    assert_eq!(
        tagged.len(),
        PAIRS * 2 + CHAINS,
        "one AWS policy and one role per pair and one profile per chain, nothing created twice: {tagged:?}"
    );
    for (index, instance) in chain_instances.iter().enumerate() {
        let profile = associated_profile(&aws, instance).await.unwrap_or_default();
        assert!(
            profile.ends_with(&format!("/{namespace}-c{index}")),
            "{instance}: {profile:?}"
        );
    }
    leaks::assert_no_leaks(&client, &aws, &namespace).await;

    // Everything at once, as a GitOps prune does: in-use protection orders the AWS side.
    let all = ListParams::default();
    let bindings: Api<Ec2InstanceBinding> = Api::namespaced(client.clone(), &namespace);
    let profiles: Api<InstanceProfile> = Api::namespaced(client.clone(), &namespace);
    bindings
        .delete_collection(&Default::default(), &all)
        .await
        .unwrap();
    profiles
        .delete_collection(&Default::default(), &all)
        .await
        .unwrap();
    pairs::delete_all(&client, &namespace, Duration::from_secs(180)).await;
    common::wait_for(
        "the chains to be deleted",
        Duration::from_secs(180),
        || async {
            let left = bindings.list(&all).await.ok()?.items.len()
                + profiles.list(&all).await.ok()?.items.len();
            (left == 0).then_some(())
        },
    )
    .await;
    leaks::assert_no_leaks(&client, &aws, &namespace).await;
    assert!(
        leaks::tagged_in_namespace(&aws, &namespace)
            .await
            .is_empty()
    );
    for instance in &chain_instances {
        assert_eq!(associated_profile(&aws, instance).await, None, "{instance}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_binding_killed_right_after_associating_still_disassociates_when_deleted() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, "orphan").await;
    let aws = common::operator::aws_clients().await;
    let profile = format!("{namespace}-p");
    let arn = external_profile(&aws, &profile).await;
    let instance = run_instance(&aws, &[]).await;
    // The state a SIGKILL right after AssociateIamInstanceProfile leaves: the finalizer is on,
    // the association exists, and no status was ever written.
    let bindings: Api<Ec2InstanceBinding> = Api::namespaced(client.clone(), &namespace);
    let mut binding: Ec2InstanceBinding = object(
        "Ec2InstanceBinding",
        "web",
        json!({
            "instanceProfileName": profile, "instanceIds": [instance],
        }),
    );
    binding.metadata.finalizers = Some(vec![rolecall::conditions::FINALIZER.into()]);
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    aws.ec2
        .associate_iam_instance_profile()
        .instance_id(&instance)
        .iam_instance_profile(
            aws_sdk_ec2::types::IamInstanceProfileSpecification::builder()
                .arn(&arn)
                .build(),
        )
        .send()
        .await
        .unwrap();
    // Deleted while the operator is down; it comes back to a cleanup with no status to go by.
    bindings
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    let _operator = OperatorProcess::start(&namespace, &[]);
    common::wait_for("the binding gone", Duration::from_secs(60), || async {
        bindings
            .get_opt("web")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(
        associated_profile(&aws, &instance).await,
        None,
        "orphaned association"
    );
}
