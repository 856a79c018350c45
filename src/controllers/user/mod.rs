//! `IamUser`: observe the user with its groups, policies, login profile, access keys and MFA
//! devices, plan the difference, apply it. Credentials go to Secrets of the user's namespace
//! (`secrets`); the console password is generated (`password`) and written once; access keys
//! rotate by a pure plan (`keys`).
//!
//! A password is never reset on rolecall's own initiative: when the login profile exists but
//! its Secret is gone, Ready is False (PasswordSecretMissing) until the
//! `rolecall.dev/reset-password` annotation asks for a new one. IAM keeps no copy of a
//! password, so a reset is the only way back, and it locks out whoever knows the old one.

pub mod keys;
pub mod password;
pub mod secrets;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};

use super::permissions::permission_changes;
use super::role::{check_attachable, inline_policies, resolve_policy_refs};
use super::stores::Stores;
use super::tags::{Tags, desired_tags, tag_changes};
use super::{Managed, claim_existing, is_ready, left_to_its_owner};
use crate::api::user::{AccessKeyStatus, ConsoleAccessStatus};
use crate::api::{DeletionPolicy, IamUser, IamUserStatus, PolicyDocument};
use crate::aws::iam::account::PasswordPolicy;
use crate::aws::iam::users::{AccessKey, LoginProfile, NewUser, ObservedUser};
use crate::conditions::{RESET_PASSWORD_ANNOTATION, Readiness, reason};
use crate::context::Context;
use crate::error::Error;
use crate::tenancy::{AwsKind, Rules};
use keys::{KeyChange, KeyRules};

/// IAM's limit on the combined size of a user's inline policies.
pub const USER_INLINE_POLICIES_MAX_CHARS: usize = 2048;

/// Console access as the spec asks for it (present only when enabled).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Console {
    pub secret: String,
    pub password_reset_required: bool,
    /// The reset annotation's value when it asks for a reset not yet made.
    pub reset_request: Option<String>,
}

/// Programmatic access as the spec asks for it (present only when enabled).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    pub secret: String,
    pub rules: KeyRules,
}

/// The user the spec asks for, with references resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub name: String,
    pub path: String,
    pub permissions_boundary: Option<String>,
    pub groups: BTreeSet<String>,
    pub managed_policy_arns: BTreeSet<String>,
    pub inline_policies: BTreeMap<String, (PolicyDocument, String)>,
    pub tags: Tags,
    pub console: Option<Console>,
    pub keys: Option<Keys>,
    /// The reset request last acted on, from status.
    pub reset_recorded: Option<String>,
    /// The Secrets status records rolecall wrote the password and the access key to.
    pub recorded_password_secret: Option<String>,
    pub recorded_key_secret: Option<String>,
}

/// The user as IAM has it, and its Secrets.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// When these reads were made (seconds since the epoch): key ages count to here.
    pub now: i64,
    pub user: Option<ObservedUser>,
    pub groups: BTreeSet<String>,
    pub attached: BTreeSet<String>,
    /// Inline policy name to raw (URL-encoded) document.
    pub inline: BTreeMap<String, String>,
    pub login_profile: Option<LoginProfile>,
    /// Read only when a password is to be generated.
    pub password_policy: Option<PasswordPolicy>,
    /// Whether the password Secret exists (this user's) and holds a password.
    pub password_in_secret: bool,
    pub access_keys: Vec<AccessKey>,
    /// Key id to when it was last used.
    pub last_used: BTreeMap<String, i64>,
    /// The key id the access key Secret holds.
    pub key_in_secret: Option<String>,
    pub mfa_devices: Vec<String>,
}

/// Every write the IamUser reconciler can make (to IAM, and the Secrets with it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserAction {
    Create,
    PutPermissionsBoundary {
        arn: String,
    },
    DeletePermissionsBoundary,
    Tag {
        tags: Tags,
    },
    Untag {
        keys: Vec<String>,
    },
    AddToGroup {
        group: String,
    },
    RemoveFromGroup {
        group: String,
    },
    AttachPolicy {
        arn: String,
    },
    DetachPolicy {
        arn: String,
    },
    PutInlinePolicy {
        name: String,
    },
    DeleteInlinePolicy {
        name: String,
    },
    /// Generate a password for `policy`, write it to the Secret, then CreateLoginProfile.
    CreateLoginProfile {
        policy: Option<PasswordPolicy>,
    },
    /// Generate a new password, write it to the Secret, then UpdateLoginProfile.
    ResetPassword {
        policy: Option<PasswordPolicy>,
    },
    DeleteLoginProfile,
    /// CreateAccessKey, then write the key to the Secret.
    CreateAccessKey,
    DeleteAccessKey {
        id: String,
    },
    /// Delete a Secret rolecall wrote credentials to that no access uses any more (only if
    /// it is still rolecall's Secret of this user).
    DeleteSecret {
        name: String,
    },
}

