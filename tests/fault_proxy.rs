//! The fault proxy in front of moto, seen through the real AWS SDK: each fault reaches the SDK
//! as what it claims to be (rolecall's classifier says Throttled, Transient...), pass-through
//! changes nothing (signatures stay valid even for the IAM-enforcing moto), and the
//! `rolecall fault-proxy` subcommand takes rules from a file and through `/__faults`.
//!
//! The SDK's own retries are disabled here so each call is exactly one request.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_iam::config::{Credentials, Region};
use rolecall::aws::{AwsError, ErrorClass};
use rolecall::faultproxy::{Fault, FaultProxy, Rule, Rules};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DOCUMENT: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#;

async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(10))
                .build(),
        )
        .load()
        .await
}

async fn iam(endpoint: &str) -> aws_sdk_iam::Client {
    aws_sdk_iam::Client::new(&sdk_config(endpoint).await)
}

async fn ec2(endpoint: &str) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::new(&sdk_config(endpoint).await)
}

fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("fp-{what}-{}-{nanos}", std::process::id())
}

async fn proxy() -> FaultProxy {
    FaultProxy::start(&common::aws_endpoint())
        .await
        .expect("the proxy starts")
}

/// GetRole of a role that does not exist: NotFound when the request goes through.
async fn get_missing_role(iam: &aws_sdk_iam::Client, name: &str) -> AwsError {
    let error = iam
        .get_role()
        .role_name(name)
        .send()
        .await
        .expect_err("no such role");
    AwsError::from_sdk("GetRole", error)
}

async fn describe_missing_instance(ec2: &aws_sdk_ec2::Client) -> AwsError {
    let error = ec2
        .describe_instances()
        .instance_ids("i-0000000000000dead")
        .send()
        .await
        .expect_err("no such instance");
    AwsError::from_sdk("DescribeInstances", error)
}

#[tokio::test]
async fn pass_through_is_unchanged_and_logged_with_names() {
    let proxy = proxy().await;
    let via_proxy = iam(&proxy.endpoint()).await;
    let direct = iam(&common::aws_endpoint()).await;
    let name = unique("pass");
    let created = via_proxy
        .create_policy()
        .policy_name(&name)
        .policy_document(DOCUMENT)
        .send()
        .await
        .expect("CreatePolicy through the proxy");
    let arn = created.policy().and_then(|p| p.arn()).unwrap().to_owned();
    let read = direct.get_policy().policy_arn(&arn).send().await.unwrap();
    assert_eq!(read.policy().and_then(|p| p.policy_name()), Some(&*name));

    assert_eq!(
        get_missing_role(&via_proxy, &name).await.class,
        ErrorClass::NotFound
    );
    let ec2 = ec2(&proxy.endpoint()).await;
    assert_eq!(
        describe_missing_instance(&ec2).await.class,
        ErrorClass::NotFound
    );

    let log = proxy.log();
    let create = log
        .iter()
        .find(|entry| entry.operation == "CreatePolicy")
        .expect("CreatePolicy logged");
    assert_eq!(create.names["PolicyName"], name);
    assert_eq!(create.status, Some(200));
    assert!(create.succeeded_upstream() && create.fault.is_none());
    let get = log.iter().find(|e| e.operation == "GetRole").unwrap();
    assert_eq!(
        (get.names["RoleName"].as_str(), get.status),
        (&*name, Some(404))
    );
    let describe = log
        .iter()
        .find(|e| e.operation == "DescribeInstances")
        .unwrap();
    assert_eq!(describe.service, Some(rolecall::faultproxy::Service::Ec2));
    assert_eq!(describe.names["InstanceId"], "i-0000000000000dead");

    direct
        .delete_policy()
        .policy_arn(&arn)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn signatures_stay_valid_through_the_proxy_for_the_enforcing_moto() {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: start the environment with scripts/test.sh (it starts the IAM-enforcing moto)")
        })
    };
    let proxy = FaultProxy::start(&var("ROLECALL_TEST_ENFORCED_AWS_ENDPOINT"))
        .await
        .unwrap();
    let credentials = Credentials::new(
        var("ROLECALL_TEST_ENFORCED_ADMIN_KEY_ID"),
        var("ROLECALL_TEST_ENFORCED_ADMIN_SECRET"),
        None,
        None,
        "test",
    );
    let config = aws_sdk_iam::config::Builder::from(&sdk_config(&proxy.endpoint()).await)
        .credentials_provider(credentials.clone())
        .build();
    let signed = aws_sdk_iam::Client::from_conf(config);
    let name = unique("signed");
    signed
        .create_role()
        .role_name(&name)
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .expect("a signed CreateRole is accepted through the proxy");
    signed.delete_role().role_name(&name).send().await.unwrap();

    // The enforcing moto does check: a wrong secret is refused, through the proxy too.
    let forged = aws_sdk_iam::config::Builder::from(&sdk_config(&proxy.endpoint()).await)
        .credentials_provider(Credentials::new(
            var("ROLECALL_TEST_ENFORCED_ADMIN_KEY_ID"),
            "not-the-secret",
            None,
            None,
            "test",
        ))
        .build();
    let refused = aws_sdk_iam::Client::from_conf(forged)
        .get_role()
        .role_name(&name)
        .send()
        .await
        .expect_err("a bad signature is refused");
    assert_eq!(
        AwsError::from_sdk("GetRole", refused).class,
        ErrorClass::Terminal
    );
}

