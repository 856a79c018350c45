//! The seed story end to end, with moto enforcing IAM authorization: an instance without a
//! profile has no credentials; after `kubectl apply -f examples/seed-s3-reader` and `kubectl
//! wait`, the AWS CLI on that instance (through `rolecall imds-mock`) lists exactly the two
//! buckets; a role without the permission gets AccessDenied; unbinding takes the credentials
//! away; deleting everything leaves no rolecall-tagged object in AWS.
//!
//! The operator and the IMDS mock run as child processes of the real binary.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const AMI: &str = "ami-03cf127a";

struct Enforced {
    endpoint: String,
    key_id: String,
    secret: String,
    /// Keys of the IAM user standing in for the EC2 service (see tools/moto/server.py).
    ec2_key_id: String,
    ec2_secret: String,
}

fn enforced() -> Enforced {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: the seed story needs a second moto enforcing IAM; run `scripts/test.sh`, \
                 or `ROLECALL_STATE=~/.cache/rolecall/state/enforced scripts/moto.sh up --enforce-iam` and export \
                 ROLECALL_TEST_ENFORCED_AWS_ENDPOINT, ROLECALL_TEST_ENFORCED_ADMIN_KEY_ID and ROLECALL_TEST_ENFORCED_ADMIN_SECRET \
                 from `scripts/moto.sh env` in that state"
            )
        })
    };
    Enforced {
        endpoint: var("ROLECALL_TEST_ENFORCED_AWS_ENDPOINT"),
        key_id: var("ROLECALL_TEST_ENFORCED_ADMIN_KEY_ID"),
        secret: var("ROLECALL_TEST_ENFORCED_ADMIN_SECRET"),
        ec2_key_id: var("ROLECALL_TEST_ENFORCED_EC2_KEY_ID"),
        ec2_secret: var("ROLECALL_TEST_ENFORCED_EC2_SECRET"),
    }
}

/// The AWS CLI as an administrator (explicit keys) or as the instance (credentials only
/// from the IMDS mock at `imds`).
fn aws(env: &Enforced, imds: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new("aws");
    command
        .args(args)
        .args([
            "--endpoint-url",
            &env.endpoint,
            "--region",
            "us-east-1",
            "--output",
            "json",
        ])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    match imds {
        Some(url) => {
            command
                .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", url)
                .env("AWS_EC2_METADATA_DISABLED", "false");
        }
        None => {
            command
                .env("AWS_ACCESS_KEY_ID", &env.key_id)
                .env("AWS_SECRET_ACCESS_KEY", &env.secret)
                .env("AWS_EC2_METADATA_DISABLED", "true");
        }
    }
    command.output().unwrap_or_else(|e| {
        panic!("the AWS CLI is not on PATH ({e}): run `eval \"$(scripts/moto.sh env)\"`")
    })
}