pub type Plan = super::Plan<UserAction, IamUserStatus>;

fn time(seconds: i64) -> Option<Time> {
    Timestamp::from_second(seconds).ok().map(Time)
}

/// Pure: the writes, and the status they leave (a user still to be created has its ARN and id
/// from CreateUser; a key still to be created is added by its apply).
pub fn plan(desired: &Desired, observed: &Observed) -> Plan {
    let mut actions = Vec::new();
    match &observed.user {
        None => actions.push(UserAction::Create),
        Some(user) => {
            match (&desired.permissions_boundary, &user.permissions_boundary) {
                (Some(want), have) if Some(want) != have.as_ref() => {
                    actions.push(UserAction::PutPermissionsBoundary { arn: want.clone() })
                }
                (None, Some(_)) => actions.push(UserAction::DeletePermissionsBoundary),
                _ => {}
            }
            let (set, remove) = tag_changes(&desired.tags, &user.tags);
            if !set.is_empty() {
                actions.push(UserAction::Tag { tags: set });
            }
            if !remove.is_empty() {
                actions.push(UserAction::Untag { keys: remove });
            }
        }
    }
    actions.extend(desired.groups.difference(&observed.groups).map(|group| {
        UserAction::AddToGroup {
            group: group.clone(),
        }
    }));
    actions.extend(observed.groups.difference(&desired.groups).map(|group| {
        UserAction::RemoveFromGroup {
            group: group.clone(),
        }
    }));
    let changes = permission_changes(
        &desired.managed_policy_arns,
        &desired.inline_policies,
        &observed.attached,
        &observed.inline,
    );
    actions.extend(
        changes
            .attach
            .into_iter()
            .map(|arn| UserAction::AttachPolicy { arn }),
    );
    actions.extend(
        changes
            .detach
            .into_iter()
            .map(|arn| UserAction::DetachPolicy { arn }),
    );
    actions.extend(
        changes
            .put
            .into_iter()
            .map(|name| UserAction::PutInlinePolicy { name }),
    );
    actions.extend(
        changes
            .delete
            .into_iter()
            .map(|name| UserAction::DeleteInlinePolicy { name }),
    );

    let mut readiness = None;
    let mut reset_recorded = desired.reset_recorded.clone();
    let console_status = match (&desired.console, &observed.login_profile) {
        (None, None) => None,
        (None, Some(_)) => {
            actions.push(UserAction::DeleteLoginProfile);
            None
        }
        (Some(console), None) => {
            actions.push(UserAction::CreateLoginProfile {
                policy: observed.password_policy.clone(),
            });
            // A new profile answers any reset request too.
            reset_recorded = console.reset_request.clone().or(reset_recorded);
            Some(ConsoleAccessStatus {
                created: None,
                password_reset_required: console.password_reset_required,
                reset_request: reset_recorded.clone(),
            })
        }
        (Some(console), Some(profile)) => {
            let mut password_reset_required = profile.password_reset_required;
            if let Some(request) = &console.reset_request {
                actions.push(UserAction::ResetPassword {
                    policy: observed.password_policy.clone(),
                });
                reset_recorded = Some(request.clone());
                password_reset_required = console.password_reset_required;
            } else if !observed.password_in_secret {
                readiness = Some(Readiness::not_ready(
                    reason::PASSWORD_SECRET_MISSING,
                    format!(
                        "the login profile exists but Secret {} holds no password; rolecall does not \
                         reset a password on its own: set the annotation {RESET_PASSWORD_ANNOTATION} \
                         to a new value to generate a new one",
                        console.secret
                    ),
                ));
            }
            Some(ConsoleAccessStatus {
                created: time(profile.created),
                password_reset_required,
                reset_request: reset_recorded.clone(),
            })
        }
    };

    let key_changes = keys::plan(
        desired.keys.as_ref().map(|keys| &keys.rules),
        observed.now,
        &observed.access_keys,
        observed.key_in_secret.as_deref(),
    );
    let deleted: BTreeSet<&str> = key_changes
        .iter()
        .filter_map(|change| match change {
            KeyChange::Delete { id } => Some(id.as_str()),
            KeyChange::Create => None,
        })
        .collect();
    let access_keys = observed
        .access_keys
        .iter()
        .filter(|key| !deleted.contains(key.id.as_str()))
        .map(|key| AccessKeyStatus {
            access_key_id: key.id.clone(),
            state: if key.active { "Active" } else { "Inactive" }.into(),
            created: time(key.created),
            last_used: observed.last_used.get(&key.id).copied().and_then(time),
            in_secret: observed.key_in_secret.as_deref() == Some(key.id.as_str()),
        })
        .collect();
    actions.extend(key_changes.into_iter().map(|change| match change {
        KeyChange::Create => UserAction::CreateAccessKey,
        KeyChange::Delete { id } => UserAction::DeleteAccessKey { id },
    }));

    let (password_secret, access_key_secret) = credential_secrets(desired, observed, &actions);
    for recorded in [
        &desired.recorded_password_secret,
        &desired.recorded_key_secret,
    ]
    .into_iter()
    .flatten()
    {
        let in_use = [&password_secret, &access_key_secret]
            .into_iter()
            .flatten()
            .chain(desired.console.as_ref().map(|console| &console.secret))
            .chain(desired.keys.as_ref().map(|keys| &keys.secret))
            .any(|name| name == recorded);
        let planned = actions
            .iter()
            .any(|action| matches!(action, UserAction::DeleteSecret { name } if name == recorded));
        if !in_use && !planned {
            actions.push(UserAction::DeleteSecret {
                name: recorded.clone(),
            });
        }
    }

    let user = observed.user.as_ref();
    let status = IamUserStatus {
        arn: user.map(|user| user.arn.clone()),
        user_id: user.map(|user| user.user_id.clone()),
        groups: desired.groups.iter().cloned().collect(),
        attached_policy_arns: desired.managed_policy_arns.iter().cloned().collect(),
        mfa_active: !observed.mfa_devices.is_empty(),
        console_access: console_status,
        password_last_used: user.and_then(|user| user.password_last_used).and_then(time),
        access_keys,
        password_secret,
        access_key_secret,
        ..Default::default()
    };
    let groups = status.groups.len();
    let message = format!(
        "user matches the spec; in {groups} group{}{}",
        if groups == 1 { "" } else { "s" },
        if status.mfa_active {
            ""
        } else {
            "; no MFA device"
        }
    );
    let mut plan = Plan::available(actions, status, message);
    if let Some(readiness) = readiness {
        plan.readiness = readiness;
    }
    plan
}

