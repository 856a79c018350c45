//! Which instances an Ec2InstanceBinding holds, against the real API server and moto:
//! instances that leave the spec lose the profile, an empty fleet is Ready and says so, long
//! id lists are described in chunks, conflicts are seen across watched namespaces, and
//! dry-run publishes no Event.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine;
use common::ec2::{AMI, associated_profile, events_about, external_profile, object, run_instance};
use common::operator::{Operator, Options, aws_clients};
use common::ready::{Ready, wait_reason};
use kube::api::{Api, Patch, PatchParams, PostParams};
use rolecall::api::Ec2InstanceBinding;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

fn fast_resync() -> Options {
    Options {
        resync: Duration::from_secs(2),
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_that_leave_the_spec_lose_the_profile() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, "leave").await;
    let aws = aws_clients().await;
    let operator = Operator::start(&client, &namespace, fast_resync()).await;
    let bindings: Api<Ec2InstanceBinding> = Api::namespaced(client.clone(), &namespace);
    let profile = format!("{namespace}-p");
    let arn = external_profile(&aws, &profile).await;
    let kept = run_instance(&aws, &[]).await;
    let dropped = run_instance(&aws, &[]).await;
    let tagged = run_instance(&aws, &[("team", &namespace)]).await;

    bindings
        .create(
            &PostParams::default(),
            &object(
                "Ec2InstanceBinding",
                "ids",
                json!({
                    "instanceProfileName": profile, "instanceIds": [kept, dropped],
                }),
            ),
        )
        .await
        .unwrap();
    bindings
        .create(&PostParams::default(), &object("Ec2InstanceBinding", "tags", json!({
            "instanceProfileName": profile, "instanceSelector": { "matchTags": { "team": namespace } },
        })))
        .await
        .unwrap();
    let ids = wait_reason(&bindings, "ids", "Available").await;
    assert_eq!(ids.status.unwrap().bound, 2);
    wait_reason(&bindings, "tags", "Available").await;
    assert_eq!(
        associated_profile(&aws, &tagged).await.as_deref(),
        Some(arn.as_str())
    );

    // An id removed from the spec.
    let patch = json!({ "spec": { "instanceIds": [kept] } });
    bindings
        .patch("ids", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    common::wait_for("the dropped instance to lose the profile", WAIT, || async {
        associated_profile(&aws, &dropped)
            .await
            .is_none()
            .then_some(())
    })
    .await;
    let ids = common::wait_for("status without the dropped instance", WAIT, || async {
        let status = bindings.get("ids").await.ok()?.status?;
        (status.instances.len() == 1).then_some(status)
    })
    .await;
    assert_eq!(ids.instances[0].instance_id, kept);
    assert_eq!(
        associated_profile(&aws, &kept).await.as_deref(),
        Some(arn.as_str())
    );

    // Tags that stop matching the selector (seen at the next resync).
    aws.ec2
        .delete_tags()
        .resources(&tagged)
        .tags(aws_sdk_ec2::types::Tag::builder().key("team").build())
        .send()
        .await
        .unwrap();
    common::wait_for(
        "the untagged instance to lose the profile",
        WAIT,
        || async {
            associated_profile(&aws, &tagged)
                .await
                .is_none()
                .then_some(())
        },
    )
    .await;
    let tags = wait_reason(&bindings, "tags", "NoInstances").await;
    assert!(tags.status.unwrap().instances.is_empty());
    common::leaks::assert_no_leaks(&client, &aws, &namespace).await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_fleet_is_ready_and_says_so_once() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, "empty").await;
    let aws = aws_clients().await;
    let operator = Operator::start(&client, &namespace, fast_resync()).await;
    let bindings: Api<Ec2InstanceBinding> = Api::namespaced(client.clone(), &namespace);
    let profile = format!("{namespace}-p");
    external_profile(&aws, &profile).await;
    bindings
        .create(&PostParams::default(), &object("Ec2InstanceBinding", "none", json!({
            "instanceProfileName": profile, "instanceSelector": { "matchTags": { "team": namespace } },
        })))
        .await
        .unwrap();
    let binding = wait_reason(&bindings, "none", "NoInstances").await;
    let (status, _, message) = binding.ready().unwrap();
    assert_eq!(status, "True", "an empty fleet is a valid, Ready state");
    assert!(message.contains("no live instance matches"), "{message}");

    // Several resyncs later, still one Event.
    let reads = operator.reads();
    common::wait_for("resyncs", WAIT, || async {
        (operator.reads() >= reads + 6).then_some(())
    })
    .await;
    let events: Vec<_> = events_about(&client, &namespace, "none")
        .await
        .into_iter()
        .filter(|event| event.reason.as_deref() == Some("NoInstances"))
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].type_.as_deref(), Some("Normal"));
    assert!(
        events[0].series.is_none(),
        "repeated: {:?}",
        events[0].series
    );
    operator.stop().await;
}

