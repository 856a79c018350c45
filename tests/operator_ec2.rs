//! InstanceProfile and Ec2InstanceBinding reconcilers against the real API server and moto:
//! the chain role → profile → binding, a role swap, newly launched instances, two bindings
//! claiming one instance, and deletion policies.

mod common;

use std::time::Duration;

use common::ec2::{associated_profile, external_profile, object, run_instance};
use common::operator::{Operator, Options, aws_clients};
use common::ready::{Ready, wait_reason};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use rolecall::api::{Ec2InstanceBinding, IamRole, InstanceProfile};
use rolecall::aws::AwsClients;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

struct Env {
    client: Client,
    namespace: String,
    aws: AwsClients,
}

async fn env(prefix: &str) -> Env {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, prefix).await;
    Env {
        aws: aws_clients().await,
        client,
        namespace,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chain_binds_selected_instances_and_picks_up_new_ones() {
    let env = env("chain").await;
    let operator = Operator::start(
        &env.client,
        &env.namespace,
        Options {
            resync: Duration::from_secs(2),
            ..Options::default()
        },
    )
    .await;
    let roles: Api<IamRole> = Api::namespaced(env.client.clone(), &env.namespace);
    let profiles: Api<InstanceProfile> = Api::namespaced(env.client.clone(), &env.namespace);
    let bindings: Api<Ec2InstanceBinding> = Api::namespaced(env.client.clone(), &env.namespace);
    let app = env.namespace.clone();
    let first = run_instance(&env.aws, &[("app", &app)]).await;
    let second = run_instance(&env.aws, &[("app", &app)]).await;
    let outsider = run_instance(&env.aws, &[("app", "other")]).await;

    // Applied in reverse dependency order: each waits for the one it references.
    bindings
        .create(&PostParams::default(), &object("Ec2InstanceBinding", "web", json!({
            "instanceProfileRef": { "name": "web" }, "instanceSelector": { "matchTags": { "app": app } },
        })))
        .await
        .unwrap();
    profiles
        .create(
            &PostParams::default(),
            &object(
                "InstanceProfile",
                "web",
                json!({ "name": format!("{app}-web"), "roleRef": { "name": "web" } }),
            ),
        )
        .await
        .unwrap();
    roles
        .create(
            &PostParams::default(),
            &object(
                "IamRole",
                "web",
                json!({ "name": format!("{app}-web"), "trustedServices": ["ec2.amazonaws.com"] }),
            ),
        )
        .await
        .unwrap();

    let profile = wait_reason(&profiles, "web", "Available").await;
    let profile_arn = profile.status.clone().unwrap().arn.unwrap();
    assert_eq!(
        profile.status.unwrap().role_name.as_deref(),
        Some(format!("{app}-web").as_str())
    );
    let binding = wait_reason(&bindings, "web", "Available").await;
    let status = binding.status.unwrap();
    assert_eq!((status.matched, status.bound), (2, 2));
    assert_eq!(
        associated_profile(&env.aws, &first).await.as_deref(),
        Some(profile_arn.as_str())
    );
    assert_eq!(
        associated_profile(&env.aws, &second).await.as_deref(),
        Some(profile_arn.as_str())
    );
    assert_eq!(associated_profile(&env.aws, &outsider).await, None);

    // Terminated instances are ignored; a newly launched match is bound on resync.
    env.aws
        .ec2
        .terminate_instances()
        .instance_ids(&second)
        .send()
        .await
        .unwrap();
    let third = run_instance(&env.aws, &[("app", &app)]).await;
    common::wait_for("the new instance bound", WAIT, || async {
        let status = bindings.get("web").await.ok()?.status?;
        let ids: Vec<&str> = status
            .instances
            .iter()
            .map(|i| i.instance_id.as_str())
            .collect();
        (ids.contains(&third.as_str()) && !ids.contains(&second.as_str()) && status.bound == 2)
            .then_some(())
    })
    .await;
    assert_eq!(
        associated_profile(&env.aws, &third).await.as_deref(),
        Some(profile_arn.as_str())
    );
    common::leaks::assert_no_leaks(&env.client, &env.aws, &env.namespace).await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_profile_swaps_its_role_when_the_reference_changes() {
    let env = env("swap").await;
    let operator = Operator::start(&env.client, &env.namespace, Options::default()).await;
    let roles: Api<IamRole> = Api::namespaced(env.client.clone(), &env.namespace);
    let profiles: Api<InstanceProfile> = Api::namespaced(env.client.clone(), &env.namespace);
    for name in ["old", "new"] {
        roles
            .create(&PostParams::default(), &object("IamRole", name, json!({ "name": format!("{}-{name}", env.namespace), "trustedServices": ["ec2.amazonaws.com"] })))
            .await
            .unwrap();
    }
    let profile_name = format!("{}-p", env.namespace);
    profiles
        .create(
            &PostParams::default(),
            &object(
                "InstanceProfile",
                "p",
                json!({ "name": profile_name, "roleRef": { "name": "old" } }),
            ),
        )
        .await
        .unwrap();
    wait_reason(&profiles, "p", "Available").await;
    profiles
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": { "roleRef": { "name": "new" } } })),
        )
        .await
        .unwrap();
    let swapped = wait_reason(&profiles, "p", "Available").await;
    let expected = format!("{}-new", env.namespace);
    assert_eq!(
        swapped.status.unwrap().role_name.as_deref(),
        Some(expected.as_str())
    );
    let in_moto = env
        .aws
        .iam
        .get_instance_profile()
        .instance_profile_name(&profile_name)
        .send()
        .await
        .unwrap();
    let held: Vec<&str> = in_moto
        .instance_profile()
        .unwrap()
        .roles()
        .iter()
        .map(|r| r.role_name())
        .collect();
    assert_eq!(held, [expected.as_str()]);

    profiles
        .delete("p", &DeleteParams::default())
        .await
        .unwrap();
    common::wait_for("profile deleted", WAIT, || async {
        profiles.get_opt("p").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(
        env.aws
            .iam
            .get_instance_profile()
            .instance_profile_name(&profile_name)
            .send()
            .await
            .is_err()
    );
    common::leaks::assert_no_leaks(&env.client, &env.aws, &env.namespace).await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_bindings_claiming_one_instance_both_report_conflict_and_nothing_flips() {
    let env = env("claim").await;
    let operator = Operator::start(
        &env.client,
        &env.namespace,
        Options {
            resync: Duration::from_secs(2),
            ..Options::default()
        },
    )
    .await;
    let bindings: Api<Ec2InstanceBinding> = Api::namespaced(env.client.clone(), &env.namespace);
    let web_arn = external_profile(&env.aws, &format!("{}-web", env.namespace)).await;
    external_profile(&env.aws, &format!("{}-db", env.namespace)).await;
    let instance = run_instance(&env.aws, &[("app", &env.namespace)]).await;

    bindings
        .create(&PostParams::default(), &object("Ec2InstanceBinding", "web", json!({
            "instanceProfileName": format!("{}-web", env.namespace), "instanceIds": [instance],
        })))
        .await
        .unwrap();
    wait_reason(&bindings, "web", "Available").await;
    let writes = operator.writes();
    bindings
        .create(&PostParams::default(), &object("Ec2InstanceBinding", "db", json!({
            "instanceProfileName": format!("{}-db", env.namespace), "instanceSelector": { "matchTags": { "app": env.namespace } },
        })))
        .await
        .unwrap();
    let db = wait_reason(&bindings, "db", "Conflict").await;
    assert!(db.ready().unwrap().2.contains("/web"), "{:?}", db.ready());
    let web = wait_reason(&bindings, "web", "Conflict").await;
    assert!(web.ready().unwrap().2.contains("/db"), "{:?}", web.ready());

    // Several resyncs later the first association still stands and nobody wrote.
    let reads = operator.reads();
    common::wait_for("resyncs", WAIT, || async {
        (operator.reads() >= reads + 8).then_some(())
    })
    .await;
    assert_eq!(
        associated_profile(&env.aws, &instance).await.as_deref(),
        Some(web_arn.as_str())
    );
    assert_eq!(
        operator.writes(),
        writes,
        "{:?}",
        operator.ctx.calls.snapshot()
    );
    common::leaks::assert_no_leaks(&env.client, &env.aws, &env.namespace).await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_binding_disassociates_only_with_delete() {
    let env = env("unbind").await;
    let operator = Operator::start(&env.client, &env.namespace, Options::default()).await;
    let bindings: Api<Ec2InstanceBinding> = Api::namespaced(env.client.clone(), &env.namespace);
    let profile = format!("{}-p", env.namespace);
    let arn = external_profile(&env.aws, &profile).await;
    let dropped = run_instance(&env.aws, &[]).await;
    let kept = run_instance(&env.aws, &[]).await;
    for (name, instance, policy) in [("dropped", &dropped, "Delete"), ("kept", &kept, "Retain")] {
        bindings
            .create(&PostParams::default(), &object("Ec2InstanceBinding", name, json!({
                "instanceProfileName": profile, "instanceIds": [instance], "deletionPolicy": policy,
            })))
            .await
            .unwrap();
        wait_reason(&bindings, name, "Available").await;
        bindings
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
        common::wait_for("binding gone", WAIT, || async {
            bindings
                .get_opt(name)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        })
        .await;
    }
    assert_eq!(associated_profile(&env.aws, &dropped).await, None);
    assert_eq!(
        associated_profile(&env.aws, &kept).await.as_deref(),
        Some(arn.as_str())
    );
    common::leaks::assert_no_leaks(&env.client, &env.aws, &env.namespace).await;
    operator.stop().await;
}
