//! `Tenancy`: the rules a platform team sets for the namespaces it hands to application
//! teams. Cluster-scoped, so a tenant who may write rolecall objects in a namespace cannot
//! write the rules that govern them.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{IAM_PATH_PATTERN, POLICY_ARN_PATTERN};

/// A name glob: IAM's name characters plus `*` (any run) and `?` (one character).
pub const NAME_GLOB_PATTERN: &str = r"^[A-Za-z0-9+=,.@_*?-]{1,128}$";

/// A 12-digit AWS account id.
pub const ACCOUNT_ID_PATTERN: &str = r"^[0-9]{12}$";

/// The IAM path prefix a namespace gets when no Tenancy sets one: `/rolecall/<namespace>/`.
pub const DEFAULT_PATH_ROOT: &str = "/rolecall/";

/// What the namespaces a platform team selects may do with rolecall. A namespace no Tenancy
/// selects gets the safe defaults described in the README (its own IAM path, service and
/// same-account trust only, no adoption, no references to unmanaged names, no instances).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "iam.rolecall.dev",
    version = "v1alpha1",
    kind = "Tenancy",
    plural = "tenancies",
    shortname = "tenancy",
    category = "rolecall",
    doc = "Rules a platform team sets for the namespaces it selects: where their IAM objects \
           live, what they may grant and trust, and which existing AWS objects and EC2 \
           instances they may reach.",
    printcolumn(name = "Path", type_ = "string", json_path = ".spec.path"),
    printcolumn(
        name = "Boundary",
        type_ = "string",
        json_path = ".spec.permissionsBoundary",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TenancySpec {
    /// The namespaces these rules govern, by label (`kubernetes.io/metadata.name` selects one
    /// namespace by name). A namespace selected by two Tenancies may do nothing until only
    /// one selects it.
    pub namespace_selector: LabelSelector,

    /// IAM path every role, policy and instance profile of these namespaces lives under, such
    /// as `/rolecall/web/`. A spec may name a deeper path, never another one. Defaults to
    /// `/rolecall/<namespace>/`. The operator's AWS policy must cover it (see
    /// deploy/aws-iam-policy.json).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512), pattern(IAM_PATH_PATTERN))]
    pub path: Option<String>,

    /// Prefix every IAM name of these namespaces must start with, such as `web-`. IAM names
    /// are unique per account whatever their path, so a prefix is what keeps tenants from
    /// claiming each other's names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32), pattern(r"^[A-Za-z0-9+=,.@_-]+$"))]
    pub name_prefix: Option<String>,

    /// ARN of a managed policy every role of these namespaces carries as its permissions
    /// boundary. A role's spec may omit it (it is applied) or repeat it, never name another
    /// or drop it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(POLICY_ARN_PATTERN), length(max = 2048))]
    pub permissions_boundary: Option<String>,

    /// Managed policies roles may attach by ARN (`managedPolicyArns`), as globs such as
    /// `arn:aws:iam::aws:policy/ReadOnlyAccess` or `arn:aws:iam::*:policy/shared/*`. Policies
    /// on the namespace's own path are always allowed. Default: none other.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(min = 1, max = 2048)))]
    pub managed_policies: Vec<String>,

    /// Whether policy documents may grant what IAM linters flag as privilege escalation:
    /// `*` actions, `iam:*`, `iam:PassRole` or `sts:AssumeRole` on any resource,
    /// `iam:Create*`, `iam:Put*` or `iam:Attach*` on any resource, and `NotAction` allows.
    /// Default: false.
    #[serde(default)]
    pub allow_privilege_escalation: bool,

    /// Who roles may trust.
    #[serde(default)]
    pub trust: TrustRules,

    /// IAM objects made outside these namespaces that their objects may name.
    #[serde(default)]
    pub references: ReferenceRules,

    /// EC2 instances these namespaces may bind. Absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<InstanceRules>,

    /// Existing AWS objects without a rolecall owner tag that these namespaces may take over
    /// with the `rolecall.dev/adopt: "true"` annotation. Default: none.
    #[serde(default)]
    pub adopt: AdoptionRules,

    /// The AWS account these namespaces live in, reached by assuming a role there. Absent:
    /// the operator's own account. Objects of these namespaces never reach another account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountAccess>,
}

/// How rolecall acts in another account: STS AssumeRole, with credentials cached and
/// refreshed before they expire.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountAccess {
    /// ARN of the role to assume, such as `arn:aws:iam::210987654321:role/rolecall`. Its
    /// trust policy must trust the operator's own identity; its permissions are the
    /// operator's in that account (deploy/aws-iam-policy.json).
    #[schemars(pattern(ROLE_ARN_PATTERN), length(max = 2048))]
    pub role_arn: String,

    /// The external id the role's trust policy requires (`sts:ExternalId`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 1224), pattern(r"^[\w+=,.@:/-]+$"))]
    pub external_id: Option<String>,
}