/// The instance ids named in one recorded DescribeInstances request, among `ours`.
fn ids_in_describe_requests(ours: &BTreeSet<String>) -> Vec<BTreeSet<String>> {
    let path = std::env::var("ROLECALL_TEST_MOTO_RECORDING")
        .expect("ROLECALL_TEST_MOTO_RECORDING (set by `scripts/moto.sh env`)");
    let text = std::fs::read_to_string(&path).expect("moto's recording");
    let engine = base64::engine::general_purpose::STANDARD;
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|request| {
            let body = request["body"].as_str()?;
            let body = if request["body_encoded"].as_bool() == Some(true) {
                String::from_utf8(engine.decode(body).ok()?).ok()?
            } else {
                body.to_owned()
            };
            body.contains("Action=DescribeInstances&").then_some(body)
        })
        .map(|body| {
            body.split('&')
                .filter_map(|pair| pair.split_once('=').map(|(_, value)| value.to_owned()))
                .filter(|value| ours.contains(value))
                .collect::<BTreeSet<String>>()
        })
        .filter(|ids| !ids.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_instance_list_is_described_a_hundred_ids_at_a_time() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, "many").await;
    let aws = aws_clients().await;
    let operator = Operator::start(&client, &namespace, Options::default()).await;
    let bindings: Api<Ec2InstanceBinding> = Api::namespaced(client.clone(), &namespace);
    let profile = format!("{namespace}-p");
    external_profile(&aws, &profile).await;
    let launched = aws
        .ec2
        .run_instances()
        .image_id(AMI)
        .min_count(150)
        .max_count(150)
        .send()
        .await
        .unwrap();
    let ids: BTreeSet<String> = launched
        .instances()
        .iter()
        .filter_map(|instance| instance.instance_id().map(str::to_owned))
        .collect();
    assert_eq!(ids.len(), 150);
    bindings
        .create(
            &PostParams::default(),
            &object(
                "Ec2InstanceBinding",
                "fleet",
                json!({
                    "instanceProfileName": profile, "instanceIds": ids,
                }),
            ),
        )
        .await
        .unwrap();
    let fleet = wait_reason(&bindings, "fleet", "Available").await;
    assert_eq!(fleet.status.unwrap().bound, 150);

    let requests = ids_in_describe_requests(&ids);
    let covered: BTreeSet<String> = requests.iter().flatten().cloned().collect();
    assert_eq!(covered, ids, "every id was described");
    let largest = requests.iter().map(BTreeSet::len).max().unwrap();
    assert!(
        largest <= 100,
        "one DescribeInstances named {largest} instance ids"
    );
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bindings_in_two_watched_namespaces_report_the_conflict_and_nothing_flips() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let first = common::fresh_namespace(&client, "scope-a").await;
    let second = common::fresh_namespace(&client, "scope-b").await;
    let aws = aws_clients().await;
    // As `--watch-namespaces a,b`: one watch per namespace, one operator.
    let operator = Operator::start(
        &client,
        &first,
        Options {
            also_watch: vec![second.clone()],
            ..fast_resync()
        },
    )
    .await;
    let web_arn = external_profile(&aws, &format!("{first}-web")).await;
    external_profile(&aws, &format!("{second}-db")).await;
    let instance = run_instance(&aws, &[("app", &first)]).await;
    let in_first: Api<Ec2InstanceBinding> = Api::namespaced(client.clone(), &first);
    let in_second: Api<Ec2InstanceBinding> = Api::namespaced(client.clone(), &second);

    in_first
        .create(
            &PostParams::default(),
            &object(
                "Ec2InstanceBinding",
                "web",
                json!({
                    "instanceProfileName": format!("{first}-web"), "instanceIds": [instance],
                }),
            ),
        )
        .await
        .unwrap();
    wait_reason(&in_first, "web", "Available").await;
    let writes = operator.writes();
    in_second
        .create(&PostParams::default(), &object("Ec2InstanceBinding", "db", json!({
            "instanceProfileName": format!("{second}-db"), "instanceSelector": { "matchTags": { "app": first } },
        })))
        .await
        .unwrap();
    let db = wait_reason(&in_second, "db", "Conflict").await;
    assert!(
        db.ready().unwrap().2.contains(&format!("{first}/web")),
        "{:?}",
        db.ready()
    );
    let web = wait_reason(&in_first, "web", "Conflict").await;
    assert!(
        web.ready().unwrap().2.contains(&format!("{second}/db")),
        "{:?}",
        web.ready()
    );

    // Several resyncs later the first association still stands and nobody wrote.
    let reads = operator.reads();
    common::wait_for("resyncs", WAIT, || async {
        (operator.reads() >= reads + 8).then_some(())
    })
    .await;
    assert_eq!(
        associated_profile(&aws, &instance).await.as_deref(),
        Some(web_arn.as_str())
    );
    assert_eq!(
        operator.writes(),
        writes,
        "{:?}",
        operator.ctx.calls.snapshot()
    );
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_publishes_no_event() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, "dry-events").await;
    let aws = aws_clients().await;
    let operator = Operator::start(
        &client,
        &namespace,
        Options {
            dry_run: true,
            ..fast_resync()
        },
    )
    .await;
    let bindings: Api<Ec2InstanceBinding> = Api::namespaced(client.clone(), &namespace);
    external_profile(&aws, &format!("{namespace}-web")).await;
    external_profile(&aws, &format!("{namespace}-db")).await;
    let instance = run_instance(&aws, &[]).await;
    // Two bindings claiming one instance for different profiles: a Conflict, which outside
    // dry-run is announced with an Event.
    for name in ["web", "db"] {
        bindings
            .create(&PostParams::default(), &object("Ec2InstanceBinding", name, json!({
                "instanceProfileName": format!("{namespace}-{name}"), "instanceIds": [instance],
            })))
            .await
            .unwrap();
    }
    common::wait_for("several dry-run reconciles of both", WAIT, || async {
        (operator.reconciles("Ec2InstanceBinding", "success") >= 6).then_some(())
    })
    .await;
    for name in ["web", "db"] {
        let events = events_about(&client, &namespace, name).await;
        assert!(events.is_empty(), "dry-run published Events: {events:?}");
    }
    assert_eq!(operator.writes(), 0);
    assert_eq!(associated_profile(&aws, &instance).await, None);
    operator.stop().await;
}
