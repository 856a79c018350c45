//! IAM group calls: the group, its members, its managed and inline policies.

use std::collections::BTreeMap;

use super::Iam;
use crate::aws::calls::CallKind;
use crate::aws::error::AwsError;

/// A group as IAM reports it, with its members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedGroup {
    pub arn: String,
    pub group_id: String,
    pub path: String,
    /// CreateDate, in seconds since the epoch.
    pub created: i64,
    pub members: Vec<String>,
}

impl Iam {
    /// The group and every member (GetGroup pages through the users).
    pub async fn get_group(&self, name: &str) -> Result<Option<ObservedGroup>, AwsError> {
        let mut group = None;
        let mut members = Vec::new();
        let result = self
            .calls
            .pages(
                CallKind::Read,
                "GetGroup",
                self.client
                    .get_group()
                    .group_name(name)
                    .into_paginator()
                    .send(),
                |output| {
                    if let Some(found) = output.group {
                        let created = found.create_date.secs();
                        group = Some((found.arn, found.group_id, found.path, created));
                    }
                    members.extend(output.users.into_iter().map(|user| user.user_name));
                },
            )
            .await;
        Self::optional(result)?;
        Ok(group.map(|(arn, group_id, path, created)| ObservedGroup {
            arn,
            group_id,
            path,
            created,
            members,
        }))
    }

    pub async fn create_group(&self, name: &str, path: &str) -> Result<ObservedGroup, AwsError> {
        let output = self
            .call(
                CallKind::Write,
                "CreateGroup",
                self.client
                    .create_group()
                    .group_name(name)
                    .path(path)
                    .send(),
            )
            .await?;
        let group = output
            .group
            .ok_or_else(|| AwsError::unexpected("CreateGroup", "the answer holds no group"))?;
        Ok(ObservedGroup {
            created: group.create_date.secs(),
            arn: group.arn,
            group_id: group.group_id,
            path: group.path,
            members: vec![],
        })
    }

    pub async fn list_attached_group_policies(&self, name: &str) -> Result<Vec<String>, AwsError> {
        let mut arns = Vec::new();
        self.calls
            .pages(
                CallKind::Read,
                "ListAttachedGroupPolicies",
                self.client
                    .list_attached_group_policies()
                    .group_name(name)
                    .into_paginator()
                    .send(),
                |output| {
                    arns.extend(
                        output
                            .attached_policies()
                            .iter()
                            .filter_map(|p| p.policy_arn().map(str::to_owned)),
                    )
                },
            )
            .await?;
        Ok(arns)
    }

    pub async fn attach_group_policy(&self, name: &str, arn: &str) -> Result<(), AwsError> {
        self.call(
            CallKind::Write,
            "AttachGroupPolicy",
            self.client
                .attach_group_policy()
                .group_name(name)
                .policy_arn(arn)
                .send(),
        )
        .await
        .map(drop)
    }

    pub async fn detach_group_policy(&self, name: &str, arn: &str) -> Result<(), AwsError> {
        let result = self
            .call(
                CallKind::Write,
                "DetachGroupPolicy",
                self.client
                    .detach_group_policy()
                    .group_name(name)
                    .policy_arn(arn)
                    .send(),
            )
            .await;
        Self::optional(result).map(drop)
    }

    /// Inline policy name to raw (URL-encoded) document.
    pub async fn inline_group_policies(
        &self,
        name: &str,
    ) -> Result<BTreeMap<String, String>, AwsError> {
        let mut names = Vec::new();
        self.calls
            .pages(
                CallKind::Read,
                "ListGroupPolicies",
                self.client
                    .list_group_policies()
                    .group_name(name)
                    .into_paginator()
                    .send(),
                |output| names.extend(output.policy_names),
            )
            .await?;
        let mut policies = BTreeMap::new();
        for policy_name in names {
            let output = self
                .call(
                    CallKind::Read,
                    "GetGroupPolicy",
                    self.client
                        .get_group_policy()
                        .group_name(name)
                        .policy_name(&policy_name)
                        .send(),
                )
                .await?;
            policies.insert(policy_name, output.policy_document);
        }
        Ok(policies)
    }

    pub async fn put_group_policy(
        &self,
        name: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<(), AwsError> {
        self.call(
            CallKind::Write,
            "PutGroupPolicy",
            self.client
                .put_group_policy()
                .group_name(name)
                .policy_name(policy_name)
                .policy_document(document)
                .send(),
        )
        .await
        .map(drop)
    }

    pub async fn delete_group_policy(&self, name: &str, policy_name: &str) -> Result<(), AwsError> {
        let result = self
            .call(
                CallKind::Write,
                "DeleteGroupPolicy",
                self.client
                    .delete_group_policy()
                    .group_name(name)
                    .policy_name(policy_name)
                    .send(),
            )
            .await;
        Self::optional(result).map(drop)
    }

    pub async fn remove_user_from_group(&self, group: &str, user: &str) -> Result<(), AwsError> {
        let result = self
            .call(
                CallKind::Write,
                "RemoveUserFromGroup",
                self.client
                    .remove_user_from_group()
                    .group_name(group)
                    .user_name(user)
                    .send(),
            )
            .await;
        Self::optional(result).map(drop)
    }

    pub async fn delete_group(&self, name: &str) -> Result<(), AwsError> {
        let result = self
            .call(
                CallKind::Write,
                "DeleteGroup",
                self.client.delete_group().group_name(name).send(),
            )
            .await;
        Self::optional(result).map(drop)
    }
}
