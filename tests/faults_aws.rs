//! The operator under AWS faults, with the fault proxy between it and moto: mixed faults on a
//! batch of objects (all converge, nothing created twice, no write on a converged resync), AWS
//! unreachable for a minute (conditions say so, nothing lost, convergence resumes), and
//! deletions while AWS fails (finalizers hold, then complete, nothing orphaned). Every test
//! ends with the leak check.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::leaks::{assert_no_leaks, tagged_in_namespace};
use common::operator::{Operator, Options, aws_clients};
use common::ready::Ready;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use rolecall::api::{Ec2InstanceBinding, IamPolicy, IamRole, InstanceProfile};
use rolecall::aws::AwsClients;
use rolecall::faultproxy::{Fault, FaultProxy, LogEntry, Rule, Rules};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// An AMI moto ships.
const AMI: &str = "ami-03cf127a";
/// Operations that change AWS, by name prefix.
const WRITE_PREFIXES: &[&str] = &[
    "Create",
    "Delete",
    "Attach",
    "Detach",
    "Add",
    "Remove",
    "Put",
    "Tag",
    "Untag",
    "Update",
    "Set",
    "Associate",
    "Disassociate",
    "Replace",
];

fn is_write(operation: &str) -> bool {
    WRITE_PREFIXES
        .iter()
        .any(|prefix| operation.starts_with(prefix))
}

fn object<K: DeserializeOwned>(kind: &str, name: &str, spec: Value) -> K {
    serde_json::from_value(json!({
        "apiVersion": "iam.rolecall.dev/v1alpha1", "kind": kind, "metadata": { "name": name }, "spec": spec,
    }))
    .unwrap()
}

struct Env {
    client: Client,
    namespace: String,
    aws: AwsClients,
    proxy: FaultProxy,
    policies: Api<IamPolicy>,
    roles: Api<IamRole>,
    profiles: Api<InstanceProfile>,
    bindings: Api<Ec2InstanceBinding>,
}

async fn env(prefix: &str) -> Env {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, prefix).await;
    let proxy = FaultProxy::start(&common::aws_endpoint())
        .await
        .expect("the fault proxy starts");
    Env {
        policies: Api::namespaced(client.clone(), &namespace),
        roles: Api::namespaced(client.clone(), &namespace),
        profiles: Api::namespaced(client.clone(), &namespace),
        bindings: Api::namespaced(client.clone(), &namespace),
        aws: aws_clients().await,
        proxy,
        client,
        namespace,
    }
}

impl Env {
    async fn operator(&self, resync: Duration) -> Operator {
        Operator::start(
            &self.client,
            &self.namespace,
            Options {
                endpoint: Some(self.proxy.endpoint()),
                resync,
                // These tests count and slow down each object's own drift reads;
                // tests/bulk_drift.rs covers the account snapshot under faults.
                bulk_drift_checks: false,
                ..Options::default()
            },
        )
        .await
    }

    fn aws_name(&self, name: &str) -> String {
        format!("{}-{name}", self.namespace)
    }