#[tokio::test]
async fn throttling_is_seen_as_throttled_in_each_services_shape() {
    let proxy = proxy().await;
    proxy.set_rules(Rules::new(vec![Rule::new(
        &["GetRole", "DescribeInstances"],
        Fault::Throttle,
    )]));
    let iam_error = get_missing_role(&iam(&proxy.endpoint()).await, "any").await;
    assert_eq!(iam_error.class, ErrorClass::Throttled, "{iam_error}");
    assert_eq!(iam_error.code.as_deref(), Some("Throttling"));
    let ec2_error = describe_missing_instance(&ec2(&proxy.endpoint()).await).await;
    assert_eq!(ec2_error.class, ErrorClass::Throttled, "{ec2_error}");
    assert_eq!(ec2_error.code.as_deref(), Some("RequestLimitExceeded"));
    let statuses: Vec<Option<u16>> = proxy.log().iter().map(|e| e.status).collect();
    assert_eq!(statuses, [Some(400), Some(503)]);
    assert!(
        proxy
            .log()
            .iter()
            .all(|e| e.fault == Some("throttle") && !e.forwarded)
    );
}

#[tokio::test]
async fn server_errors_dropped_connections_and_outages_are_transient() {
    let proxy = proxy().await;
    let iam = iam(&proxy.endpoint()).await;
    let ec2 = ec2(&proxy.endpoint()).await;

    proxy.set_rules(Rules::new(vec![Rule::new(&["*"], Fault::InternalError)]));
    let error = get_missing_role(&iam, "any").await;
    assert_eq!(
        (error.class, error.code.as_deref()),
        (ErrorClass::Transient, Some("ServiceFailure"))
    );
    let error = describe_missing_instance(&ec2).await;
    assert_eq!(
        (error.class, error.code.as_deref()),
        (ErrorClass::Transient, Some("InternalError"))
    );

    proxy.set_rules(Rules::new(vec![Rule::new(&["GetRole"], Fault::Drop)]));
    let error = get_missing_role(&iam, "any").await;
    assert_eq!(
        (error.class, error.code.as_deref()),
        (ErrorClass::Transient, None)
    );
    // Only the named operation is dropped.
    assert_eq!(
        describe_missing_instance(&ec2).await.class,
        ErrorClass::NotFound
    );

    proxy.set_rules(Rules::new(vec![Rule::new(&[], Fault::Outage)]));
    let error = describe_missing_instance(&ec2).await;
    assert_eq!(error.class, ErrorClass::Transient, "{error}");
    // The admin path still answers during an outage, so it can be ended.
    let (status, body) = admin(&proxy, "GET", "/__faults", "").await;
    assert_eq!(status, 200);
    assert!(body.contains("outage"), "{body}");
    proxy.clear();
    assert_eq!(
        get_missing_role(&iam, "any").await.class,
        ErrorClass::NotFound
    );

    let faults: Vec<Option<&str>> = proxy.log().iter().map(|e| e.fault).collect();
    assert_eq!(
        faults,
        [
            Some("internal_error"),
            Some("internal_error"),
            Some("drop"),
            None,
            Some("outage"),
            None
        ]
    );
    assert!(proxy.log()[2].status.is_none() && proxy.log()[4].status.is_none());
}

#[tokio::test]
async fn fail_after_forward_makes_the_write_and_reports_a_failure() {
    let proxy = proxy().await;
    proxy.set_rules(Rules::new(vec![
        Rule::new(&["CreateRole"], Fault::FailAfterForward).max(1),
    ]));
    let iam_via_proxy = iam(&proxy.endpoint()).await;
    let name = unique("faf");
    let error = iam_via_proxy
        .create_role()
        .role_name(&name)
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .expect_err("the client is told CreateRole failed");
    let error = AwsError::from_sdk("CreateRole", error);
    assert_eq!(error.class, ErrorClass::Transient, "{error}");

    let direct = iam(&common::aws_endpoint()).await;
    let role = direct.get_role().role_name(&name).send().await;
    assert!(role.is_ok(), "the role was created all the same: {role:?}");
    // The retry a client makes next meets the role it created.
    let again = iam_via_proxy
        .create_role()
        .role_name(&name)
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .expect_err("already exists");
    assert_eq!(
        AwsError::from_sdk("CreateRole", again).class,
        ErrorClass::AlreadyExists
    );

    let log = proxy.log();
    assert_eq!(log[0].fault, Some("fail_after_forward"));
    assert!(log[0].forwarded && log[0].succeeded_upstream());
    assert_eq!(log[0].status, Some(500));
    assert_eq!((log[1].fault, log[1].upstream_status), (None, Some(409)));
    assert_eq!(proxy.applied(), [1]);
    direct.delete_role().role_name(&name).send().await.unwrap();
}