fn admin_json(env: &Enforced, args: &[&str]) -> serde_json::Value {
    let output = aws(env, None, args);
    assert!(
        output.status.success(),
        "aws {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.stdout.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_slice(&output.stdout).unwrap()
}

fn kubectl(namespace: &str, args: &[&str]) -> String {
    let output = Command::new("kubectl")
        .args(args)
        .args(["--namespace", namespace])
        .output()
        .expect("kubectl on PATH");
    assert!(
        output.status.success(),
        "kubectl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A child process stopped with SIGTERM when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

fn aws_env(command: &mut Command, key_id: &str, secret: &str) {
    command
        .env("AWS_ACCESS_KEY_ID", key_id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
}

fn start_operator(env: &Enforced, namespace: &str) -> Process {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rolecall"));
    command.args([
        "run",
        "--watch-namespaces",
        namespace,
        "--http-address",
        "127.0.0.1:0",
        "--cluster-name",
        "seed",
        "--aws-endpoint-url",
        &env.endpoint,
        "--region",
        "us-east-1",
        "--resync-period",
        "2s",
    ]);
    aws_env(&mut command, &env.key_id, &env.secret);
    Process(
        command
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start rolecall run"),
    )
}

fn start_imds(env: &Enforced, instance_id: &str) -> (Process, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rolecall"));
    command.args([
        "imds-mock",
        "--listen",
        "127.0.0.1:0",
        "--instance-id",
        instance_id,
        "--aws-endpoint-url",
        &env.endpoint,
        "--region",
        "us-east-1",
    ]);
    aws_env(&mut command, &env.ec2_key_id, &env.ec2_secret);
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start rolecall imds-mock");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    (Process(child), url)
}

/// A fresh namespace of the web team, which examples/platform's Tenancy governs.
async fn web_team_namespace(client: &kube::Client) -> String {
    let name = format!("seed-{}", std::process::id());
    let namespace: k8s_openapi::api::core::v1::Namespace = serde_json::from_value(
        serde_json::json!({ "metadata": { "name": name, "labels": { "team": "web" } } }),
    )
    .expect("a valid Namespace");
    kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .create(&Default::default(), &namespace)
        .await
        .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
    name
}

/// An instance of the web team (the Tenancy binds only instances tagged team=web).
fn run_instance(env: &Enforced, app: &str) -> String {
    let tags =
        format!("ResourceType=instance,Tags=[{{Key=app,Value={app}}},{{Key=team,Value=web}}]");
    let output = admin_json(
        env,
        &[
            "ec2",
            "run-instances",
            "--image-id",
            AMI,
            "--count",
            "1",
            "--tag-specifications",
            &tags,
        ],
    );
    output["Instances"][0]["InstanceId"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `aws s3 ls` on the instance behind `imds`: Ok(bucket names) or Err(stderr).
fn s3_ls(env: &Enforced, imds: &str) -> Result<Vec<String>, String> {
    let output = aws(env, Some(imds), &["s3", "ls"]);
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let mut buckets: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().nth(2).map(str::to_owned))
        .collect();
    buckets.sort();
    Ok(buckets)
}

async fn poll<T>(what: &str, check: impl Fn() -> Option<T>) -> T {
    common::wait_for(what, Duration::from_secs(60), || {
        let value = check();
        async move { value }
    })
    .await
}

fn rolecall_tagged(env: &Enforced) -> Vec<String> {
    let owned = |tags: &serde_json::Value| {
        tags["Tags"]
            .as_array()
            .is_some_and(|tags| tags.iter().any(|t| t["Key"] == "rolecall.dev/owner"))
    };
    let mut found = Vec::new();
    for role in admin_json(env, &["iam", "list-roles"])["Roles"]
        .as_array()
        .unwrap()
    {
        let name = role["RoleName"].as_str().unwrap();
        if owned(&admin_json(
            env,
            &["iam", "list-role-tags", "--role-name", name],
        )) {
            found.push(format!("role {name}"));
        }
    }
    for policy in admin_json(env, &["iam", "list-policies", "--scope", "Local"])["Policies"]
        .as_array()
        .unwrap()
    {
        let arn = policy["Arn"].as_str().unwrap();
        if owned(&admin_json(
            env,
            &["iam", "list-policy-tags", "--policy-arn", arn],
        )) {
            found.push(format!("policy {arn}"));
        }
    }
    for profile in admin_json(env, &["iam", "list-instance-profiles"])["InstanceProfiles"]
        .as_array()
        .unwrap()
    {
        let name = profile["InstanceProfileName"].as_str().unwrap();
        if owned(&admin_json(
            env,
            &[
                "iam",
                "list-instance-profile-tags",
                "--instance-profile-name",
                name,
            ],
        )) {
            found.push(format!("instance profile {name}"));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_story_lists_buckets_after_binding() {
    let env = enforced();
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    // The platform team's step: its Tenancy selects namespaces labelled team=web (this test's
    // own, not the permissive test Tenancy's).
    let platform = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/platform");
    kubectl(
        "default",
        &["apply", "--filename", platform.to_str().unwrap()],
    );
    let namespace = web_team_namespace(&client).await;

    for bucket in ["assets", "assets-logs"] {
        admin_json(&env, &["s3api", "create-bucket", "--bucket", bucket]);
    }
    let web = run_instance(&env, "web");
    let batch = run_instance(&env, "batch");
    let (_web_imds, web_url) = start_imds(&env, &web);
    let (_batch_imds, batch_url) = start_imds(&env, &batch);

    let before =
        s3_ls(&env, &web_url).expect_err("an instance without a profile must have no credentials");
    assert!(before.contains("Unable to locate credentials"), "{before}");

    let _operator = start_operator(&env, &namespace);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/seed-s3-reader");
    kubectl(
        &namespace,
        &["apply", "--filename", example.to_str().unwrap()],
    );
    kubectl(
        &namespace,
        &[
            "wait",
            "--for=condition=Ready",
            "--timeout=60s",
            "iampolicy/s3-reader",
            "iamrole/web",
            "instanceprofile/web",
            "ec2instancebinding/web",
        ],
    );
    let buckets = poll("the instance to list the buckets", || {
        s3_ls(&env, &web_url).ok()
    })
    .await;
    assert_eq!(buckets, ["assets", "assets-logs"]);

    // A role without the permission, bound to another instance.
    let batch_yaml = r#"
apiVersion: iam.rolecall.dev/v1alpha1
kind: IamRole
metadata: { name: batch }
spec: { trustedServices: [ec2.amazonaws.com] }
---
apiVersion: iam.rolecall.dev/v1alpha1
kind: InstanceProfile
metadata: { name: batch }
spec: { roleRef: { name: batch } }
---
apiVersion: iam.rolecall.dev/v1alpha1
kind: Ec2InstanceBinding
metadata: { name: batch }
spec: { instanceProfileRef: { name: batch }, instanceSelector: { matchTags: { app: batch } } }
"#;
    let manifest = std::env::temp_dir().join(format!("rolecall-batch-{}.yaml", std::process::id()));
    std::fs::write(&manifest, batch_yaml).unwrap();
    kubectl(
        &namespace,
        &["apply", "--filename", manifest.to_str().unwrap()],
    );
    kubectl(
        &namespace,
        &[
            "wait",
            "--for=condition=Ready",
            "--timeout=60s",
            "ec2instancebinding/batch",
        ],
    );
    let denied = poll("AccessDenied for the role without the permission", || {
        s3_ls(&env, &batch_url)
            .err()
            .filter(|stderr| stderr.contains("AccessDenied"))
    })
    .await;
    assert!(
        denied.contains("ListBuckets") || denied.contains("AccessDenied"),
        "{denied}"
    );

    // Untagged, the batch instance no longer matches the binding's selector: it must lose the
    // profile, not keep the role forever.
    admin_json(
        &env,
        &[
            "ec2",
            "delete-tags",
            "--resources",
            &batch,
            "--tags",
            "Key=app",
        ],
    );
    let untagged = poll("the untagged instance to lose its credentials", || {
        s3_ls(&env, &batch_url)
            .err()
            .filter(|stderr| stderr.contains("Unable to locate credentials"))
    })
    .await;
    assert!(
        untagged.contains("Unable to locate credentials"),
        "{untagged}"
    );

    kubectl(
        &namespace,
        &[
            "delete",
            "ec2instancebinding/web",
            "--wait=true",
            "--timeout=60s",
        ],
    );
    let after = poll("the instance to lose its credentials", || {
        s3_ls(&env, &web_url).err()
    })
    .await;
    assert!(after.contains("Unable to locate credentials"), "{after}");

    kubectl(
        &namespace,
        &[
            "delete",
            "--filename",
            example.to_str().unwrap(),
            "--ignore-not-found",
            "--wait=true",
            "--timeout=60s",
        ],
    );
    kubectl(
        &namespace,
        &[
            "delete",
            "--filename",
            manifest.to_str().unwrap(),
            "--wait=true",
            "--timeout=60s",
        ],
    );
    let leftovers = rolecall_tagged(&env);
    assert!(
        leftovers.is_empty(),
        "rolecall-tagged objects left in AWS: {leftovers:?}"
    );
}