    /// An IamPolicy `name` and an IamRole `name` using it.
    async fn create_pair(&self, name: &str) {
        let policy = object(
            "IamPolicy",
            name,
            json!({
                "name": self.aws_name(name),
                "document": { "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*" }] },
            }),
        );
        self.policies
            .create(&PostParams::default(), &policy)
            .await
            .unwrap();
        let role = object(
            "IamRole",
            name,
            json!({
                "name": self.aws_name(name), "trustedServices": ["ec2.amazonaws.com"],
                "policyRefs": [{ "name": name }],
            }),
        );
        self.roles
            .create(&PostParams::default(), &role)
            .await
            .unwrap();
    }

    /// An InstanceProfile `name` holding role `name`, and a binding of it to a new instance.
    async fn create_chain(&self, name: &str) -> String {
        let instance = run_instance(&self.aws, &self.namespace).await;
        let profile = object(
            "InstanceProfile",
            name,
            json!({ "name": self.aws_name(name), "roleRef": { "name": name } }),
        );
        self.profiles
            .create(&PostParams::default(), &profile)
            .await
            .unwrap();
        let binding = object(
            "Ec2InstanceBinding",
            name,
            json!({ "instanceProfileRef": { "name": name }, "instanceIds": [instance] }),
        );
        self.bindings
            .create(&PostParams::default(), &binding)
            .await
            .unwrap();
        instance
    }

    /// Waits until every object of every kind in the namespace is Ready.
    /// Waits until each of `expected` objects has been Ready at least once. Under random
    /// faults and a short resync a converged object's drift check can fail and flip it back to
    /// not Ready for a moment, so "all Ready in the same poll" is a matter of luck there.
    async fn wait_each_ready_once(&self, expected: usize, timeout: Duration) {
        let seen = std::sync::Mutex::new(std::collections::BTreeSet::new());
        common::wait_for(
            &format!(
                "each of the {expected} objects in {} Ready once",
                self.namespace
            ),
            timeout,
            || async {
                let states = self.ready_states().await;
                let mut seen = seen.lock().unwrap();
                seen.extend(
                    states
                        .into_iter()
                        .filter(|(_, state)| state.0 == "True")
                        .map(|(name, _)| name),
                );
                (seen.len() == expected).then_some(())
            },
        )
        .await;
    }

    async fn wait_all_ready(&self, expected: usize, timeout: Duration) {
        common::wait_for(
            &format!("all {expected} objects in {} Ready", self.namespace),
            timeout,
            || async {
                let states = self.ready_states().await;
                let ready = states.values().filter(|state| state.0 == "True").count();
                (states.len() == expected && ready == expected).then_some(())
            },
        )
        .await;
    }

    /// `Kind/name` → (Ready status, reason, message) for every object in the namespace.
    async fn ready_states(&self) -> BTreeMap<String, (String, String, String)> {
        let mut states = BTreeMap::new();
        collect(&self.policies, &mut states).await;
        collect(&self.roles, &mut states).await;
        collect(&self.profiles, &mut states).await;
        collect(&self.bindings, &mut states).await;
        states
    }

    async fn delete_all(&self) {
        let params = DeleteParams::default();
        let list = ListParams::default();
        for name in names(&self.bindings).await {
            self.bindings.delete(&name, &params).await.unwrap();
        }
        for name in names(&self.profiles).await {
            self.profiles.delete(&name, &params).await.unwrap();
        }
        for name in names(&self.roles).await {
            self.roles.delete(&name, &params).await.unwrap();
        }
        let _ = self
            .policies
            .delete_collection(&params, &list)
            .await
            .unwrap();
    }

    async fn count_objects(&self) -> usize {
        names(&self.policies).await.len()
            + names(&self.roles).await.len()
            + names(&self.profiles).await.len()
            + names(&self.bindings).await.len()
    }

    async fn wait_all_gone(&self, timeout: Duration) {
        common::wait_for(
            &format!("every object in {} deleted", self.namespace),
            timeout,
            || async { (self.count_objects().await == 0).then_some(()) },
        )
        .await;
    }

    async fn terminate(&self, instances: &[String]) {
        if !instances.is_empty() {
            self.aws
                .ec2
                .terminate_instances()
                .set_instance_ids(Some(instances.to_vec()))
                .send()
                .await
                .unwrap();
        }
    }
}

async fn names<K>(api: &Api<K>) -> Vec<String>
where
    K: Clone + DeserializeOwned + std::fmt::Debug + Resource,
{
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|object| object.name_any())
        .collect()
}

async fn collect<K>(api: &Api<K>, states: &mut BTreeMap<String, (String, String, String)>)
where
    K: Clone + DeserializeOwned + std::fmt::Debug + Resource<DynamicType = ()> + Ready,
{
    for object in api.list(&ListParams::default()).await.unwrap().items {
        let state = object.ready().unwrap_or_default();
        states.insert(format!("{}/{}", K::kind(&()), object.name_any()), state);
    }
}