/// The Secrets holding the user's credentials once the plan is made: the one the spec names
/// when it holds them or is about to, else the one recorded before (a renamed Secret still
/// empty leaves the credentials where they are); none for an access that is off.
fn credential_secrets(
    desired: &Desired,
    observed: &Observed,
    actions: &[UserAction],
) -> (Option<String>, Option<String>) {
    let writes = |wanted: fn(&UserAction) -> bool| actions.iter().any(wanted);
    let password = desired.console.as_ref().and_then(|console| {
        let written = writes(|action| {
            matches!(
                action,
                UserAction::CreateLoginProfile { .. } | UserAction::ResetPassword { .. }
            )
        });
        if written || observed.password_in_secret {
            Some(console.secret.clone())
        } else {
            desired.recorded_password_secret.clone()
        }
    });
    let key = desired.keys.as_ref().and_then(|keys| {
        let written = writes(|action| matches!(action, UserAction::CreateAccessKey));
        if written || observed.key_in_secret.is_some() {
            Some(keys.secret.clone())
        } else {
            desired.recorded_key_secret.clone()
        }
    });
    (password, key)
}

/// The IAM name of the user: `spec.name`, or the object's name.
pub fn user_name(user: &IamUser) -> String {
    user.spec.name.clone().unwrap_or_else(|| user.name_any())
}

