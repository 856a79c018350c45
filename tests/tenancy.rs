//! Tenancy against the real API server and moto: every takeover path a tenant could try is
//! refused with `Forbidden`, a message naming the Tenancy (or the defaults) and the rule, and
//! no AWS write; and a Tenancy that allows it makes it work. The namespaces here carry no
//! `rolecall.dev/test` label, so the permissive test Tenancy does not cover them.

mod common;

use std::time::Duration;

use common::ec2::{associated_profile, external_profile, object, run_instance};
use common::operator::{Operator, Options, aws_clients};
use common::ready::{Ready, wait_reason};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use rolecall::api::{Ec2InstanceBinding, IamPolicy, IamRole, InstanceProfile};
use rolecall::aws::AwsClients;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const EC2_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

struct Tenant {
    client: Client,
    aws: AwsClients,
    namespace: String,
    operator: Operator,
}

/// A namespace no Tenancy selects yet, and an operator watching it.
async fn tenant(prefix: &str) -> Tenant {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let object: Namespace = serde_json::from_value(json!({ "metadata": { "name": namespace } }))
        .expect("a valid Namespace");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &object)
        .await
        .expect("creating the namespace");
    let operator = Operator::start(&client, &namespace, Options::default()).await;
    Tenant {
        aws: aws_clients().await,
        client,
        namespace,
        operator,
    }
}

static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Tenant {
    fn api<K>(&self) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn create<K>(&self, kind: &str, name: &str, spec: Value) -> K
    where
        K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        self.api::<K>()
            .create(&PostParams::default(), &object(kind, name, spec))
            .await
            .unwrap_or_else(|e| panic!("creating {kind} {name}: {e}"))
    }

    /// The platform team's Tenancy for this namespace alone (server-side apply: a second
    /// call replaces the rules).
    async fn set_tenancy(&self, rules: Value) {
        let mut spec = rules;
        spec["namespaceSelector"] =
            json!({ "matchLabels": { "kubernetes.io/metadata.name": self.namespace } });
        apply_tenancy(&self.client, &self.namespace, spec).await;
    }

    fn name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.namespace)
    }
}

async fn apply_tenancy(client: &Client, name: &str, spec: Value) {
    let api: Api<kube::api::DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::erase::<rolecall::api::Tenancy>(&()),
    );
    let tenancy = json!({
        "apiVersion": "iam.rolecall.dev/v1alpha1", "kind": "Tenancy",
        "metadata": { "name": name }, "spec": spec,
    });
    api.patch(
        name,
        &PatchParams::apply("rolecall-tenancy-test").force(),
        &Patch::Apply(&tenancy),
    )
    .await
    .unwrap_or_else(|e| panic!("applying Tenancy {name}: {e}"));
}