/// A role ARN, in any partition: the account is read from it.
pub const ROLE_ARN_PATTERN: &str = r"^arn:aws(-cn|-us-gov|-iso|-iso-b)?:iam::[0-9]{12}:role/([\x21-\x7E]{0,510}/)?[A-Za-z0-9+=,.@_-]{1,64}$";

impl AccountAccess {
    /// The account id in the role's ARN.
    pub fn account_id(&self) -> &str {
        self.role_arn.split(':').nth(4).unwrap_or_default()
    }

    /// `arn:<partition>:iam::<account>:`, the prefix of that account's IAM ARNs.
    pub fn iam_arn_prefix(&self) -> String {
        let partition = self.role_arn.split(':').nth(1).unwrap_or("aws");
        format!("arn:{partition}:iam::{}:", self.account_id())
    }
}

/// Principals a trust policy may name. `"*"` (anyone) is never allowed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrustRules {
    /// Service principals, as globs (`ec2.amazonaws.com`, `*.amazonaws.com`). Default: every
    /// AWS service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100), inner(length(min = 1, max = 128)))]
    pub services: Option<Vec<String>>,

    /// AWS accounts whose principals may be trusted, besides the operator's own account
    /// (always allowed). Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(pattern(ACCOUNT_ID_PATTERN)))]
    pub accounts: Vec<String>,

    /// Federated principals (OIDC or SAML provider ARNs), as globs. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(min = 1, max = 2048)))]
    pub federated: Vec<String>,
}

/// Names of IAM objects not made by these namespaces that specs may refer to by name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceRules {
    /// Roles an InstanceProfile may hold by `roleName`, as name globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(pattern(NAME_GLOB_PATTERN)))]
    pub roles: Vec<String>,

    /// Instance profiles an Ec2InstanceBinding may associate by `instanceProfileName`, as
    /// name globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(pattern(NAME_GLOB_PATTERN)))]
    pub instance_profiles: Vec<String>,

    /// IAM groups an IamUser may join by `groupNames`, as name globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(pattern(NAME_GLOB_PATTERN)))]
    pub groups: Vec<String>,
}

/// The EC2 instances that bindings may reach.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRules {
    /// Tags an instance must carry, every one (values may use `*` and `?`). Empty: every
    /// instance of the account, for a platform-owned namespace only.
    #[serde(default)]
    #[schemars(extend("maxProperties" = 50))]
    pub match_tags: BTreeMap<String, String>,

    /// Whether a binding may replace an instance's association with a profile that
    /// rolecall does not own for this namespace (one made outside rolecall). Default: false,
    /// and the instance is reported as a Conflict.
    #[serde(default)]
    pub replace_unowned_associations: bool,
}

/// Name globs of untagged AWS objects that may be adopted, per kind.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdoptionRules {
    /// Role names (globs) an IamRole may adopt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(pattern(NAME_GLOB_PATTERN)))]
    pub roles: Vec<String>,

    /// Customer managed policy names (globs) an IamPolicy may adopt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(pattern(NAME_GLOB_PATTERN)))]
    pub policies: Vec<String>,

    /// Instance profile names (globs) an InstanceProfile may adopt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(pattern(NAME_GLOB_PATTERN)))]
    pub instance_profiles: Vec<String>,

    /// Group names (globs) an IamGroup may adopt. IAM groups carry no tags: a group exists as
    /// this object's only once rolecall created or adopted it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(pattern(NAME_GLOB_PATTERN)))]
    pub groups: Vec<String>,

    /// User names (globs) an IamUser may adopt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(pattern(NAME_GLOB_PATTERN)))]
    pub users: Vec<String>,
}
