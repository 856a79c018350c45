//! In-use protection, against the real API server and moto: an object another rolecall object
//! still refers to keeps its AWS object until that holder is gone, whatever order a GitOps
//! tool prunes in, so nobody loses credentials before their own object is deleted.

mod common;

use std::time::Duration;

use common::ec2::{associated_profile, events_about, object, run_instance};
use common::operator::{Operator, Options, aws_clients};
use common::ready::{Ready, wait_reason};
use kube::Resource;
use kube::api::{Api, DeleteParams, PostParams};
use rolecall::api::{Ec2InstanceBinding, IamPolicy, IamRole, InstanceProfile};
use serde::de::DeserializeOwned;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

async fn gone<K>(api: &Api<K>, name: &str)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    common::wait_for(&format!("{name} gone"), WAIT, || async {
        api.get_opt(name).await.unwrap().is_none().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_a_role_refers_to_waits_for_the_role() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, "held-policy").await;
    let aws = aws_clients().await;
    let operator = Operator::start(&client, &namespace, Options::default()).await;
    let policies: Api<IamPolicy> = Api::namespaced(client.clone(), &namespace);
    let roles: Api<IamRole> = Api::namespaced(client.clone(), &namespace);
    let role_name = format!("{namespace}-web");
    policies
        .create(
            &PostParams::default(),
            &object(
                "IamPolicy",
                "reader",
                json!({
                    "name": format!("{namespace}-reader"),
                    "document": { "Version": "2012-10-17", "Statement": [
                        { "Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*" }] },
                }),
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
                json!({
                    "name": role_name, "trustedServices": ["ec2.amazonaws.com"],
                    "policyRefs": [{ "name": "reader" }],
                }),
            ),
        )
        .await
        .unwrap();
    let policy_arn = wait_reason(&policies, "reader", "Available")
        .await
        .status
        .unwrap()
        .arn
        .unwrap();
    wait_reason(&roles, "web", "Available").await;

    policies
        .delete("reader", &DeleteParams::default())
        .await
        .unwrap();
    let waiting = wait_reason(&policies, "reader", "Deleting").await;
    let message = waiting.ready().unwrap().2;
    assert!(message.contains("IamRole web"), "{message}");
    let attached = aws
        .iam
        .list_attached_role_policies()
        .role_name(&role_name)
        .send()
        .await
        .unwrap();
    let arns: Vec<&str> = attached
        .attached_policies()
        .iter()
        .filter_map(|policy| policy.policy_arn())
        .collect();
    assert_eq!(
        arns,
        [policy_arn.as_str()],
        "the role keeps its permissions meanwhile"
    );
    let announced = events_about(&client, &namespace, "reader")
        .await
        .into_iter()
        .filter(|event| event.reason.as_deref() == Some("Deleting"))
        .count();
    assert_eq!(announced, 1);

    roles.delete("web", &DeleteParams::default()).await.unwrap();
    gone(&roles, "web").await;
    gone(&policies, "reader").await;
    common::leaks::assert_no_leaks(&client, &aws, &namespace).await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bound_chain_keeps_its_credentials_until_the_binding_goes_whatever_the_prune_order() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, "held-chain").await;
    let aws = aws_clients().await;
    let operator = Operator::start(&client, &namespace, Options::default()).await;
    let roles: Api<IamRole> = Api::namespaced(client.clone(), &namespace);
    let profiles: Api<InstanceProfile> = Api::namespaced(client.clone(), &namespace);
    let bindings: Api<Ec2InstanceBinding> = Api::namespaced(client.clone(), &namespace);
    let name = format!("{namespace}-web");
    let instance = run_instance(&aws, &[]).await;
    roles
        .create(
            &PostParams::default(),
            &object(
                "IamRole",
                "web",
                json!({
                    "name": name, "trustedServices": ["ec2.amazonaws.com"],
                }),
            ),
        )
        .await
        .unwrap();
    profiles
        .create(
            &PostParams::default(),
            &object(
                "InstanceProfile",
                "web",
                json!({
                    "name": name, "roleRef": { "name": "web" },
                }),
            ),
        )
        .await
        .unwrap();
    bindings
        .create(
            &PostParams::default(),
            &object(
                "Ec2InstanceBinding",
                "web",
                json!({
                    "instanceProfileRef": { "name": "web" }, "instanceIds": [instance],
                }),
            ),
        )
        .await
        .unwrap();
    wait_reason(&bindings, "web", "Available").await;
    let profile_arn = profiles
        .get("web")
        .await
        .unwrap()
        .status
        .unwrap()
        .arn
        .unwrap();

    // Pruned from the top down: the role first, then the profile.
    roles.delete("web", &DeleteParams::default()).await.unwrap();
    let role = wait_reason(&roles, "web", "Deleting").await;
    assert!(
        role.ready().unwrap().2.contains("InstanceProfile web"),
        "{:?}",
        role.ready()
    );
    profiles
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    let profile = wait_reason(&profiles, "web", "Deleting").await;
    assert!(
        profile
            .ready()
            .unwrap()
            .2
            .contains("Ec2InstanceBinding web"),
        "{:?}",
        profile.ready()
    );
    let held = aws
        .iam
        .get_instance_profile()
        .instance_profile_name(&name)
        .send()
        .await
        .unwrap();
    let held_roles: Vec<&str> = held
        .instance_profile()
        .unwrap()
        .roles()
        .iter()
        .map(|role| role.role_name())
        .collect();
    assert_eq!(
        held_roles,
        [name.as_str()],
        "the profile still carries the role"
    );
    assert_eq!(
        associated_profile(&aws, &instance).await.as_deref(),
        Some(profile_arn.as_str()),
        "the instance keeps its credentials while its binding exists"
    );

    // The binding goes last; then everything follows on its own.
    bindings
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    gone(&bindings, "web").await;
    gone(&profiles, "web").await;
    gone(&roles, "web").await;
    assert_eq!(associated_profile(&aws, &instance).await, None);
    common::leaks::assert_no_leaks(&client, &aws, &namespace).await;
    operator.stop().await;
}