/// A duration field (`90d`, `24h`, `1h30m`) in seconds.
fn seconds(field: &str, value: &str) -> Result<i64, Error> {
    humantime::parse_duration(value)
        .ok()
        .and_then(|duration| i64::try_from(duration.as_secs()).ok())
        .filter(|seconds| *seconds > 0)
        .ok_or_else(|| {
            Error::InvalidSpec(format!(
                "{field}: {value} is not a duration such as 90d, 24h or 30m"
            ))
        })
}

fn key_rules(user: &IamUser) -> Result<Option<Keys>, Error> {
    let Some(spec) = user.spec.access_key.as_ref().filter(|spec| spec.enabled) else {
        return Ok(None);
    };
    let max_age = seconds("accessKey.maxAge", &spec.max_age)?;
    let grace = seconds("accessKey.rotationGracePeriod", &spec.rotation_grace_period)?;
    if grace >= max_age {
        return Err(Error::InvalidSpec(format!(
            "accessKey.rotationGracePeriod ({}) must be shorter than accessKey.maxAge ({})",
            spec.rotation_grace_period, spec.max_age
        )));
    }
    Ok(Some(Keys {
        secret: spec.secret_name.clone(),
        rules: KeyRules { max_age, grace },
    }))
}

fn console(user: &IamUser) -> Option<Console> {
    let spec = user
        .spec
        .console_access
        .as_ref()
        .filter(|spec| spec.enabled)?;
    let recorded = recorded_reset(user);
    let reset_request = user
        .annotations()
        .get(RESET_PASSWORD_ANNOTATION)
        .filter(|value| !value.is_empty() && Some(*value) != recorded.as_ref())
        .cloned();
    Some(Console {
        secret: spec.password_secret_name.clone(),
        password_reset_required: spec.password_reset_required,
        reset_request,
    })
}

fn recorded_reset(user: &IamUser) -> Option<String> {
    user.status
        .as_ref()
        .and_then(|status| status.console_access.as_ref())
        .and_then(|console| console.reset_request.clone())
}

/// IAM names of the referenced IamGroup objects, once each is Ready for its generation.
fn resolve_group_refs(user: &IamUser, ctx: &Context) -> Result<BTreeSet<String>, Error> {
    let namespace = user.namespace().unwrap_or_default();
    let mut names = BTreeSet::new();
    for reference in &user.spec.group_refs {
        let name = &reference.name;
        let Some(group) = ctx.stores.groups.get(&namespace, name) else {
            return Err(Error::DependencyNotReady(format!(
                "IamGroup {name} does not exist in namespace {namespace}"
            )));
        };
        if group.meta().deletion_timestamp.is_some() {
            return Err(Error::DependencyNotReady(format!(
                "IamGroup {name} is being deleted"
            )));
        }
        let ready = group
            .status
            .as_ref()
            .is_some_and(|status| is_ready(&status.common, group.meta().generation));
        if !ready {
            return Err(Error::DependencyNotReady(format!(
                "IamGroup {name} is not Ready yet"
            )));
        }
        names.insert(super::group::group_name(&group));
    }
    Ok(names)
}

async fn read_secret(
    ctx: &Context,
    user: &IamUser,
    name: Option<&str>,
) -> Result<Option<secrets::Found>, Error> {
    match name {
        Some(name) => secrets::read(ctx, user, name).await,
        None => Ok(None),
    }
}

impl Managed for IamUser {
    type Status = IamUserStatus;
    type Desired = Desired;
    type Observed = Observed;
    type Action = UserAction;

    fn status_mut(status: &mut Self::Status) -> &mut crate::api::CommonStatus {
        &mut status.common
    }

