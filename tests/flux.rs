//! The Flux manifests in deploy/flux: they parse, the HelmRelease installs and replaces CRDs
//! and its values pass the chart's values.schema.json (`helm template -f`), the Kustomizations
//! wait for readiness, and every path and source they reference exists.

mod common;

use std::path::Path;

use common::chart::{CHART, documents, run_ok};
use serde_norway::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every document under deploy/flux, with its file.
fn flux_documents() -> Vec<(String, Value)> {
    let mut found = Vec::new();
    let mut dirs = vec![Path::new(ROOT).join("deploy/flux")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("deploy/flux exists") {
            let path = entry.expect("readable entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "yaml") {
                let text = std::fs::read_to_string(&path).expect("readable file");
                for document in documents(&text) {
                    found.push((path.display().to_string(), document));
                }
            }
        }
    }
    assert!(!found.is_empty(), "no manifests under deploy/flux");
    found
}

fn of_kind(kind: &str) -> Vec<(String, Value)> {
    flux_documents()
        .into_iter()
        .filter(|(_, document)| document["kind"] == kind)
        .collect()
}

fn exists_in_repo(path: &str) -> bool {
    Path::new(ROOT).join(path.trim_start_matches("./")).exists()
}

#[test]
fn the_helm_release_replaces_crds_and_its_values_pass_the_chart_schema() {
    let releases = of_kind("HelmRelease");
    assert_eq!(releases.len(), 1, "one HelmRelease in deploy/flux");
    let (file, release) = &releases[0];
    assert_eq!(release["apiVersion"], "helm.toolkit.fluxcd.io/v2", "{file}");
    assert_eq!(
        release["spec"]["install"]["crds"], "CreateReplace",
        "{file}"
    );
    assert_eq!(
        release["spec"]["upgrade"]["crds"], "CreateReplace",
        "{file}"
    );
    let chart = release["spec"]["chart"]["spec"]["chart"]
        .as_str()
        .expect("a chart path");
    assert!(
        exists_in_repo(&format!("{chart}/Chart.yaml")),
        "{file}: no chart at {chart}"
    );

    let values = serde_norway::to_string(&release["spec"]["values"]).expect("values as YAML");
    let values_file =
        std::env::temp_dir().join(format!("rolecall-flux-values-{}.yaml", std::process::id()));
    std::fs::write(&values_file, values).expect("writing the values file");
    let rendered = run_ok(
        "helm",
        &[
            "template",
            "rolecall",
            CHART,
            "--namespace",
            "rolecall",
            "-f",
            values_file.to_str().expect("UTF-8 path"),
        ],
        None,
    );
    let _ = std::fs::remove_file(&values_file);
    assert!(rendered.contains("kind: Deployment"), "{rendered}");
    // The account-baseline Kustomization's user writes its password to a Secret.
    assert!(
        rendered.contains("resources: [\"secrets\"]"),
        "the HelmRelease grants the user Secrets: {rendered}"
    );
}

#[test]
fn the_account_baseline_kustomization_covers_every_new_kind() {
    let (file, baseline) = of_kind("Kustomization")
        .into_iter()
        .find(|(_, k)| k["metadata"]["name"] == "account-baseline")
        .expect("an account-baseline Kustomization");
    assert_eq!(
        baseline["spec"]["path"], "./examples/account-baseline",
        "{file}"
    );
    assert_eq!(baseline["spec"]["targetNamespace"], "accounts", "{file}");
    let dir = Path::new(ROOT).join("examples/account-baseline");
    let kinds: Vec<String> = std::fs::read_dir(&dir)
        .expect("the example")
        .flat_map(|entry| {
            let text = std::fs::read_to_string(entry.expect("entry").path()).expect("readable");
            documents(&text)
                .into_iter()
                .filter_map(|document| document["kind"].as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect();
    for kind in [
        "IamGroup",
        "IamUser",
        "AccountPasswordPolicy",
        "AccountSecurityReport",
        "Tenancy",
    ] {
        assert!(
            kinds.iter().any(|found| found == kind),
            "{file}: examples/account-baseline has no {kind}: {kinds:?}"
        );
    }
}

#[test]
fn the_kustomizations_wait_and_point_at_existing_paths() {
    let kustomizations = of_kind("Kustomization");
    assert!(
        kustomizations.len() >= 2,
        "an operator and a team Kustomization"
    );
    let names: Vec<&str> = kustomizations
        .iter()
        .map(|(_, k)| k["metadata"]["name"].as_str().expect("named"))
        .collect();
    for (file, kustomization) in &kustomizations {
        assert_eq!(
            kustomization["apiVersion"], "kustomize.toolkit.fluxcd.io/v1",
            "{file}"
        );
        assert_eq!(kustomization["spec"]["wait"], true, "{file}: wait: true");
        let path = kustomization["spec"]["path"].as_str().expect("a path");
        assert!(exists_in_repo(path), "{file}: {path} does not exist");
        for dependency in kustomization["spec"]["dependsOn"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            let name = dependency["name"].as_str().expect("named dependency");
            assert!(names.contains(&name), "{file}: depends on unknown {name}");
        }
    }
}

#[test]
fn every_source_reference_names_a_source_defined_here() {
    let sources: Vec<String> = of_kind("GitRepository")
        .iter()
        .map(|(_, source)| {
            source["metadata"]["name"]
                .as_str()
                .expect("named")
                .to_string()
        })
        .collect();
    for (file, document) in flux_documents() {
        let reference = match document["kind"].as_str() {
            Some("Kustomization") => &document["spec"]["sourceRef"],
            Some("HelmRelease") => &document["spec"]["chart"]["spec"]["sourceRef"],
            _ => continue,
        };
        assert_eq!(reference["kind"], "GitRepository", "{file}");
        let name = reference["name"].as_str().expect("a source name");
        assert!(
            sources.iter().any(|source| source == name),
            "{file}: no GitRepository {name}"
        );
    }
}