async fn run_instance(aws: &AwsClients, namespace: &str) -> String {
    let tags = aws_sdk_ec2::types::TagSpecification::builder()
        .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("rolecall-test")
                .value(namespace)
                .build(),
        )
        .build();
    let output = aws
        .ec2
        .run_instances()
        .image_id(AMI)
        .min_count(1)
        .max_count(1)
        .tag_specifications(tags)
        .send()
        .await
        .unwrap();
    output.instances()[0].instance_id().unwrap().to_owned()
}

/// Association records (associating or associated) per instance.
async fn associations_of(aws: &AwsClients, instance: &str) -> usize {
    aws.ec2
        .describe_iam_instance_profile_associations()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("instance-id")
                .values(instance)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .iam_instance_profile_associations()
        .iter()
        .filter(|a| {
            a.state()
                .is_some_and(|s| matches!(s.as_str(), "associated" | "associating"))
        })
        .count()
}

/// Create* calls the upstream carried out, per (operation, name): more than one for a name
/// would be a duplicate creation.
fn successful_creates(log: &[LogEntry]) -> BTreeMap<(String, String), usize> {
    let mut creates = BTreeMap::new();
    for entry in log
        .iter()
        .filter(|e| e.operation.starts_with("Create") && e.succeeded_upstream())
    {
        let name = entry
            .names
            .get("PolicyName")
            .or(entry.names.get("RoleName"))
            .or(entry.names.get("InstanceProfileName"))
            .or(entry.names.get("PolicyArn"))
            .cloned()
            .unwrap_or_default();
        *creates.entry((entry.operation.clone(), name)).or_default() += 1;
    }
    creates
}

