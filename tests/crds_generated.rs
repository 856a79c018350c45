//! `crds/` must be exactly what `rolecall crd` prints, so nobody edits it by hand or forgets
//! to regenerate it after changing the Rust types.

use std::path::Path;

#[path = "common/schema.rs"]
mod schema;

#[test]
fn every_schema_field_has_a_description() {
    let mut missing = Vec::new();
    let mut count = 0;
    for node in schema::object_nodes() {
        for (name, description) in &node.fields {
            count += 1;
            if description.trim().is_empty() {
                missing.push(format!("{}.{name}", node.explain_path()));
            }
        }
    }
    assert!(
        count > 100,
        "only {count} fields found: is the walk broken?"
    );
    assert!(
        missing.is_empty(),
        "schema fields without a description (add a doc comment):\n{}",
        missing.join("\n")
    );
}

#[test]
fn checked_in_crds_match_the_rust_types() {
    assert_directory_matches("crds");
}

#[test]
fn helm_chart_crds_match_the_rust_types() {
    assert_directory_matches("charts/rolecall/crds");
}

fn assert_directory_matches(relative: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    let generated = rolecall::api::crds();
    let mut expected_files = Vec::new();
    for crd in &generated {
        let file = rolecall::api::crd_file_name(crd);
        let want = serde_norway::to_string(crd).unwrap();
        let have = std::fs::read_to_string(dir.join(&file)).unwrap_or_default();
        assert!(
            have == want,
            "{relative}/{file} differs from the Rust types; regenerate with `scripts/gen-crds.sh`"
        );
        expected_files.push(file);
    }
    let mut present: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    present.sort();
    expected_files.sort();
    assert_eq!(
        present, expected_files,
        "{relative}/ holds files no CRD generates"
    );
}

#[test]
fn crd_subcommand_prints_every_checked_in_crd() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rolecall"))
        .arg("crd")
        .output()
        .expect("rolecall crd runs");
    assert!(output.status.success());
    let printed = String::from_utf8(output.stdout).unwrap();
    assert_eq!(printed, rolecall::api::crds_yaml());
    for kind in [
        "IamPolicy",
        "IamRole",
        "InstanceProfile",
        "Ec2InstanceBinding",
    ] {
        assert!(
            printed.contains(&format!("kind: {kind}\n")),
            "{kind} missing from `rolecall crd`"
        );
    }
}