#[tokio::test]
async fn latency_delays_and_then_forwards() {
    let proxy = proxy().await;
    proxy.set_rules(Rules::new(vec![Rule::new(
        &["GetRole"],
        Fault::Latency { ms: 400 },
    )]));
    let iam = iam(&proxy.endpoint()).await;
    let started = Instant::now();
    let error = get_missing_role(&iam, "any").await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(error.class, ErrorClass::NotFound);
    assert_eq!(proxy.log()[0].upstream_status, Some(404));
}

#[tokio::test]
async fn a_call_whose_client_goes_away_is_still_forwarded_and_logged() {
    // What a SIGKILLed operator does to a call in flight: the request has left, the answer has
    // nobody to go to. AWS still carries it out, so the proxy must too, and log it.
    let proxy = proxy().await;
    proxy.set_rules(Rules::new(vec![Rule::new(
        &["CreateRole"],
        Fault::Latency { ms: 800 },
    )]));
    let impatient = aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::config::Builder::from(&sdk_config(&proxy.endpoint()).await)
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(Duration::from_millis(150))
                    .build(),
            )
            .build(),
    );
    let name = unique("gone");
    let error = impatient
        .create_role()
        .role_name(&name)
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .expect_err("the client gives up before the answer");
    assert!(
        format!("{error:?}").contains("Timeout"),
        "a timeout: {error:?}"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    let entry = loop {
        if let Some(entry) = proxy
            .log()
            .into_iter()
            .find(|entry| entry.operation == "CreateRole")
        {
            break entry;
        }
        assert!(
            Instant::now() < deadline,
            "CreateRole never logged after its client went away"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(entry.forwarded && entry.succeeded_upstream(), "{entry:?}");
    let direct = iam(&common::aws_endpoint()).await;
    direct
        .get_role()
        .role_name(&name)
        .send()
        .await
        .expect("the role was created all the same");
    direct.delete_role().role_name(&name).send().await.unwrap();
}

#[tokio::test]
async fn rates_every_nth_and_max_shape_a_run() {
    let proxy = proxy().await;
    proxy.set_rules(Rules::new(vec![
        Rule::new(&["GetRole"], Fault::Throttle).every(3).max(2),
    ]));
    let iam = iam(&proxy.endpoint()).await;
    let mut classes = Vec::new();
    for _ in 0..9 {
        classes.push(get_missing_role(&iam, "any").await.class == ErrorClass::Throttled);
    }
    assert_eq!(
        classes,
        [false, false, true, false, false, true, false, false, false]
    );
}

/// One request to the proxy's admin path, on a raw connection.
async fn admin(proxy: &FaultProxy, method: &str, path: &str, body: &str) -> (u16, String) {
    admin_at(&proxy.address().to_string(), method, path, body).await
}

async fn admin_at(address: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Stops the child it holds when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_subcommand_reads_rules_from_a_file_and_changes_them_at_run_time() {
    let rules = std::env::temp_dir().join(format!("fault-proxy-rules-{}.json", std::process::id()));
    std::fs::write(
        &rules,
        r#"{"seed": 1, "rules": [{"operations": ["GetRole"], "fault": {"kind": "throttle"}, "max": 1}]}"#,
    )
    .unwrap();
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_rolecall"))
            .args(["fault-proxy", "--listen", "127.0.0.1:0", "--upstream"])
            .arg(common::aws_endpoint())
            .arg("--rules")
            .arg(&rules)
            .stdout(Stdio::piped())
            .spawn()
            .expect("rolecall fault-proxy starts"),
    );
    let mut first_line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut first_line)
        .unwrap();
    let endpoint = first_line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line: {first_line:?}"))
        .to_owned();
    let address = endpoint.trim_start_matches("http://").to_owned();
    let iam = iam(&endpoint).await;

    assert_eq!(
        get_missing_role(&iam, "a").await.class,
        ErrorClass::Throttled
    );
    assert_eq!(
        get_missing_role(&iam, "b").await.class,
        ErrorClass::NotFound
    );

    let (status, _) = admin_at(
        &address,
        "PUT",
        "/__faults",
        r#"{"rules": [{"operations": ["Get*"], "fault": {"kind": "internal_error"}}]}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        get_missing_role(&iam, "c").await.class,
        ErrorClass::Transient
    );
    let (status, body) = admin_at(
        &address,
        "PUT",
        "/__faults",
        r#"{"rules": [{"fault": {}}]}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(admin_at(&address, "DELETE", "/__faults", "").await.0, 200);
    assert_eq!(
        get_missing_role(&iam, "d").await.class,
        ErrorClass::NotFound
    );

    let (status, log) = admin_at(&address, "GET", "/__faults/log", "").await;
    assert_eq!(status, 200);
    let log: serde_json::Value = serde_json::from_str(&log).unwrap();
    let seen: Vec<(&str, Option<&str>)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["names"]["RoleName"].as_str().unwrap(),
                entry["fault"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("a", Some("throttle")),
            ("b", None),
            ("c", Some("internal_error")),
            ("d", None)
        ]
    );
    let _ = std::fs::remove_file(rules);
}
