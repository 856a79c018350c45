//! `rolecall imds-mock` as a child process against moto, over real HTTP: an instance without a
//! profile has no credentials; once a role's profile is associated, the SDK's default
//! credential chain gets credentials from the mock and lists S3 buckets; after the profile is
//! disassociated the credentials are gone at once. Walking the directory listings from
//! `/latest/` reaches exactly the files the instance has at that moment. The SDK runs in a child process of this test
//! binary, because its metadata provider reads `AWS_EC2_METADATA_DISABLED` and
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT` from the real environment only.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::config::ProvideCredentials;
use rolecall::aws::{AwsArgs, AwsClients};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An AMI moto's EC2 knows.
const AMI: &str = "ami-03cf127a";
const TOKEN_PATH: &str = "/latest/api/token";
const ROLE_NAME_PATH: &str = "/latest/meta-data/iam/security-credentials/";
const INFO_PATH: &str = "/latest/meta-data/iam/info";
const IDENTITY_PATH: &str =
    "/latest/dynamic/identity-credentials/ec2/security-credentials/ec2-instance";
/// Set in the environment of the child process that runs `sdk_default_chain_probe`: the moto
/// endpoint its S3 client uses.
const PROBE_S3_ENDPOINT: &str = "ROLECALL_TEST_IMDS_PROBE_S3_ENDPOINT";

fn moto_endpoint() -> String {
    std::env::var("ROLECALL_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "ROLECALL_TEST_AWS_ENDPOINT is not set: start moto with `scripts/moto.sh up`, then \
             `eval \"$(scripts/moto.sh env)\"` and run the tests again"
        )
    })
}

async fn moto_config() -> aws_config::SdkConfig {
    AwsArgs {
        region: Some("us-east-1".into()),
        aws_endpoint_url: Some(moto_endpoint()),
        ..AwsArgs::default()
    }
    .load()
    .await
}

/// A running `rolecall imds-mock`, stopped with SIGTERM by `stop` (or killed when dropped).
struct ImdsMock {
    child: Option<Child>,
    url: String,
}

impl ImdsMock {
    fn start(instance_id: &str, extra_args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rolecall"))
            .args([
                "imds-mock",
                "--listen",
                "127.0.0.1:0",
                "--region",
                "us-east-1",
            ])
            .args(["--instance-id", instance_id])
            .args(["--aws-endpoint-url", &moto_endpoint()])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start rolecall imds-mock");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let _ = sender.send(first);
            // Keep draining so the mock never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let first = receiver
            .recv_timeout(Duration::from_secs(30))
            .expect("imds-mock announces its address within 30s");
        let url = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!("imds-mock's first line is {first:?}, not `listening on <url>`")
            })
            .to_owned();
        Self {
            child: Some(child),
            url,
        }
    }

    /// SIGTERM, then the exit status (within 10 s).
    async fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {}", child.id());
        common::wait_for(
            "imds-mock to exit after SIGTERM",
            Duration::from_secs(10),
            || {
                let status = child.try_wait().expect("try_wait");
                async move { status }
            },
        )
        .await
    }

    async fn token(&self, ttl: &str) -> String {
        let (status, body) = self
            .request(
                "PUT",
                TOKEN_PATH,
                &[("X-aws-ec2-metadata-token-ttl-seconds", ttl)],
            )
            .await;
        assert_eq!(status, 200, "token PUT: {body}");
        body
    }

    async fn get(&self, path: &str, token: &str) -> (u16, String) {
        self.request("GET", path, &[("X-aws-ec2-metadata-token", token)])
            .await
    }

    /// One HTTP/1.1 request on its own connection: (status, body).
    async fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let address = self.url.strip_prefix("http://").expect("an http URL");
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect to imds-mock");
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: 0\r\n"
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut response = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut response))
            .await
            .expect("imds-mock answers within 30s")
            .expect("read the answer");
        let response = String::from_utf8(response).expect("a UTF-8 answer");
        let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        (status, body.to_owned())
    }
}