    fn current_status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }

    fn deletion_policy(&self) -> DeletionPolicy {
        self.spec.deletion_policy
    }

    fn api(client: kube::Client, namespace: &str) -> kube::Api<Self> {
        super::namespaced(client, namespace)
    }

    fn validate(&self, _ctx: &Context) -> Result<(), Error> {
        inline_policies(
            &self.spec.inline_policies,
            USER_INLINE_POLICIES_MAX_CHARS,
            "user",
        )?;
        key_rules(self).map(drop)
    }

    fn admit(&self, rules: &Rules, ctx: &Context) -> Result<(), Error> {
        let spec = &self.spec;
        rules.check_name(&user_name(self), "user")?;
        rules.check_path(spec.path.as_deref())?;
        rules.check_boundary(spec.permissions_boundary.as_deref())?;
        let (prefix, _) = rules.account(ctx);
        for arn in &spec.managed_policy_arns {
            rules.check_managed_policy(arn, &prefix)?;
        }
        for (name, document) in &spec.inline_policies {
            rules.check_permissions(document, &format!("inlinePolicies.{name}"))?;
        }
        for group in &spec.group_names {
            rules.check_group_reference(group)?;
        }
        Ok(())
    }

    fn desired(&self, ctx: &Context, rules: &Rules) -> Result<Desired, Error> {
        let spec = &self.spec;
        check_attachable(
            &spec.managed_policy_arns,
            spec.permissions_boundary.as_deref(),
            &ctx.iam_arn_prefix,
        )?;
        let namespace = self.namespace().unwrap_or_default();
        let mut managed_policy_arns: BTreeSet<String> =
            spec.managed_policy_arns.iter().cloned().collect();
        managed_policy_arns.extend(resolve_policy_refs(&namespace, &spec.policy_refs, ctx)?);
        let mut groups = resolve_group_refs(self, ctx)?;
        groups.extend(spec.group_names.iter().cloned());
        Ok(Desired {
            name: user_name(self),
            path: rules.check_path(spec.path.as_deref())?,
            permissions_boundary: rules.check_boundary(spec.permissions_boundary.as_deref())?,
            groups,
            managed_policy_arns,
            inline_policies: inline_policies(
                &spec.inline_policies,
                USER_INLINE_POLICIES_MAX_CHARS,
                "user",
            )?,
            tags: desired_tags(&spec.tags, &ctx.owner_tag_value(self)),
            console: console(self),
            keys: key_rules(self)?,
            reset_recorded: recorded_reset(self),
            recorded_password_secret: self
                .status
                .as_ref()
                .and_then(|status| status.password_secret.clone()),
            recorded_key_secret: self
                .status
                .as_ref()
                .and_then(|status| status.access_key_secret.clone()),
        })
    }

    async fn observe(
        &self,
        ctx: &Context,
        rules: &Rules,
        desired: &Desired,
    ) -> Result<Observed, Error> {
        // The Secrets first: one that is not this user's stops everything before any write.
        let password_secret = read_secret(
            ctx,
            self,
            desired.console.as_ref().map(|c| c.secret.as_str()),
        )
        .await?;
        let key_secret =
            read_secret(ctx, self, desired.keys.as_ref().map(|k| k.secret.as_str())).await?;
        let name = desired.name.as_str();
        let mut observed = Observed {
            now: Timestamp::now().as_second(),
            user: ctx.iam.get_user(name).await?,
            groups: BTreeSet::new(),
            attached: BTreeSet::new(),
            inline: BTreeMap::new(),
            login_profile: None,
            password_policy: None,
            password_in_secret: password_secret
                .as_ref()
                .is_some_and(|found| found.has(secrets::PASSWORD_KEY)),
            access_keys: vec![],
            last_used: BTreeMap::new(),
            key_in_secret: key_secret.and_then(|found| found.access_key_id),
            mfa_devices: vec![],
        };
        if let Some(user) = &observed.user {
            let what = format!("user {name}");
            claim_existing(
                self,
                rules,
                AwsKind::User,
                name,
                &user.tags,
                &ctx.owner_tag_value(self),
                &what,
            )?;
            rules.check_arn_path(&user.arn, &what)?;
            let iam = &ctx.iam;
            observed.groups = iam.groups_for_user(name).await?.into_iter().collect();
            observed.attached = iam
                .list_attached_user_policies(name)
                .await?
                .into_iter()
                .collect();
            observed.inline = iam.inline_user_policies(name).await?;
            observed.login_profile = iam.get_login_profile(name).await?;
            observed.access_keys = iam.list_access_keys(name).await?;
            for key in &observed.access_keys {
                if let Some(used) = iam.access_key_last_used(&key.id).await? {
                    observed.last_used.insert(key.id.clone(), used);
                }
            }
            observed.mfa_devices = iam.list_mfa_devices(name).await?;
        }
        let password_needed = desired.console.as_ref().is_some_and(|console| {
            observed.login_profile.is_none() || console.reset_request.is_some()
        });
        if password_needed {
            observed.password_policy = ctx.iam.password_policy().await?;
        }
        Ok(observed)
    }

    fn plan(&self, desired: &Desired, observed: &Observed) -> Plan {
        plan(desired, observed)
    }

    async fn apply(
        &self,
        ctx: &Context,
        desired: &Desired,
        action: &UserAction,
        status: &mut IamUserStatus,
    ) -> Result<String, Error> {
        let iam = &ctx.iam;
        let name = desired.name.as_str();
        Ok(match action {
            UserAction::Create => {
                let user = iam
                    .create_user(&NewUser {
                        name,
                        path: &desired.path,
                        permissions_boundary: desired.permissions_boundary.as_deref(),
                        tags: &desired.tags,
                    })
                    .await?;
                status.user_id = Some(user.user_id);
                let note = format!("created user {}", user.arn);
                status.arn = Some(user.arn);
                note
            }
            UserAction::PutPermissionsBoundary { arn } => {
                iam.put_user_permissions_boundary(name, arn).await?;
                format!("set permissions boundary {arn}")
            }
            UserAction::DeletePermissionsBoundary => {
                iam.delete_user_permissions_boundary(name).await?;
                "removed the permissions boundary".to_string()
            }
            UserAction::Tag { tags } => {
                iam.tag_user(name, tags).await?;
                format!(
                    "set tags {}",
                    tags.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            }
            UserAction::Untag { keys } => {
                iam.untag_user(name, keys).await?;
                format!("removed tags {}", keys.join(", "))
            }
            UserAction::AddToGroup { group } => {
                iam.add_user_to_group(group, name).await?;
                format!("added to group {group}")
            }
            UserAction::RemoveFromGroup { group } => {
                iam.remove_user_from_group(group, name).await?;
                format!("removed from group {group}")
            }
            UserAction::AttachPolicy { arn } => {
                iam.attach_user_policy(name, arn).await?;
                format!("attached {arn}")
            }
            UserAction::DetachPolicy { arn } => {
                iam.detach_user_policy(name, arn).await?;
                format!("detached {arn}")
            }
            UserAction::PutInlinePolicy { name: policy_name } => {
                let (_, json) = &desired.inline_policies[policy_name];
                iam.put_user_policy(name, policy_name, json).await?;
                format!("put inline policy {policy_name}")
            }
            UserAction::DeleteInlinePolicy { name: policy_name } => {
                iam.delete_user_policy(name, policy_name).await?;
                format!("deleted inline policy {policy_name}")
            }
            UserAction::CreateLoginProfile { policy } => {
                let console = desired
                    .console
                    .as_ref()
                    .expect("planned with console access");
                let password = password::generate(policy.as_ref());
                // The Secret first: a profile whose password never reached the Secret could
                // only be reset, while a Secret whose profile was never made is rewritten.
                let data = [
                    (secrets::USERNAME_KEY, name),
                    (secrets::PASSWORD_KEY, password.expose()),
                ];
                secrets::write(ctx, self, &console.secret, &data).await?;
                let profile = iam
                    .create_login_profile(name, &password, console.password_reset_required)
                    .await?;
                if let Some(console_status) = status.console_access.as_mut() {
                    console_status.created = time(profile.created);
                    console_status.password_reset_required = profile.password_reset_required;
                }
                format!(
                    "created the login profile; the password is in Secret {}",
                    console.secret
                )
            }
            UserAction::ResetPassword { policy } => {
                let console = desired
                    .console
                    .as_ref()
                    .expect("planned with console access");
                let password = password::generate(policy.as_ref());
                let data = [
                    (secrets::USERNAME_KEY, name),
                    (secrets::PASSWORD_KEY, password.expose()),
                ];
                secrets::write(ctx, self, &console.secret, &data).await?;
                iam.update_login_profile(name, &password, console.password_reset_required)
                    .await?;
                format!(
                    "reset the password as {RESET_PASSWORD_ANNOTATION} asked; the new one is in Secret {}",
                    console.secret
                )
            }
            UserAction::DeleteLoginProfile => {
                iam.delete_login_profile(name).await?;
                "deleted the login profile: console access is off".to_string()
            }
            UserAction::CreateAccessKey => {
                let keys = desired.keys.as_ref().expect("planned with an access key");
                let created = iam.create_access_key(name).await?;
                let data = [
                    (secrets::ACCESS_KEY_ID_KEY, created.key.id.as_str()),
                    (secrets::SECRET_ACCESS_KEY_KEY, created.secret.expose()),
                ];
                secrets::write(ctx, self, &keys.secret, &data).await?;
                for key in &mut status.access_keys {
                    key.in_secret = false;
                }
                status.access_keys.push(AccessKeyStatus {
                    access_key_id: created.key.id.clone(),
                    state: "Active".into(),
                    created: time(created.key.created),
                    last_used: None,
                    in_secret: true,
                });
                format!(
                    "created access key {} and wrote it to Secret {}",
                    created.key.id, keys.secret
                )
            }
            UserAction::DeleteAccessKey { id } => {
                iam.delete_access_key(name, id).await?;
                format!("deleted access key {id}")
            }
            UserAction::DeleteSecret { name: secret } => {
                if secrets::delete_owned(ctx, self, secret).await? {
                    format!("deleted Secret {secret}: the credentials it held are no longer in use")
                } else {
                    format!("Secret {secret} is gone or no longer rolecall's: left as it is")
                }
            }
        })
    }

    async fn cleanup(&self, ctx: &Context) -> Result<(), Error> {
        self.delete_user(ctx).await?;
        // The credentials' Secrets after the user: while the user stands they may still work.
        // (The garbage collector deletes them through their ownerReference too, but only
        // once the IamUser is gone, and a cluster may run without it. With Retain this is
        // not called: the Secrets are left to the garbage collector.)
        let named = [
            self.spec
                .console_access
                .as_ref()
                .map(|console| &console.password_secret_name),
            self.spec.access_key.as_ref().map(|keys| &keys.secret_name),
        ];
        let recorded = self.status.as_ref().map(|status| {
            [
                status.password_secret.as_ref(),
                status.access_key_secret.as_ref(),
            ]
        });
        let names: BTreeSet<&String> = named
            .into_iter()
            .chain(recorded.into_iter().flatten())
            .flatten()
            .collect();
        for secret in names {
            match secrets::delete_owned(ctx, self, secret).await {
                Ok(true) => {
                    let note = format!("deleted Secret {secret} with the user");
                    ctx.event(self, false, "DeletedSecret", "Delete", note)
                        .await;
                }
                Ok(false) => {}
                // Without the chart's Secrets rule no Secret was written, or its
                // ownerReference still lets the garbage collector remove it: no reason to
                // hold the deletion.
                Err(Error::Forbidden(why)) => {
                    tracing::info!(secret = %secret, %why, "Secret left to the garbage collector")
                }
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    fn holders(&self, _stores: &Stores) -> Vec<String> {
        vec![]
    }
}

impl IamUser {
    /// Deletion of the IAM user and everything IAM makes hang off it.
    async fn delete_user(&self, ctx: &Context) -> Result<(), Error> {
        let owner = ctx.owner_tag_value(self);
        let name = user_name(self);
        let iam = &ctx.iam;
        let Some(user) = iam.get_user(&name).await? else {
            return Ok(());
        };
        if left_to_its_owner(ctx, self, &user.tags, &owner, &format!("user {name}")).await {
            return Ok(());
        }
        // IAM refuses DeleteUser while anything hangs off the user, in this order.
        iam.delete_login_profile(&name).await?;
        for key in iam.list_access_keys(&name).await? {
            iam.delete_access_key(&name, &key.id).await?;
        }
        // Not rolecall's to make, but DeleteUser fails on them (DeleteConflict): a user the
        // IamUser owns goes with whatever was added to it.
        for id in iam.list_signing_certificates(&name).await? {
            iam.delete_signing_certificate(&name, &id).await?;
        }
        for id in iam.list_ssh_public_keys(&name).await? {
            iam.delete_ssh_public_key(&name, &id).await?;
        }
        for id in iam.list_service_specific_credentials(&name).await? {
            iam.delete_service_specific_credential(&name, &id).await?;
        }
        for serial in iam.list_mfa_devices(&name).await? {
            iam.deactivate_mfa_device(&name, &serial).await?;
        }
        for group in iam.groups_for_user(&name).await? {
            iam.remove_user_from_group(&group, &name).await?;
        }
        for arn in iam.list_attached_user_policies(&name).await? {
            iam.detach_user_policy(&name, &arn).await?;
        }
        for policy_name in iam.inline_user_policies(&name).await?.keys() {
            iam.delete_user_policy(&name, policy_name).await?;
        }
        iam.delete_user(&name).await?;
        let note = format!("deleted user {}", user.arn);
        ctx.event(self, false, "Deleted", "Delete", note).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
