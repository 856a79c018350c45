//! The instance's live IAM state: its profile association (EC2), the profile's role (IAM), and
//! credentials for that role minted with STS AssumeRole, cached per role until shortly before
//! they expire. The association is read on every request, so unbinding takes effect at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Mutex;

use super::protocol::SessionCredentials;
use crate::aws::{AwsClients, AwsError, CallLog, Ec2};

/// How long minted credentials last: EC2 hands out role credentials for about an hour.
pub const SESSION_DURATION: Duration = Duration::from_secs(3600);

/// The instance profile associated with the instance, and the role it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    pub profile_arn: String,
    pub profile_id: String,
    /// `None` for a profile without a role.
    pub role: Option<Role>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub arn: String,
}

/// Reads the instance's binding and mints credentials for its role.
#[derive(Debug)]
pub struct LiveCredentials {
    clients: AwsClients,
    /// The operator's EC2 calls, so the association is read as the operator reads it.
    ec2: Ec2,
    instance_id: String,
    refresh_margin: Duration,
    /// Role ARN → the credentials last minted for it. Held across AssumeRole so that concurrent
    /// requests mint once.
    cache: Mutex<HashMap<String, SessionCredentials>>,
}

impl LiveCredentials {
    pub fn new(clients: AwsClients, instance_id: String, refresh_margin: Duration) -> Self {
        Self {
            // The mock's own count of its calls, which nothing reads.
            ec2: Ec2::new(clients.ec2.clone(), Arc::new(CallLog::default())),
            clients,
            instance_id,
            refresh_margin,
            cache: Mutex::default(),
        }
    }

    /// The profile associated (or being associated) with the instance, if any.
    pub async fn binding(&self) -> Result<Option<Binding>, AwsError> {
        let Some(profile_arn) = self.associated_profile_arn().await? else {
            return Ok(None);
        };
        let name = profile_name(&profile_arn);
        let answer = match self
            .clients
            .iam
            .get_instance_profile()
            .instance_profile_name(name)
            .send()
            .await
        {
            Ok(answer) => answer,
            Err(error) => {
                let error = AwsError::from_sdk("iam:GetInstanceProfile", error);
                if error.is_not_found() {
                    // Deleted while still associated: EC2 serves no credentials either.
                    tracing::warn!(%profile_arn, "associated instance profile does not exist");
                    return Ok(None);
                }
                return Err(error);
            }
        };
        let Some(profile) = answer.instance_profile() else {
            return Ok(None);
        };
        Ok(Some(Binding {
            profile_arn,
            profile_id: profile.instance_profile_id().to_owned(),
            role: profile.roles().first().map(|role| Role {
                name: role.role_name().to_owned(),
                arn: role.arn().to_owned(),
            }),
        }))
    }

    async fn associated_profile_arn(&self) -> Result<Option<String>, AwsError> {
        // Associating and associated ones only: while an association is replaced the old one
        // is "disassociating" and the new one "associating", the instance's profile.
        let associations = self
            .ec2
            .associations(std::slice::from_ref(&self.instance_id))
            .await?;
        Ok(associations
            .into_iter()
            .map(|association| association.profile_arn)
            .find(|arn| !arn.is_empty()))
    }

    /// Credentials for `role`: the cached ones while they are fresh, else newly minted.
    pub async fn credentials(&self, role: &Role) -> Result<SessionCredentials, AwsError> {
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.get(&role.arn)
            && is_fresh(cached.expiration, SystemTime::now(), self.refresh_margin)
        {
            return Ok(cached.clone());
        }
        let minted = self.assume_role(role).await?;
        tracing::info!(
            role = %role.name,
            expiration = %super::protocol::timestamp(minted.expiration),
            "minted credentials"
        );
        cache.insert(role.arn.clone(), minted.clone());
        Ok(minted)
    }

    async fn assume_role(&self, role: &Role) -> Result<SessionCredentials, AwsError> {
        let issued = SystemTime::now();
        let answer = self
            .clients
            .sts
            .assume_role()
            .role_arn(&role.arn)
            .role_session_name(&self.instance_id)
            .duration_seconds(SESSION_DURATION.as_secs() as i32)
            .send()
            .await
            .map_err(|error| AwsError::from_sdk("sts:AssumeRole", error))?;
        let Some(credentials) = answer.credentials() else {
            return Err(AwsError {
                operation: "sts:AssumeRole",
                class: crate::aws::ErrorClass::Transient,
                code: None,
                message: "the answer holds no credentials".into(),
            });
        };
        let expiration =
            SystemTime::try_from(*credentials.expiration()).unwrap_or(issued + SESSION_DURATION);
        Ok(SessionCredentials {
            access_key_id: credentials.access_key_id().to_owned(),
            secret_access_key: credentials.secret_access_key().to_owned(),
            session_token: credentials.session_token().to_owned(),
            expiration,
            issued,
        })
    }
}

/// Whether credentials expiring at `expiration` may still be handed out at `now`: not within
/// `margin` of expiring, so a client that caches them until `Expiration` never holds dead ones.
pub fn is_fresh(expiration: SystemTime, now: SystemTime, margin: Duration) -> bool {
    expiration
        .duration_since(now)
        .is_ok_and(|left| left > margin)
}

/// The name in an instance profile ARN (`arn:aws:iam::123456789012:instance-profile/path/name`).
pub fn profile_name(arn: &str) -> &str {
    arn.rsplit_once('/').map_or(arn, |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_reused_until_the_margin_before_expiration() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let margin = Duration::from_secs(300);
        assert!(is_fresh(now + Duration::from_secs(3600), now, margin));
        assert!(is_fresh(now + Duration::from_secs(301), now, margin));
        assert!(!is_fresh(now + Duration::from_secs(300), now, margin));
        assert!(!is_fresh(now + Duration::from_secs(10), now, margin));
        assert!(!is_fresh(now - Duration::from_secs(10), now, margin));
    }

    #[test]
    fn profile_names_come_from_the_arn_with_or_without_path() {
        assert_eq!(
            profile_name("arn:aws:iam::123456789012:instance-profile/app"),
            "app"
        );
        assert_eq!(
            profile_name("arn:aws:iam::123456789012:instance-profile/team/a/app"),
            "app"
        );
    }
}
