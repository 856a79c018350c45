//! The account security report: an account snapshot read from IAM (`read_snapshot`), the
//! checks evaluated over it as pure code (`checks`), and the controller that runs them on
//! each report's interval (`controller`).

pub mod checks;
pub mod controller;

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::aws::Iam;
use crate::aws::iam::account::{
    AccountSummary, AuthorizationDetails, CredentialReportFile, CredentialReportState,
    PasswordPolicy,
};

/// A source the checks read, or why it could not be read (the checks on it are Unknown).
pub type Sourced<T> = Result<T, String>;

/// Everything the checks look at, read at one moment.
#[derive(Clone, Debug)]
pub struct AccountSnapshot {
    pub now: Timestamp,
    pub summary: Sourced<AccountSummary>,
    pub credential_report: Sourced<CredentialReport>,
    /// `None`: the account has no password policy.
    pub password_policy: Sourced<Option<PasswordPolicy>>,
    /// ARNs of the users assigned a virtual MFA device.
    pub virtual_mfa_users: Sourced<Vec<String>>,
    pub authorization: Sourced<AuthorizationDetails>,
}

/// The root user's name in the credential report.
pub const ROOT_ACCOUNT: &str = "<root_account>";

/// The credential report, parsed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CredentialReport {
    pub generated: Option<Timestamp>,
    /// The `<root_account>` row, when the report has one.
    pub root: Option<Credentials>,
    pub users: Vec<Credentials>,
}

/// One row of the credential report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Credentials {
    pub user: String,
    pub created: Option<Timestamp>,
    /// The user can sign in to the console (has a login profile).
    pub password_enabled: bool,
    pub password_last_used: Option<Timestamp>,
    pub password_last_changed: Option<Timestamp>,
    pub mfa_active: bool,
    pub access_keys: [AccessKey; 2],
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct AccessKey {
    pub active: bool,
    pub last_rotated: Option<Timestamp>,
    pub last_used: Option<Timestamp>,
}

impl CredentialReport {
    /// Parses IAM's CSV (columns by header name, so added columns do no harm). Dates IAM
    /// writes as `N/A`, `no_information` or `not_supported` are `None`.
    pub fn parse(csv: &[u8], generated: Option<Timestamp>) -> Result<Self, String> {
        let mut reader = csv::Reader::from_reader(csv);
        let headers = reader
            .headers()
            .map_err(|error| format!("the credential report is not CSV: {error}"))?
            .clone();
        let column = |name: &str| {
            headers
                .iter()
                .position(|header| header == name)
                .ok_or_else(|| format!("the credential report has no column {name}"))
        };
        let user = column("user")?;
        let created = column("user_creation_time")?;
        let password_enabled = column("password_enabled")?;
        let password_last_used = column("password_last_used")?;
        let password_last_changed = column("password_last_changed")?;
        let mfa_active = column("mfa_active")?;
        let mut keys = Vec::new();
        for key in ["access_key_1", "access_key_2"] {
            keys.push((
                column(&format!("{key}_active"))?,
                column(&format!("{key}_last_rotated"))?,
                column(&format!("{key}_last_used_date"))?,
            ));
        }
        let mut report = CredentialReport {
            generated,
            ..Self::default()
        };
        for record in reader.records() {
            let record =
                record.map_err(|error| format!("the credential report is not CSV: {error}"))?;
            let field = |index: usize| record.get(index).unwrap_or_default();
            let key = |(active, rotated, used): (usize, usize, usize)| AccessKey {
                active: field(active) == "true",
                last_rotated: date(field(rotated)),
                last_used: date(field(used)),
            };
            let row = Credentials {
                user: field(user).to_owned(),
                created: date(field(created)),
                password_enabled: field(password_enabled) == "true",
                password_last_used: date(field(password_last_used)),
                password_last_changed: date(field(password_last_changed)),
                mfa_active: field(mfa_active) == "true",
                access_keys: [key(keys[0]), key(keys[1])],
            };
            if row.user == ROOT_ACCOUNT {
                report.root = Some(row);
            } else {
                report.users.push(row);
            }
        }
        Ok(report)
    }
}

fn date(text: &str) -> Option<Timestamp> {
    text.parse().ok()
}

/// How long to wait for IAM to finish a credential report before giving up on this run.
const REPORT_WAIT: Duration = Duration::from_secs(20);

/// Reads the account. A source that fails is recorded as unreadable, never fatal: the other
/// checks still run.
pub async fn read_snapshot(iam: &Iam) -> AccountSnapshot {
    let (summary, credential_report, password_policy, virtual_mfa_users, authorization) = tokio::join!(
        iam.account_summary(),
        credential_report(iam),
        iam.password_policy(),
        iam.virtual_mfa_users(),
        iam.authorization_details(),
    );
    AccountSnapshot {
        now: Timestamp::now(),
        summary: summary.map_err(|error| error.to_string()),
        credential_report,
        password_policy: password_policy.map_err(|error| error.to_string()),
        virtual_mfa_users: virtual_mfa_users.map_err(|error| error.to_string()),
        authorization: authorization.map_err(|error| error.to_string()),
    }
}

/// The credential report, waiting (1 s, doubling) while IAM generates it.
async fn credential_report(iam: &Iam) -> Sourced<CredentialReport> {
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_secs(1);
    loop {
        match iam.credential_report().await {
            Ok(CredentialReportState::Ready(CredentialReportFile { csv, generated })) => {
                let generated = generated.and_then(|secs| Timestamp::from_second(secs).ok());
                return CredentialReport::parse(&csv, generated);
            }
            Ok(CredentialReportState::Generating) if started.elapsed() < REPORT_WAIT => {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            Ok(CredentialReportState::Generating) => {
                return Err(format!(
                    "IAM was still generating the credential report after {}s; the next run reads it",
                    REPORT_WAIT.as_secs()
                ));
            }
            Err(error) => return Err(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated";

    #[test]
    fn the_credential_report_parses_root_and_users_and_not_a_date_as_none() {
        let csv = format!(
            "{HEADER}\n\
             <root_account>,arn:aws:iam::123456789012:root,2020-01-01T00:00:00+00:00,not_supported,2026-11-30T10:00:00+00:00,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n\
             \"ops,eu\",arn:aws:iam::123456789012:user/ops,2024-05-01T08:00:00+00:00,true,no_information,2024-05-01T08:00:00+00:00,N/A,false,true,2024-05-01T08:00:00+00:00,2026-11-01T00:00:00+00:00,us-east-1,s3,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n"
        );
        let report = CredentialReport::parse(csv.as_bytes(), None).unwrap();
        let root = report.root.unwrap();
        assert!(root.mfa_active && !root.access_keys[0].active);
        assert_eq!(report.users.len(), 1);
        let ops = &report.users[0];
        assert_eq!(ops.user, "ops,eu");
        assert!(ops.password_enabled && !ops.mfa_active);
        assert_eq!(ops.password_last_used, None);
        assert!(ops.access_keys[0].active && !ops.access_keys[1].active);
        assert_eq!(
            ops.access_keys[0].last_used,
            Some("2026-11-01T00:00:00Z".parse().unwrap())
        );
    }

    #[test]
    fn a_report_missing_a_column_is_refused_naming_it() {
        let error = CredentialReport::parse(b"user,arn\nalice,arn:x\n", None).unwrap_err();
        assert!(error.contains("user_creation_time"), "{error}");
    }
}
