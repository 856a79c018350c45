//! Every manifest under `examples/` is accepted by a real API server, applied the way a user
//! would apply it: `kubectl apply -f`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use kube::api::Api;
use rolecall::api::{Ec2InstanceBinding, IamPolicy, IamRole, InstanceProfile, Tenancy};

fn example_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("examples/ exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn kubectl(args: &[&str]) -> String {
    let output = Command::new("kubectl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("kubectl not found on PATH ({e}); run `eval \"$(scripts/cluster.sh env)\"`")
        });
    assert!(
        output.status.success(),
        "kubectl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn every_example_applies_with_kubectl() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let dirs = example_dirs();
    assert!(!dirs.is_empty(), "examples/ holds no example");
    for dir in dirs {
        let namespace = common::fresh_namespace(&client, "example").await;
        let applied = kubectl(&[
            "apply",
            "--namespace",
            &namespace,
            "--filename",
            dir.to_str().unwrap(),
        ]);
        // Cluster-scoped objects (the platform's Namespace and Tenancy) may be there already,
        // from another test: every document must still have been applied.
        let documents = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
            .map(|text| text.matches("\nkind: ").count() + usize::from(text.starts_with("kind: ")))
            .sum::<usize>();
        let outcomes: Vec<&str> = applied.lines().collect();
        assert_eq!(outcomes.len(), documents, "{}: {applied}", dir.display());
        assert!(
            outcomes
                .iter()
                .all(|line| ["created", "configured", "unchanged"]
                    .iter()
                    .any(|outcome| line.ends_with(outcome))),
            "{}: {applied}",
            dir.display()
        );
    }
}

#[tokio::test]
async fn the_platform_example_governs_the_web_team_namespace() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/platform");
    kubectl(&["apply", "--filename", dir.to_str().unwrap()]);
    let tenancy = Api::<Tenancy>::all(client.clone())
        .get("web")
        .await
        .unwrap();
    let namespace = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .get("web")
        .await
        .unwrap();
    let rules = rolecall::tenancy::Rules::for_namespace(
        "web",
        namespace.metadata.labels.as_ref().unwrap(),
        [&tenancy],
    )
    .unwrap();
    assert_eq!(rules.source, "Tenancy web");
    assert_eq!(rules.path, "/rolecall/web/");
    // The seed's instance carries team=web; another team's does not.
    let tags = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    rules
        .check_instance("i-1", &tags(&[("app", "web"), ("team", "web")]))
        .unwrap();
    assert!(
        rules
            .check_instance("i-2", &tags(&[("app", "web")]))
            .is_err()
    );
}

#[tokio::test]
async fn seed_example_declares_the_whole_chain() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, "seed").await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/seed-s3-reader");
    kubectl(&[
        "apply",
        "--namespace",
        &namespace,
        "--filename",
        dir.to_str().unwrap(),
    ]);

    let policy = Api::<IamPolicy>::namespaced(client.clone(), &namespace)
        .get("s3-reader")
        .await
        .unwrap();
    let actions: Vec<&str> = policy
        .spec
        .document
        .statement
        .iter()
        .flat_map(|statement| statement.action.iter().flat_map(|action| action.values()))
        .map(String::as_str)
        .collect();
    assert_eq!(
        actions,
        ["s3:GetObject", "s3:PutObject", "s3:ListAllMyBuckets"]
    );

    let role = Api::<IamRole>::namespaced(client.clone(), &namespace)
        .get("web")
        .await
        .unwrap();
    assert_eq!(
        role.spec.trusted_services.as_deref(),
        Some(&["ec2.amazonaws.com".to_string()][..])
    );
    assert_eq!(role.spec.policy_refs[0].name, "s3-reader");

    let profile = Api::<InstanceProfile>::namespaced(client.clone(), &namespace)
        .get("web")
        .await
        .unwrap();
    assert_eq!(profile.spec.role_ref.unwrap().name, "web");

    let binding = Api::<Ec2InstanceBinding>::namespaced(client.clone(), &namespace)
        .get("web")
        .await
        .unwrap();
    assert_eq!(binding.spec.instance_profile_ref.unwrap().name, "web");
    assert_eq!(
        binding.spec.instance_selector.unwrap().match_tags["app"],
        "web"
    );
}
