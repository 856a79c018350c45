//! `AccountSecurityReport`: a live security report of one AWS account, written to status on
//! an interval. Cluster-scoped, like the Tenancy: an account is the platform team's concern,
//! not a namespace's.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::CommonStatus;
use super::tenancy::AccountAccess;

/// A duration as the operator's flags take it: `90s`, `30m`, `1h30m`, or a number of seconds.
pub const DURATION_PATTERN: &str = r"^([0-9]+|([0-9]+(ms|s|m|h|d) ?)+)$";

/// The interval when the spec sets none.
pub const DEFAULT_INTERVAL: &str = "1h";

/// The condition saying whether every check passes (`Ready` says the report ran).
pub const COMPLIANT: &str = "Compliant";

/// The IAM security checks of an AWS account (the IAM console's security recommendations and
/// the CIS AWS Foundations IAM controls, under Prowler's check ids), run on an interval and
/// written to status. It reads the account and writes nothing to it; the one call that asks
/// AWS to do anything is GenerateCredentialReport.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "iam.rolecall.dev",
    version = "v1alpha1",
    kind = "AccountSecurityReport",
    plural = "accountsecurityreports",
    status = "AccountSecurityReportStatus",
    shortname = "secreport",
    category = "rolecall",
    doc = "The IAM security checks of an AWS account (CIS AWS Foundations, Prowler's check \
           ids), run on an interval; results, offenders and since when are in status.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Compliant",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Compliant")].status"#
    ),
    printcolumn(name = "Passed", type_ = "integer", json_path = ".status.passed"),
    printcolumn(name = "Failed", type_ = "integer", json_path = ".status.failed"),
    printcolumn(
        name = "Unknown",
        type_ = "integer",
        json_path = ".status.unknown",
        priority = 1
    ),
    printcolumn(
        name = "Account",
        type_ = "string",
        json_path = ".status.account",
        priority = 1
    ),
    printcolumn(name = "Last Run", type_ = "date", json_path = ".status.lastRun"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AccountSecurityReportSpec {
    /// How often the checks run: `1h` (the default), `30m`, `1h30m`, or a number of seconds;
    /// at least one minute.
    /// IAM regenerates the credential report at most every 4 hours, so the checks that read
    /// it (console users' MFA, unused and old credentials) may lag by up to that much.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32), pattern(DURATION_PATTERN))]
    pub interval: Option<String>,

    /// The account to report on, reached by assuming a role there (the role needs the read
    /// calls of deploy/aws-iam-policy.json). Absent: the operator's own account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountAccess>,
}

impl AccountSecurityReportSpec {
    /// The interval as written, or the default.
    pub fn interval_text(&self) -> &str {
        self.interval.as_deref().unwrap_or(DEFAULT_INTERVAL)
    }
}

/// What a check found.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum CheckResult {
    /// The account meets the check.
    Pass,
    /// It does not: `offenders` names who, `reason` says why.
    Fail,
    /// The check could not be evaluated (a read failed or was refused): `reason` says why.
    Unknown,
}

/// One check's outcome.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckStatus {
    /// Prowler's check id where Prowler has the check (`iam_root_mfa_enabled`); rolecall's
    /// own id, in the same style, for the console recommendations Prowler lacks.
    pub id: String,

    /// What the check asks for, in words.
    pub title: String,

    /// Pass, Fail or Unknown.
    pub result: CheckResult,

    /// Why, in words: what was found, and for a Fail what to do.
    pub reason: String,

    /// The users, policies or groups that fail the check, by name (`<root_account>` for the
    /// root user).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offenders: Vec<String>,

    /// When the result last changed.
    pub since: Time,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountSecurityReportStatus {
    #[serde(flatten)]
    pub common: CommonStatus,

    /// When the checks last ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<Time>,

    /// When IAM generated the credential report the last run read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_report_generated: Option<Time>,

    /// Checks that passed.
    #[serde(default)]
    pub passed: u32,

    /// Checks that failed.
    #[serde(default)]
    pub failed: u32,

    /// Checks that could not be evaluated.
    #[serde(default)]
    pub unknown: u32,

    /// One entry per check, in a fixed order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckStatus>,
}