#[tokio::test(flavor = "multi_thread")]
async fn mixed_faults_converge_without_duplicates_or_writes_on_resync() {
    let env = env("faults-mixed").await;
    env.proxy.set_rules(
        Rules::new(vec![
            Rule::new(
                &["Create*", "Attach*", "Add*", "Associate*"],
                Fault::FailAfterForward,
            )
            .rate(0.3),
            Rule::new(&["*"], Fault::Throttle).rate(0.1),
            Rule::new(&["*"], Fault::InternalError).rate(0.1),
            Rule::new(&["*"], Fault::Drop).rate(0.05),
            Rule::new(&["*"], Fault::Latency { ms: 50 }).rate(0.2),
        ])
        .seeded(6),
    );
    let operator = env.operator(Duration::from_secs(3)).await;
    const PAIRS: usize = 20;
    const CHAINS: usize = 3;
    let started = Instant::now();
    for index in 0..PAIRS {
        env.create_pair(&format!("app{index}")).await;
    }
    let mut instances = Vec::new();
    for index in 0..CHAINS {
        instances.push(env.create_chain(&format!("app{index}")).await);
    }
    let objects = 2 * PAIRS + 2 * CHAINS;
    env.wait_each_ready_once(objects, Duration::from_secs(240))
        .await;
    let converged_after = started.elapsed();
    env.proxy.clear();
    // Without faults, every object is Ready at the same time within a few resyncs.
    env.wait_all_ready(objects, Duration::from_secs(60)).await;

    let log = env.proxy.log();
    let applied: BTreeMap<&str, usize> =
        log.iter()
            .filter_map(|e| e.fault)
            .fold(BTreeMap::new(), |mut counts, fault| {
                *counts.entry(fault).or_default() += 1;
                counts
            });
    eprintln!(
        "{objects} objects Ready after {converged_after:?} through {} requests; faults applied: {applied:?}",
        log.len()
    );
    for fault in [
        "fail_after_forward",
        "throttle",
        "internal_error",
        "drop",
        "latency",
    ] {
        assert!(
            applied.contains_key(fault),
            "no {fault} injected: {applied:?}"
        );
    }

    // Exactly one AWS object per Kubernetes object, one policy version each, one association
    // per instance, and no name created twice.
    let tagged = tagged_in_namespace(&env.aws, &env.namespace).await;
    let per_kind = |kind: &str| tagged.iter().filter(|t| t.kind == kind).count();
    assert_eq!(
        (
            per_kind("IamPolicy"),
            per_kind("IamRole"),
            per_kind("InstanceProfile")
        ),
        (PAIRS, PAIRS, CHAINS),
        "{tagged:#?}"
    );
    for policy in tagged.iter().filter(|t| t.kind == "IamPolicy") {
        let versions = env
            .aws
            .iam
            .list_policy_versions()
            .policy_arn(&policy.arn)
            .send()
            .await
            .unwrap();
        assert_eq!(versions.versions().len(), 1, "{}", policy.arn);
    }
    for instance in &instances {
        assert_eq!(associations_of(&env.aws, instance).await, 1, "{instance}");
    }
    let duplicates: Vec<_> = successful_creates(&log)
        .into_iter()
        .filter(|(_, count)| *count > 1)
        .collect();
    assert!(duplicates.is_empty(), "created twice: {duplicates:?}");
    assert_no_leaks(&env.client, &env.aws, &env.namespace).await;

    // Converged objects resync (every 3 s) without a single write.
    let writes_before = operator.writes();
    let mark = env.proxy.log().len();
    common::wait_for(
        "every policy, role and profile read again on resync",
        Duration::from_secs(60),
        || async {
            let seen: Vec<LogEntry> = env.proxy.log().split_off(mark);
            let read = |operation: &str, key: &str, name: &str| {
                seen.iter().any(|e| {
                    e.operation == operation && e.names.get(key).is_some_and(|v| v.ends_with(name))
                })
            };
            (0..PAIRS)
                .all(|i| {
                    let name = env.aws_name(&format!("app{i}"));
                    read("GetPolicy", "PolicyArn", &format!("/{name}"))
                        && read("GetRole", "RoleName", &name)
                        && (i >= CHAINS || read("GetInstanceProfile", "InstanceProfileName", &name))
                })
                .then_some(())
        },
    )
    .await;
    let after: Vec<LogEntry> = env.proxy.log().split_off(mark);
    let writes: Vec<&str> = after
        .iter()
        .filter(|e| is_write(&e.operation))
        .map(|e| e.operation.as_str())
        .collect();
    assert!(writes.is_empty(), "writes on resync: {writes:?}");
    assert_eq!(operator.writes(), writes_before);
    assert!(
        env.ready_states().await.values().all(|s| s.0 == "True"),
        "still Ready"
    );

    env.delete_all().await;
    env.wait_all_gone(Duration::from_secs(120)).await;
    assert_no_leaks(&env.client, &env.aws, &env.namespace).await;
    assert!(
        tagged_in_namespace(&env.aws, &env.namespace)
            .await
            .is_empty()
    );
    for instance in &instances {
        assert_eq!(associations_of(&env.aws, instance).await, 0, "{instance}");
    }
    operator.stop().await;
    env.terminate(&instances).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_minute_without_aws_is_reported_and_nothing_is_lost() {
    let env = env("faults-outage").await;
    let operator = env.operator(Duration::from_secs(5)).await;
    env.create_pair("before").await;
    env.wait_all_ready(2, Duration::from_secs(60)).await;
    let before = env.policies.get("before").await.unwrap();
    let arn = before.status.as_ref().unwrap().arn.clone().unwrap();

    let outage = Duration::from_secs(60);
    env.proxy.set_rules(Rules::new(vec![
        Rule::new(&[], Fault::Outage).for_duration(outage),
    ]));
    let outage_started = Instant::now();
    env.create_pair("during").await;
    // The new objects, and the converged ones at their next resync, say AWS cannot be reached.
    let states = common::wait_for(
        "every object to report AWS unreachable",
        Duration::from_secs(50),
        || async {
            let states = env.ready_states().await;
            // A role may instead wait for its policy, which reports the outage itself.
            let reported = |(object, (status, reason, _)): (&String, &(String, String, String))| {
                status == "False"
                    && (reason == "Reconciling"
                        || (object.starts_with("IamRole/") && reason == "DependencyNotReady"))
            };
            (states.len() == 4 && states.iter().all(reported)).then_some(states)
        },
    )
    .await;
    assert!(
        outage_started.elapsed() < outage,
        "reported within the outage"
    );
    for (object, (_, reason, message)) in &states {
        if reason == "DependencyNotReady" {
            continue;
        }
        assert!(
            message.starts_with("retrying after ") && message.contains(": dispatch failure"),
            "{object}: {message}"
        );
    }
    // Status is kept: the converged policy still names its ARN.
    let kept = env.policies.get("before").await.unwrap();
    assert_eq!(kept.status.as_ref().unwrap().arn.as_deref(), Some(&*arn));
    assert!(env.proxy.log().iter().any(|e| e.fault == Some("outage")));

    env.wait_all_ready(4, outage + Duration::from_secs(150))
        .await;
    eprintln!(
        "converged {:?} after the outage ended",
        outage_started.elapsed().saturating_sub(outage)
    );
    assert!(
        outage_started.elapsed() >= outage,
        "not before the outage ended"
    );
    let after = env.policies.get("before").await.unwrap();
    assert_eq!(after.status.as_ref().unwrap().arn.as_deref(), Some(&*arn));
    assert_no_leaks(&env.client, &env.aws, &env.namespace).await;
    assert_eq!(tagged_in_namespace(&env.aws, &env.namespace).await.len(), 4);

    env.delete_all().await;
    env.wait_all_gone(Duration::from_secs(60)).await;
    assert_no_leaks(&env.client, &env.aws, &env.namespace).await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deletions_wait_for_aws_to_recover_and_orphan_nothing() {
    let env = env("faults-delete").await;
    let operator = env.operator(Duration::from_secs(3600)).await;
    env.create_pair("web").await;
    let instance = env.create_chain("web").await;
    env.wait_all_ready(4, Duration::from_secs(90)).await;
    assert_no_leaks(&env.client, &env.aws, &env.namespace).await;

    env.proxy.set_rules(Rules::new(vec![Rule::new(
        &["Delete*", "Detach*", "Remove*", "Disassociate*"],
        Fault::InternalError,
    )]));
    env.delete_all().await;
    // Every object is held by its finalizer and says why: the binding, which nothing refers to,
    // by AWS's failure; the others by in-use protection, naming what still refers to them.
    let held = common::wait_for(
        "every object held by its finalizer with a Deleting condition",
        Duration::from_secs(60),
        || async {
            let states = env.ready_states().await;
            (states.len() == 4 && states.values().all(|(_, reason, _)| reason == "Deleting"))
                .then_some(states)
        },
    )
    .await;
    let holder_of = |object: &str| match object {
        "IamPolicy/web" => Some("IamRole web"),
        "IamRole/web" => Some("InstanceProfile web"),
        "InstanceProfile/web" => Some("Ec2InstanceBinding web"),
        _ => None,
    };
    for (object, (status, _, message)) in &held {
        assert_eq!(status, "False", "{object}");
        match holder_of(object) {
            Some(holder) => assert!(
                message.starts_with("waiting for") && message.contains(holder),
                "{object}: {message}"
            ),
            None => assert!(
                message.starts_with("cannot delete yet")
                    && (message.contains("ServiceFailure") || message.contains("InternalError")),
                "{object}: {message}"
            ),
        }
    }
    let role = env.roles.get("web").await.unwrap();
    assert!(role.metadata.deletion_timestamp.is_some());
    assert!(
        role.finalizers()
            .iter()
            .any(|f| f == "iam.rolecall.dev/cleanup"),
        "{:?}",
        role.finalizers()
    );
    assert_eq!(associations_of(&env.aws, &instance).await, 1);
    assert_eq!(tagged_in_namespace(&env.aws, &env.namespace).await.len(), 3);

    env.proxy.clear();
    env.wait_all_gone(Duration::from_secs(180)).await;
    assert!(
        tagged_in_namespace(&env.aws, &env.namespace)
            .await
            .is_empty()
    );
    assert_eq!(associations_of(&env.aws, &instance).await, 0);
    assert_no_leaks(&env.client, &env.aws, &env.namespace).await;
    operator.stop().await;
    env.terminate(&[instance]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn new_objects_go_ahead_of_drift_checks_when_aws_is_saturated() {
    const CONVERGED: usize = 30;
    let env = env("faults-busy").await;
    let operator = env.operator(Duration::from_secs(1)).await;
    for index in 0..CONVERGED {
        env.create_pair(&format!("old{index}")).await;
    }
    env.wait_all_ready(2 * CONVERGED, Duration::from_secs(120))
        .await;

    // Slow reads and a 1 s resync: the drift checks alone need more turns than four reconciles
    // at a time can give, so a queue of converged objects never drains.
    env.proxy.set_rules(Rules::new(vec![Rule::new(
        &["Get*", "List*"],
        Fault::Latency { ms: 200 },
    )]));
    let queued_policies = || {
        let metrics = common::process::parse_metrics(&operator.ctx.telemetry.metrics.render(None));
        common::process::sum_matching(
            &metrics,
            "rolecall_reconciles_waiting",
            &["kind=\"IamPolicy\""],
        )
    };
    common::wait_for(
        "a queue of policy reconciles",
        Duration::from_secs(60),
        || async { (queued_policies() >= (CONVERGED / 2) as f64).then_some(()) },
    )
    .await;

    let applied_after = env.proxy.log().last().map_or(0, |entry| entry.seq);
    env.create_pair("new").await;
    let started = Instant::now();
    env.wait_all_ready(2 * CONVERGED + 2, Duration::from_secs(60))
        .await;
    eprintln!(
        "new pair Ready in {:?} with {} policy reconciles queued",
        started.elapsed(),
        queued_policies()
    );

    // Between the apply and the new policy's CreatePolicy, only the drift checks already
    // running (four at most, plus any that took a free turn before the watch event arrived)
    // may have read AWS; first come, first served would have let the whole queue go first.
    let new_name = env.aws_name("new");
    let mentions_new = |entry: &LogEntry| entry.names.values().any(|v| v.contains(&new_name));
    let log = env.proxy.log();
    let created = log
        .iter()
        .find(|entry| entry.operation == "CreatePolicy" && mentions_new(entry))
        .expect("the new policy was created")
        .seq;
    let checked_first: std::collections::BTreeSet<&String> = log
        .iter()
        .filter(|entry| entry.seq > applied_after && entry.seq < created)
        .filter(|entry| entry.operation == "GetPolicy" && !mentions_new(entry))
        .flat_map(|entry| entry.names.values())
        .collect();
    assert!(
        checked_first.len() < CONVERGED / 2,
        "{} converged policies were checked before the new one was created: {checked_first:?}",
        checked_first.len()
    );

    env.proxy.clear();
    assert_no_leaks(&env.client, &env.aws, &env.namespace).await;
    env.delete_all().await;
    env.wait_all_gone(Duration::from_secs(120)).await;
    assert_no_leaks(&env.client, &env.aws, &env.namespace).await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_aws_call_times_out_and_is_reported_instead_of_holding_the_reconcile() {
    let env = env("faults-hung").await;
    // Every IAM read hangs for ten minutes: far past the timeouts below.
    env.proxy.set_rules(Rules::new(vec![Rule::new(
        &["Get*"],
        Fault::Latency { ms: 600_000 },
    )]));
    let operator = Operator::start(
        &env.client,
        &env.namespace,
        Options {
            endpoint: Some(env.proxy.endpoint()),
            aws_timeouts: Some((Duration::from_secs(1), Duration::from_secs(3))),
            ..Options::default()
        },
    )
    .await;
    env.create_pair("web").await;
    // Other transient reasons may come first (a finalizer patch against a cache a moment old):
    // wait for the hung call's own report.
    let message = common::wait_for(
        "the hung call reported",
        Duration::from_secs(60),
        || async {
            let (_, reason, message) = env.policies.get("web").await.ok()?.ready()?;
            (reason == "Reconciling" && message.contains("GetPolicy")).then_some(message)
        },
    )
    .await;
    assert!(message.contains("timeout"), "{message}");

    env.proxy.clear();
    env.wait_all_ready(2, Duration::from_secs(90)).await;
    operator.stop().await;
}
