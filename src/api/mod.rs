//! The rolecall API (`iam.rolecall.dev/v1alpha1`): the AWS kinds, the platform's Tenancy, the
//! shared policy document, and their CustomResourceDefinitions.

// Repeated `printcolumn(type_ = ...)` and `category` arguments of `#[kube]` are distinct
// entries, not duplicates.
#![allow(clippy::duplicated_attributes)]

pub mod binding;
pub mod common;
pub mod document;
pub mod group;
pub mod instance_profile;
pub mod password_policy;
pub mod policy;
pub mod report;
pub mod role;
pub mod tenancy;
pub mod user;

pub use binding::{Ec2InstanceBinding, Ec2InstanceBindingSpec, Ec2InstanceBindingStatus};
pub use common::{CommonStatus, DeletionPolicy, LocalObjectReference};
pub use document::{Effect, OneOrMany, PolicyDocument, Principal, Statement};
pub use group::{IamGroup, IamGroupSpec, IamGroupStatus};
pub use instance_profile::{InstanceProfile, InstanceProfileSpec, InstanceProfileStatus};
pub use password_policy::{
    AccountPasswordPolicy, AccountPasswordPolicySpec, AccountPasswordPolicyStatus,
};
pub use policy::{IamPolicy, IamPolicySpec, IamPolicyStatus};
pub use report::{AccountSecurityReport, AccountSecurityReportSpec, AccountSecurityReportStatus};
pub use role::{IamRole, IamRoleSpec, IamRoleStatus};
pub use tenancy::{Tenancy, TenancySpec};
pub use user::{IamUser, IamUserSpec, IamUserStatus};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, ValidationRule,
};
use kube::CustomResourceExt;

pub const GROUP: &str = "iam.rolecall.dev";
pub const VERSION: &str = "v1alpha1";

/// The CRDs of the AWS kinds, the platform team's Tenancy and the account security report,
/// in dependency order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        with_default_name_limit(IamPolicy::crd(), 128),
        with_default_name_limit(IamRole::crd(), 64),
        with_default_name_limit(InstanceProfile::crd(), 128),
        Ec2InstanceBinding::crd(),
        with_default_name_limit(IamGroup::crd(), 128),
        with_default_name_limit(IamUser::crd(), 64),
        Tenancy::crd(),
        AccountPasswordPolicy::crd(),
        AccountSecurityReport::crd(),
    ]
}

/// The CRDs as one multi-document YAML stream, exactly as `crds/` holds them.
pub fn crds_yaml() -> String {
    crds()
        .iter()
        .map(|crd| serde_norway::to_string(crd).expect("a CRD always serializes"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// File name under `crds/` for a CRD: `<plural>.<group>.yaml`.
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or_default())
}

// The AWS name defaults to metadata.name, which Kubernetes allows up to 253 characters; IAM
// allows fewer, so the limit must be checked at the root where both are visible.
fn with_default_name_limit(
    mut crd: CustomResourceDefinition,
    max: usize,
) -> CustomResourceDefinition {
    let rule = ValidationRule {
        rule: format!("has(self.spec.name) || size(self.metadata.name) <= {max}"),
        message: Some(format!(
            "metadata.name is longer than the {max} characters IAM allows; set spec.name"
        )),
        field_path: Some(".spec.name".into()),
        ..ValidationRule::default()
    };
    for version in &mut crd.spec.versions {
        let root: &mut JSONSchemaProps = version
            .schema
            .as_mut()
            .and_then(|validation| validation.open_api_v3_schema.as_mut())
            .expect("derived CRDs carry a schema");
        root.x_kubernetes_validations
            .get_or_insert_with(Vec::new)
            .push(rule.clone());
    }
    crd
}