/// Waits until the object is `Forbidden` by `source` under `rule` (an earlier refusal, by
/// other rules, may still be showing), and returns the message.
async fn forbidden<K>(api: &Api<K>, name: &str, source: &str, rule: &str) -> String
where
    K: Clone + DeserializeOwned + std::fmt::Debug + Ready,
{
    let marker = format!("(rule {rule})");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let ready = api.get(name).await.ok().and_then(|object| object.ready());
        if let Some((status, reason, message)) = &ready
            && reason == "Forbidden"
            && message.contains(source)
            && message.contains(&marker)
        {
            assert_eq!(status, "False");
            return message.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} not Forbidden by {source} {marker} within {WAIT:?}: last {ready:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn role_tags(aws: &AwsClients, name: &str) -> Vec<(String, String)> {
    let role = aws.iam.get_role().role_name(name).send().await.unwrap();
    role.role()
        .unwrap()
        .tags()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn defaults_put_everything_on_the_namespace_path_and_trust_only_services_and_this_account() {
    let t = tenant("tenancy-defaults").await;
    let policy: IamPolicy = t
        .create(
            "IamPolicy",
            "reader",
            json!({ "name": t.name("reader"), "document": { "Version": "2012-10-17", "Statement": [
                { "Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*" }] } }),
        )
        .await;
    t.create::<IamRole>(
        "IamRole",
        "app",
        json!({ "name": t.name("app"), "trustedServices": ["ec2.amazonaws.com"], "policyRefs": [{ "name": "reader" }] }),
    )
    .await;
    let policies = t.api::<IamPolicy>();
    let ready = wait_reason(&policies, &policy.metadata.name.unwrap(), "Available").await;
    let arn = ready.status.unwrap().arn.unwrap();
    assert!(
        arn.ends_with(&format!(
            ":policy/rolecall/{}/{}",
            t.namespace,
            t.name("reader")
        )),
        "{arn}"
    );
    let role = wait_reason(&t.api::<IamRole>(), "app", "Available").await;
    let role_arn = role.status.unwrap().arn.unwrap();
    assert!(
        role_arn.ends_with(&format!(":role/rolecall/{}/{}", t.namespace, t.name("app"))),
        "{role_arn}"
    );

    // Another account, or anyone, may not be trusted; nothing is written for either.
    let writes = t.operator.writes();
    t.create::<IamRole>(
        "IamRole",
        "foreign",
        json!({ "name": t.name("foreign"), "assumeRolePolicy": { "Version": "2012-10-17", "Statement": [
            { "Effect": "Allow", "Principal": { "AWS": "arn:aws:iam::210987654321:root" }, "Action": "sts:AssumeRole" }] } }),
    )
    .await;
    forbidden(
        &t.api::<IamRole>(),
        "foreign",
        "the default rules",
        "trust.accounts",
    )
    .await;
    t.create::<IamRole>(
        "IamRole",
        "anyone",
        json!({ "name": t.name("anyone"), "assumeRolePolicy": { "Version": "2012-10-17", "Statement": [
            { "Effect": "Allow", "Principal": { "AWS": ["123456789012", "*"] }, "Action": "sts:AssumeRole" }] } }),
    )
    .await;
    let message = forbidden(&t.api::<IamRole>(), "anyone", "the default rules", "trust").await;
    assert!(message.contains("anyone"), "{message}");
    assert_eq!(t.operator.writes(), writes, "a refused role wrote to AWS");
    for name in ["foreign", "anyone"] {
        let found = t.aws.iam.get_role().role_name(t.name(name)).send().await;
        assert!(found.is_err(), "role {name} exists in AWS");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn adopting_an_untagged_role_is_refused_unless_the_tenancy_lists_it() {
    let t = tenant("tenancy-adopt").await;
    let admin = t.name("admin");
    t.aws
        .iam
        .create_role()
        .role_name(&admin)
        .assume_role_policy_document(EC2_TRUST)
        .send()
        .await
        .unwrap();
    t.aws
        .iam
        .attach_role_policy()
        .role_name(&admin)
        .policy_arn("arn:aws:iam::aws:policy/AdministratorAccess")
        .send()
        .await
        .unwrap();
    let roles = t.api::<IamRole>();
    let mut role: IamRole = object(
        "IamRole",
        "takeover",
        json!({ "name": admin, "path": "/", "assumeRolePolicy": { "Version": "2012-10-17", "Statement": [
            { "Effect": "Allow", "Principal": { "AWS": "arn:aws:iam::123456789012:root" }, "Action": "sts:AssumeRole" }] } }),
    );
    role.metadata.annotations =
        Some([("rolecall.dev/adopt".to_string(), "true".to_string())].into());
    roles.create(&PostParams::default(), &role).await.unwrap();
    // The defaults put the namespace under /rolecall/<namespace>/: `path: /` is refused first.
    forbidden(&roles, "takeover", "the default rules", "path").await;
    // A Tenancy that allows the path but not adoption still refuses, after reading the role.
    t.set_tenancy(json!({ "path": "/" })).await;
    let message = forbidden(
        &roles,
        "takeover",
        &format!("Tenancy {}", t.namespace),
        "adopt",
    )
    .await;
    assert!(message.contains(&admin), "{message}");
    assert_eq!(t.operator.writes(), 0, "the refused adoption wrote to AWS");
    assert!(
        role_tags(&t.aws, &admin).await.is_empty(),
        "the role was tagged"
    );
    let attached = t
        .aws
        .iam
        .list_attached_role_policies()
        .role_name(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(
        attached.attached_policies().len(),
        1,
        "its policy was detached"
    );

    // Listed for adoption: rolecall takes it over and converges it.
    t.set_tenancy(json!({ "path": "/", "adopt": { "roles": [admin] } }))
        .await;
    wait_reason(&roles, "takeover", "Available").await;
    assert!(
        role_tags(&t.aws, &admin)
            .await
            .iter()
            .any(|(key, _)| key == "rolecall.dev/owner")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_profile_may_hold_only_roles_of_its_namespace_or_listed_ones() {
    let t = tenant("tenancy-roleref").await;
    let outside = t.name("outside");
    t.aws
        .iam
        .create_role()
        .role_name(&outside)
        .assume_role_policy_document(EC2_TRUST)
        .send()
        .await
        .unwrap();
    let profiles = t.api::<InstanceProfile>();
    t.create::<InstanceProfile>(
        "InstanceProfile",
        "wrap",
        json!({ "name": t.name("wrap"), "roleName": outside }),
    )
    .await;
    let message = forbidden(&profiles, "wrap", "the default rules", "references.roles").await;
    assert!(message.contains(&outside), "{message}");
    assert_eq!(t.operator.writes(), 0);
    let found = t
        .aws
        .iam
        .get_instance_profile()
        .instance_profile_name(t.name("wrap"))
        .send()
        .await;
    assert!(found.is_err(), "the refused profile was created");

    // A role managed in this namespace may be named, by its IAM name.
    t.create::<IamRole>(
        "IamRole",
        "own",
        json!({ "name": t.name("own"), "trustedServices": ["ec2.amazonaws.com"] }),
    )
    .await;
    t.create::<InstanceProfile>(
        "InstanceProfile",
        "own",
        json!({ "name": t.name("own"), "roleName": t.name("own") }),
    )
    .await;
    wait_reason(&profiles, "own", "Available").await;

    t.set_tenancy(json!({ "references": { "roles": [format!("{}-out*", t.namespace)] } }))
        .await;
    let profile = wait_reason(&profiles, "wrap", "Available").await;
    assert_eq!(
        profile.status.unwrap().role_name.as_deref(),
        Some(outside.as_str())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bindings_reach_only_instances_and_profiles_the_tenancy_allows() {
    let t = tenant("tenancy-bind").await;
    let admin_profile = external_profile(&t.aws, &t.name("admin")).await;
    let theirs = run_instance(&t.aws, &[("team", "db")]).await;
    let ours = run_instance(&t.aws, &[("team", &t.namespace)]).await;
    let bindings = t.api::<Ec2InstanceBinding>();

    // The defaults bind no instance at all.
    t.create::<Ec2InstanceBinding>(
        "Ec2InstanceBinding",
        "grab",
        json!({ "instanceProfileName": t.name("admin"), "instanceIds": [theirs] }),
    )
    .await;
    forbidden(&bindings, "grab", "the default rules", "instances").await;

    // Instances allowed by tag, but the admin profile is made outside the namespace.
    t.set_tenancy(json!({ "instances": { "matchTags": { "team": t.namespace } } }))
        .await;
    let source = format!("Tenancy {}", t.namespace);
    forbidden(&bindings, "grab", &source, "references.instanceProfiles").await;

    // The profile listed: the other team's instance is still out of reach.
    t.set_tenancy(json!({
        "instances": { "matchTags": { "team": t.namespace } },
        "references": { "instanceProfiles": [t.name("admin")] },
    }))
    .await;
    let message = forbidden(&bindings, "grab", &source, "instances").await;
    assert!(message.contains(&theirs), "{message}");
    assert_eq!(t.operator.writes(), 0, "a refused binding wrote to AWS");
    assert_eq!(associated_profile(&t.aws, &theirs).await, None);

    // Our own instance, carrying the tag: bound.
    // A merge patch replaces the list (server-side apply would add to a set owned by another
    // field manager).
    bindings
        .patch(
            "grab",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "instanceIds": [ours] } })),
        )
        .await
        .unwrap();
    wait_reason(&bindings, "grab", "Available").await;
    assert_eq!(
        associated_profile(&t.aws, &ours).await.as_deref(),
        Some(admin_profile.as_str())
    );
    assert_eq!(associated_profile(&t.aws, &theirs).await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_association_made_outside_rolecall_is_not_replaced_unless_allowed() {
    let t = tenant("tenancy-replace").await;
    let outside = external_profile(&t.aws, &t.name("outside")).await;
    let instance = run_instance(&t.aws, &[("team", &t.namespace)]).await;
    t.aws
        .ec2
        .associate_iam_instance_profile()
        .instance_id(&instance)
        .iam_instance_profile(
            aws_sdk_ec2::types::IamInstanceProfileSpecification::builder()
                .arn(&outside)
                .build(),
        )
        .send()
        .await
        .unwrap();
    t.set_tenancy(json!({ "instances": { "matchTags": { "team": t.namespace } } }))
        .await;
    t.create::<IamRole>(
        "IamRole",
        "web",
        json!({ "name": t.name("web"), "trustedServices": ["ec2.amazonaws.com"] }),
    )
    .await;
    t.create::<InstanceProfile>(
        "InstanceProfile",
        "web",
        json!({ "name": t.name("web"), "roleRef": { "name": "web" } }),
    )
    .await;
    t.create::<Ec2InstanceBinding>(
        "Ec2InstanceBinding",
        "web",
        json!({ "instanceProfileRef": { "name": "web" }, "instanceIds": [instance] }),
    )
    .await;
    let bindings = t.api::<Ec2InstanceBinding>();
    let binding = wait_reason(&bindings, "web", "Conflict").await;
    let (_, _, message) = binding.ready().unwrap();
    assert!(
        message.contains(&outside) && message.contains("set outside rolecall"),
        "{message}"
    );
    assert_eq!(
        associated_profile(&t.aws, &instance).await.as_deref(),
        Some(outside.as_str()),
        "the outside association was replaced"
    );

    t.set_tenancy(json!({ "instances": { "matchTags": { "team": t.namespace }, "replaceUnownedAssociations": true } }))
        .await;
    let binding = wait_reason(&bindings, "web", "Available").await;
    let ours = binding.status.unwrap().instance_profile_arn.unwrap();
    common::wait_for("the association to be replaced", WAIT, || {
        let (aws, instance, ours) = (&t.aws, &instance, &ours);
        async move { (associated_profile(aws, instance).await.as_deref() == Some(ours)).then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_grants_are_refused_unless_the_tenancy_allows_them() {
    let t = tenant("tenancy-grants").await;
    let roles = t.api::<IamRole>();
    let policies = t.api::<IamPolicy>();
    t.create::<IamRole>(
        "IamRole",
        "admin",
        json!({ "name": t.name("admin"), "trustedServices": ["ec2.amazonaws.com"],
                "managedPolicyArns": ["arn:aws:iam::aws:policy/AdministratorAccess"] }),
    )
    .await;
    forbidden(&roles, "admin", "the default rules", "managedPolicies").await;
    t.create::<IamPolicy>(
        "IamPolicy",
        "star",
        json!({ "name": t.name("star"), "document": { "Version": "2012-10-17", "Statement": [
            { "Effect": "Allow", "Action": "*", "Resource": "*" }] } }),
    )
    .await;
    forbidden(
        &policies,
        "star",
        "the default rules",
        "allowPrivilegeEscalation",
    )
    .await;
    t.create::<IamRole>(
        "IamRole",
        "passer",
        json!({ "name": t.name("passer"), "trustedServices": ["ec2.amazonaws.com"],
                "inlinePolicies": { "pass": { "Version": "2012-10-17", "Statement": [
                    { "Effect": "Allow", "Action": "iam:PassRole", "Resource": "*" }] } } }),
    )
    .await;
    let message = forbidden(
        &roles,
        "passer",
        "the default rules",
        "allowPrivilegeEscalation",
    )
    .await;
    assert!(
        message.contains("inlinePolicies.pass") && message.contains("iam:PassRole"),
        "{message}"
    );
    assert_eq!(t.operator.writes(), 0, "a refused grant wrote to AWS");

    t.set_tenancy(json!({
        "managedPolicies": ["arn:aws:iam::aws:policy/AdministratorAccess"],
        "allowPrivilegeEscalation": true,
    }))
    .await;
    for name in ["admin", "passer"] {
        wait_reason(&roles, name, "Available").await;
    }
    wait_reason(&policies, "star", "Available").await;

    // Tightening the Tenancy marks them Forbidden again and removes nothing from AWS.
    let writes = t.operator.writes();
    t.set_tenancy(json!({})).await;
    forbidden(
        &roles,
        "admin",
        &format!("Tenancy {}", t.namespace),
        "managedPolicies",
    )
    .await;
    forbidden(
        &policies,
        "star",
        &format!("Tenancy {}", t.namespace),
        "allowPrivilegeEscalation",
    )
    .await;
    assert_eq!(t.operator.writes(), writes, "tightening wrote to AWS");
    let attached = t
        .aws
        .iam
        .list_attached_role_policies()
        .role_name(t.name("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(attached.attached_policies().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_boundary_and_name_prefix_are_enforced_and_two_tenancies_allow_nothing() {
    let t = tenant("tenancy-boundary").await;
    let boundary = format!(
        "arn:aws:iam::123456789012:policy/rolecall/{}/{}-boundary",
        t.namespace, t.namespace
    );
    t.aws
        .iam
        .create_policy()
        .policy_name(t.name("boundary"))
        .path(format!("/rolecall/{}/", t.namespace))
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    t.set_tenancy(
        json!({ "permissionsBoundary": boundary, "namePrefix": format!("{}-", t.namespace) }),
    )
    .await;
    let roles = t.api::<IamRole>();
    t.create::<IamRole>(
        "IamRole",
        "bounded",
        json!({ "name": t.name("bounded"), "trustedServices": ["ec2.amazonaws.com"] }),
    )
    .await;
    wait_reason(&roles, "bounded", "Available").await;
    let role = t
        .aws
        .iam
        .get_role()
        .role_name(t.name("bounded"))
        .send()
        .await
        .unwrap();
    let carried = role.role().unwrap().permissions_boundary().unwrap();
    assert_eq!(carried.permissions_boundary_arn(), Some(boundary.as_str()));

    let source = format!("Tenancy {}", t.namespace);
    t.create::<IamRole>(
        "IamRole",
        "unbounded",
        json!({ "name": t.name("unbounded"), "trustedServices": ["ec2.amazonaws.com"],
                "permissionsBoundary": "arn:aws:iam::aws:policy/AdministratorAccess" }),
    )
    .await;
    forbidden(&roles, "unbounded", &source, "permissionsBoundary").await;
    t.create::<IamRole>(
        "IamRole",
        "squat",
        json!({ "name": "admin", "trustedServices": ["ec2.amazonaws.com"] }),
    )
    .await;
    forbidden(&roles, "squat", &source, "namePrefix").await;

    // A second Tenancy selecting the namespace: neither applies, nothing is done.
    let second = format!("{}-second", t.namespace);
    apply_tenancy(
        &t.client,
        &second,
        json!({ "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": t.namespace } } }),
    )
    .await;
    let writes = t.operator.writes();
    t.create::<IamRole>(
        "IamRole",
        "late",
        json!({ "name": t.name("late"), "trustedServices": ["ec2.amazonaws.com"] }),
    )
    .await;
    let message = wait_reason(&roles, "late", "Forbidden")
        .await
        .ready()
        .unwrap()
        .2;
    assert!(
        message.contains(&second) && message.contains(&t.namespace),
        "{message}"
    );
    assert_eq!(t.operator.writes(), writes);
    let _ = Api::<kube::api::DynamicObject>::all_with(
        t.client.clone(),
        &kube::api::ApiResource::erase::<rolecall::api::Tenancy>(&()),
    )
    .delete(&second, &DeleteParams::default())
    .await;
    wait_reason(&roles, "late", "Available").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_is_not_pulled_out_of_a_profile_rolecall_does_not_own() {
    let t = tenant("tenancy-cleanup").await;
    let roles = t.api::<IamRole>();
    t.create::<IamRole>(
        "IamRole",
        "app",
        json!({ "name": t.name("app"), "trustedServices": ["ec2.amazonaws.com"] }),
    )
    .await;
    wait_reason(&roles, "app", "Available").await;
    // Someone outside rolecall puts the role into their own instance profile.
    let theirs = t.name("theirs");
    t.aws
        .iam
        .create_instance_profile()
        .instance_profile_name(&theirs)
        .send()
        .await
        .unwrap();
    t.aws
        .iam
        .add_role_to_instance_profile()
        .instance_profile_name(&theirs)
        .role_name(t.name("app"))
        .send()
        .await
        .unwrap();
    roles.delete("app", &DeleteParams::default()).await.unwrap();
    let waiting = wait_reason(&roles, "app", "Deleting").await;
    let (_, _, message) = waiting.ready().unwrap();
    assert!(message.contains(&theirs), "{message}");
    let profile = t
        .aws
        .iam
        .get_instance_profile()
        .instance_profile_name(&theirs)
        .send()
        .await
        .unwrap();
    assert_eq!(
        profile.instance_profile().unwrap().roles().len(),
        1,
        "the role was removed from a profile rolecall does not own"
    );

    // Their owner lets go: the deletion completes.
    t.aws
        .iam
        .remove_role_from_instance_profile()
        .instance_profile_name(&theirs)
        .role_name(t.name("app"))
        .send()
        .await
        .unwrap();
    roles
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "annotations": { "rolecall.dev/retry": "1" } } })),
        )
        .await
        .unwrap();
    common::wait_for("the role to be deleted", WAIT, || {
        let roles = roles.clone();
        async move { matches!(roles.get_opt("app").await, Ok(None)).then_some(()) }
    })
    .await;
    let gone = t.aws.iam.get_role().role_name(t.name("app")).send().await;
    assert!(gone.is_err(), "the role is still in AWS");
}

/// One operator, many accounts: each namespace's Tenancy names the account its objects live
/// in (a role rolecall assumes there), and the same role name in two namespaces becomes two
/// roles, one per account, none in the operator's own.
#[tokio::test(flavor = "multi_thread")]
async fn namespaces_in_two_accounts_create_the_same_role_name_apart() {
    let first = tenant("tenancy-account-a").await;
    let second = tenant("tenancy-account-b").await;
    let name = format!("{}-shared", first.namespace);
    let accounts = [("111111111111", &first), ("222222222222", &second)];
    for (account, t) in accounts {
        t.set_tenancy(json!({ "account": {
            "roleArn": format!("arn:aws:iam::{account}:role/rolecall/operator"),
            "externalId": format!("rolecall-{}", t.namespace),
        } }))
        .await;
        t.create::<IamRole>(
            "IamRole",
            "shared",
            json!({ "name": name, "trustedServices": ["ec2.amazonaws.com"] }),
        )
        .await;
    }
    for (account, t) in accounts {
        let role = wait_reason(&t.api::<IamRole>(), "shared", "Available").await;
        let status = role.status.unwrap();
        assert_eq!(status.common.account.as_deref(), Some(account));
        let arn = status.arn.unwrap();
        assert!(
            arn.starts_with(&format!("arn:aws:iam::{account}:role/")),
            "{arn}"
        );
        let there = t
            .aws
            .assuming(
                &format!("arn:aws:iam::{account}:role/rolecall/operator"),
                None,
            )
            .await;
        let found = there.iam.get_role().role_name(&name).send().await.unwrap();
        let tags = found.role().unwrap().tags();
        let owner = tags
            .iter()
            .find(|tag| tag.key() == "rolecall.dev/owner")
            .unwrap();
        assert_eq!(owner.value(), format!("test/{}/shared", t.namespace));
    }
    let home = first.aws.iam.get_role().role_name(&name).send().await;
    assert!(
        home.is_err(),
        "the role exists in the operator's own account"
    );

    // Deleting one removes it from its own account only.
    first
        .api::<IamRole>()
        .delete("shared", &DeleteParams::default())
        .await
        .unwrap();
    common::wait_for("the first role to be deleted", WAIT, || {
        let roles = first.api::<IamRole>();
        async move { matches!(roles.get_opt("shared").await, Ok(None)).then_some(()) }
    })
    .await;
    let there = |account: &str| format!("arn:aws:iam::{account}:role/rolecall/operator");
    let a = first.aws.assuming(&there("111111111111"), None).await;
    let b = first.aws.assuming(&there("222222222222"), None).await;
    assert!(a.iam.get_role().role_name(&name).send().await.is_err());
    assert!(b.iam.get_role().role_name(&name).send().await.is_ok());
}