impl Drop for ImdsMock {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What the SDK's default credential chain, pointed at the mock, achieved.
#[derive(Debug)]
enum ProbeOutcome {
    NoCredentials(String),
    Credentials {
        access_key_id: String,
        buckets: Result<Vec<String>, String>,
    },
}

/// Runs `sdk_default_chain_probe` in a child process whose environment has no credentials and
/// sends the SDK's metadata provider to the mock.
fn probe_default_chain(mock: &ImdsMock) -> ProbeOutcome {
    let mut probe = Command::new(std::env::current_exe().expect("this test binary"));
    probe
        .args([
            "sdk_default_chain_probe",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .args(["--test-threads", "1"])
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &mock.url)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_REGION", "us-east-1")
        .env(PROBE_S3_ENDPOINT, moto_endpoint());
    for name in [
        "AWS_EC2_METADATA_DISABLED",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ] {
        probe.env_remove(name);
    }
    let mut child = probe
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the probe");
    let mut output = String::new();
    child
        .stdout
        .take()
        .expect("piped stdout")
        .read_to_string(&mut output)
        .expect("read the probe's output");
    let status = child.wait().expect("the probe exits");
    assert!(status.success(), "probe failed ({status}):\n{output}");
    let line = |prefix: &str| {
        output
            .lines()
            // libtest prints the test's name on the line the probe's output starts.
            .find_map(|line| line.split_once(prefix))
            .map(|(_, rest)| rest.to_owned())
    };
    if let Some(error) = line("probe: no credentials: ") {
        return ProbeOutcome::NoCredentials(error);
    }
    let access_key_id = line("probe: credentials ")
        .unwrap_or_else(|| panic!("the probe reported nothing:\n{output}"));
    let buckets = match line("probe: buckets ") {
        Some(names) => Ok(names
            .split(',')
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect()),
        None => Err(line("probe: s3 error: ").unwrap_or_else(|| output.clone())),
    };
    ProbeOutcome::Credentials {
        access_key_id,
        buckets,
    }
}

/// Not a test on its own: `probe_default_chain` runs it in a child process. Prints what the
/// SDK's default credential chain and an S3 client using it achieve.
#[tokio::test]
#[ignore = "helper: run by the other tests in a child process pointed at the IMDS mock"]
async fn sdk_default_chain_probe() {
    let Ok(s3_endpoint) = std::env::var(PROBE_S3_ENDPOINT) else {
        return;
    };
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let provider = config
        .credentials_provider()
        .expect("the default chain is configured");
    let credentials = match provider.provide_credentials().await {
        Ok(credentials) => credentials,
        Err(error) => {
            let error = aws_sdk_s3::error::DisplayErrorContext(error).to_string();
            println!("probe: no credentials: {}", error.replace('\n', " "));
            return;
        }
    };
    println!("probe: credentials {}", credentials.access_key_id());
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .endpoint_url(s3_endpoint)
            .force_path_style(true)
            .build(),
    );
    match s3.list_buckets().send().await {
        Ok(listed) => {
            let names: Vec<_> = listed.buckets().iter().filter_map(|b| b.name()).collect();
            println!("probe: buckets {}", names.join(","));
        }
        Err(error) => {
            let error = aws_sdk_s3::error::DisplayErrorContext(error).to_string();
            println!("probe: s3 error: {}", error.replace('\n', " "));
        }
    }
}

/// Walks the listings down from `/latest/` as a person or SDK would: each directory must answer
/// the same with and without its trailing slash, and each listed file must answer 200. The
/// files found, relative to `/latest/`, sorted.
async fn walk_listings(mock: &ImdsMock, token: &str) -> Vec<String> {
    let mut files = Vec::new();
    let mut directories = vec![String::new()];
    while let Some(directory) = directories.pop() {
        let path = format!("/latest/{directory}");
        let (status, listing) = mock.get(&path, token).await;
        assert_eq!(status, 200, "{path}: {listing}");
        let without_slash = path.trim_end_matches('/');
        assert_eq!(
            mock.get(without_slash, token).await,
            (200, listing.clone()),
            "{without_slash} answers like {path}"
        );
        for entry in listing.lines() {
            assert!(
                !entry.is_empty() && !entry.trim_end_matches('/').contains('/'),
                "{path} lists {entry:?}: {listing:?}"
            );
            let child = format!("{directory}{entry}");
            if entry.ends_with('/') {
                directories.push(child);
            } else {
                let (status, body) = mock.get(&format!("/latest/{child}"), token).await;
                assert_eq!(status, 200, "{child}, listed in {path}: {body}");
                files.push(child);
            }
        }
    }
    files.sort();
    files
}

async fn run_instance(clients: &AwsClients) -> String {
    let launched = clients
        .ec2
        .run_instances()
        .image_id(AMI)
        .instance_type(aws_sdk_ec2::types::InstanceType::T2Micro)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .expect("RunInstances in moto");
    launched.instances()[0]
        .instance_id()
        .expect("a launched instance has an id")
        .to_owned()
}

async fn terminate(clients: &AwsClients, instance_id: &str) {
    clients
        .ec2
        .terminate_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .expect("TerminateInstances");
}

const EC2_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const LIST_BUCKETS: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListAllMyBuckets","Resource":"*"}]}"#;

/// Role (EC2 trust, may list buckets) wrapped in an instance profile of the same name.
async fn create_role_and_profile(clients: &AwsClients, name: &str) {
    let iam = &clients.iam;
    iam.create_role()
        .role_name(name)
        .assume_role_policy_document(EC2_TRUST)
        .send()
        .await
        .expect("CreateRole");
    iam.put_role_policy()
        .role_name(name)
        .policy_name("list-buckets")
        .policy_document(LIST_BUCKETS)
        .send()
        .await
        .expect("PutRolePolicy");
    iam.create_instance_profile()
        .instance_profile_name(name)
        .send()
        .await
        .expect("CreateInstanceProfile");
    iam.add_role_to_instance_profile()
        .instance_profile_name(name)
        .role_name(name)
        .send()
        .await
        .expect("AddRoleToInstanceProfile");
}

async fn delete_role_and_profile(clients: &AwsClients, name: &str) {
    let iam = &clients.iam;
    iam.remove_role_from_instance_profile()
        .instance_profile_name(name)
        .role_name(name)
        .send()
        .await
        .expect("RemoveRoleFromInstanceProfile");
    iam.delete_instance_profile()
        .instance_profile_name(name)
        .send()
        .await
        .expect("DeleteInstanceProfile");
    iam.delete_role_policy()
        .role_name(name)
        .policy_name("list-buckets")
        .send()
        .await
        .expect("DeleteRolePolicy");
    iam.delete_role()
        .role_name(name)
        .send()
        .await
        .expect("DeleteRole");
}

#[tokio::test]
async fn instance_gets_role_credentials_while_its_profile_is_associated() {
    let config = moto_config().await;
    let clients = AwsClients::new(&config);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let name = format!("imds-story-{}", std::process::id());
    let instance_id = run_instance(&clients).await;
    s3.create_bucket()
        .bucket(&name)
        .send()
        .await
        .expect("CreateBucket");
    let mock = ImdsMock::start(&instance_id, &[]);

    // 1. No profile: the metadata service answers, but has no role and no credentials.
    let token = mock.token("300").await;
    assert_eq!(
        mock.get("/latest/meta-data/instance-id", &token).await,
        (200, instance_id.clone())
    );
    assert_eq!(mock.get(ROLE_NAME_PATH, &token).await.0, 404);
    assert_eq!(mock.get(INFO_PATH, &token).await.0, 404);
    assert_eq!(mock.get(IDENTITY_PATH, &token).await.0, 404);
    match probe_default_chain(&mock) {
        ProbeOutcome::NoCredentials(why) => println!("no credentials, as expected: {why}"),
        other => panic!("an instance without a profile got credentials: {other:?}"),
    }

    // 2. Role + profile associated: the role's name and credentials are served.
    create_role_and_profile(&clients, &name).await;
    let associated = clients
        .ec2
        .associate_iam_instance_profile()
        .instance_id(&instance_id)
        .iam_instance_profile(
            aws_sdk_ec2::types::IamInstanceProfileSpecification::builder()
                .name(&name)
                .build(),
        )
        .send()
        .await
        .expect("AssociateIamInstanceProfile");
    let association_id = associated
        .iam_instance_profile_association()
        .and_then(|association| association.association_id())
        .expect("an association id")
        .to_owned();

    assert_eq!(mock.get(ROLE_NAME_PATH, &token).await, (200, name.clone()));
    let (status, info) = mock.get(INFO_PATH, &token).await;
    assert_eq!(status, 200, "{info}");
    let info: serde_json::Value = serde_json::from_str(&info).expect("iam/info is JSON");
    assert_eq!(info["Code"], "Success");
    assert!(
        info["InstanceProfileArn"]
            .as_str()
            .is_some_and(|arn| arn.ends_with(&format!(":instance-profile/{name}"))),
        "{info}"
    );
    assert!(
        info["InstanceProfileId"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );

    let credentials_path = format!("{ROLE_NAME_PATH}{name}");
    let (status, body) = mock.get(&credentials_path, &token).await;
    assert_eq!(status, 200, "{body}");
    let credentials: serde_json::Value = serde_json::from_str(&body).expect("credentials JSON");
    assert_eq!(credentials["Code"], "Success");
    assert_eq!(credentials["Type"], "AWS-HMAC");
    for field in ["AccessKeyId", "SecretAccessKey", "Token", "LastUpdated"] {
        assert!(
            credentials[field].as_str().is_some_and(|v| !v.is_empty()),
            "{field} in {body}"
        );
    }
    let expiration = credentials["Expiration"].as_str().expect("Expiration");
    let parsed = aws_sdk_s3::primitives::DateTime::from_str(
        expiration,
        aws_sdk_s3::primitives::DateTimeFormat::DateTime,
    )
    .expect("Expiration is RFC 3339");
    assert!(
        expiration.ends_with('Z') && !expiration.contains('.'),
        "{expiration}"
    );
    assert!(
        SystemTime::try_from(parsed).expect("a valid time") > SystemTime::now(),
        "Expiration {expiration} is in the future"
    );
    assert_eq!(
        mock.get(&format!("{ROLE_NAME_PATH}some-other-role"), &token)
            .await
            .0,
        404
    );
    let (status, identity) = mock.get(IDENTITY_PATH, &token).await;
    assert_eq!(status, 200, "{identity}");
    let identity: serde_json::Value = serde_json::from_str(&identity).expect("identity JSON");
    assert_eq!(identity["Type"], "AWS-HMAC");

    match probe_default_chain(&mock) {
        ProbeOutcome::Credentials {
            access_key_id,
            buckets,
        } => {
            assert_eq!(
                access_key_id, credentials["AccessKeyId"],
                "the SDK uses the cached credentials the mock serves"
            );
            let buckets = buckets.expect("ListBuckets with the instance's credentials");
            assert!(buckets.contains(&name), "{name} in {buckets:?}");
        }
        other => panic!("the SDK found no credentials through the mock: {other:?}"),
    }

    // 4. Disassociated: the very next request no longer finds a role (no waiting for the
    //    cached credentials to expire).
    clients
        .ec2
        .disassociate_iam_instance_profile()
        .association_id(&association_id)
        .send()
        .await
        .expect("DisassociateIamInstanceProfile");
    assert_eq!(mock.get(ROLE_NAME_PATH, &token).await.0, 404);
    assert_eq!(mock.get(&credentials_path, &token).await.0, 404);
    assert_eq!(mock.get(IDENTITY_PATH, &token).await.0, 404);
    assert_eq!(mock.get(INFO_PATH, &token).await.0, 404);
    match probe_default_chain(&mock) {
        ProbeOutcome::NoCredentials(why) => println!("no credentials, as expected: {why}"),
        other => panic!("credentials outlived the association: {other:?}"),
    }

    let status = mock.stop().await;
    assert!(
        status.success(),
        "imds-mock exits cleanly on SIGTERM: {status}"
    );
    delete_role_and_profile(&clients, &name).await;
    s3.delete_bucket()
        .bucket(&name)
        .send()
        .await
        .expect("DeleteBucket");
    terminate(&clients, &instance_id).await;
}

#[tokio::test]
async fn reads_need_an_imdsv2_token_unless_v1_is_allowed() {
    let clients = AwsClients::new(&moto_config().await);
    let instance_id = run_instance(&clients).await;
    let mock = ImdsMock::start(&instance_id, &[]);
    let instance_id_path = "/latest/meta-data/instance-id";

    // 3. Without a token, or with a made-up one: 401.
    assert_eq!(mock.request("GET", instance_id_path, &[]).await.0, 401);
    assert_eq!(mock.request("GET", ROLE_NAME_PATH, &[]).await.0, 401);
    assert_eq!(mock.get(instance_id_path, "made-up").await.0, 401);
    // A TTL outside 1..=21600 seconds, or none: 400. Through a proxy: 403.
    for ttl in ["0", "21601", "soon"] {
        let answer = mock
            .request(
                "PUT",
                TOKEN_PATH,
                &[("X-aws-ec2-metadata-token-ttl-seconds", ttl)],
            )
            .await;
        assert_eq!(answer.0, 400, "TTL {ttl:?}: {}", answer.1);
    }
    assert_eq!(mock.request("PUT", TOKEN_PATH, &[]).await.0, 400);
    let forwarded = [
        ("X-aws-ec2-metadata-token-ttl-seconds", "60"),
        ("X-Forwarded-For", "203.0.113.9"),
    ];
    assert_eq!(mock.request("PUT", TOKEN_PATH, &forwarded).await.0, 403);
    // A token from PUT opens reads.
    let token = mock.token("21600").await;
    assert_eq!(
        mock.get(instance_id_path, &token).await,
        (200, instance_id.clone())
    );
    let status = mock.stop().await;
    assert!(
        status.success(),
        "imds-mock exits cleanly on SIGTERM: {status}"
    );

    let v1 = ImdsMock::start(&instance_id, &["--imdsv1"]);
    assert_eq!(
        v1.request("GET", instance_id_path, &[]).await,
        (200, instance_id.clone())
    );
    assert_eq!(v1.get(instance_id_path, "made-up").await.0, 401);
    assert!(v1.stop().await.success());
    terminate(&clients, &instance_id).await;
}

#[tokio::test]
async fn listings_lead_to_every_file_the_instance_has_right_now() {
    let clients = AwsClients::new(&moto_config().await);
    let name = format!("imds-listings-{}", std::process::id());
    let bound_id = run_instance(&clients).await;
    let unbound_id = run_instance(&clients).await;
    let bound = ImdsMock::start(&bound_id, &[]);
    let unbound = ImdsMock::start(&unbound_id, &[]);
    let token = bound.token("300").await;
    let unbound_token = unbound.token("300").await;
    let only_the_instance_id = vec!["meta-data/instance-id".to_owned()];
    let security_credentials = "/latest/meta-data/iam/security-credentials";

    // Listings follow the token rules of every other read.
    assert_eq!(bound.request("GET", "/latest/meta-data/", &[]).await.0, 401);
    assert_eq!(bound.get(security_credentials, "made-up").await.0, 401);

    // No profile: nothing under iam/ or dynamic/, so neither is listed, and both are 404.
    assert_eq!(
        bound.get("/latest/", &token).await,
        (200, "meta-data/".to_owned())
    );
    assert_eq!(
        bound.get("/latest/meta-data/", &token).await,
        (200, "instance-id".to_owned())
    );
    assert_eq!(walk_listings(&bound, &token).await, only_the_instance_id);
    for path in [
        "/latest/meta-data/iam/",
        ROLE_NAME_PATH,
        security_credentials,
        "/latest/dynamic/",
        "/latest/dynamic/identity-credentials/ec2/security-credentials/",
    ] {
        assert_eq!(bound.get(path, &token).await.0, 404, "{path}");
    }

    // A profile with a role on one instance: its listings reach the role's credentials.
    create_role_and_profile(&clients, &name).await;
    let associated = clients
        .ec2
        .associate_iam_instance_profile()
        .instance_id(&bound_id)
        .iam_instance_profile(
            aws_sdk_ec2::types::IamInstanceProfileSpecification::builder()
                .name(&name)
                .build(),
        )
        .send()
        .await
        .expect("AssociateIamInstanceProfile");
    let association_id = associated
        .iam_instance_profile_association()
        .and_then(|association| association.association_id())
        .expect("an association id")
        .to_owned();
    assert_eq!(
        bound.get("/latest/meta-data/iam/", &token).await,
        (200, "info\nsecurity-credentials/".to_owned())
    );
    assert_eq!(bound.get(ROLE_NAME_PATH, &token).await, (200, name.clone()));
    assert_eq!(
        bound.get(security_credentials, &token).await,
        (200, name.clone()),
        "without the slash, as EC2 answers"
    );
    assert_eq!(
        bound
            .get(
                "/latest/dynamic/identity-credentials/ec2/security-credentials/",
                &token
            )
            .await,
        (200, "ec2-instance".to_owned())
    );
    assert_eq!(
        walk_listings(&bound, &token).await,
        [
            "dynamic/identity-credentials/ec2/security-credentials/ec2-instance".to_owned(),
            "meta-data/iam/info".to_owned(),
            format!("meta-data/iam/security-credentials/{name}"),
            "meta-data/instance-id".to_owned(),
        ]
    );

    // The other instance has no profile: its security-credentials/ stays 404.
    assert_eq!(unbound.get(ROLE_NAME_PATH, &unbound_token).await.0, 404);
    assert_eq!(
        walk_listings(&unbound, &unbound_token).await,
        only_the_instance_id
    );

    // Disassociated: the very next listing no longer names the role.
    clients
        .ec2
        .disassociate_iam_instance_profile()
        .association_id(&association_id)
        .send()
        .await
        .expect("DisassociateIamInstanceProfile");
    assert_eq!(bound.get(ROLE_NAME_PATH, &token).await.0, 404);
    assert_eq!(walk_listings(&bound, &token).await, only_the_instance_id);

    assert!(bound.stop().await.success());
    assert!(unbound.stop().await.success());
    delete_role_and_profile(&clients, &name).await;
    terminate(&clients, &bound_id).await;
    terminate(&clients, &unbound_id).await;
}
