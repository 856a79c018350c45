//! EC2 calls for instance profile associations, returning rolecall's own structs.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_ec2::types::{Filter, IamInstanceProfileSpecification};

use super::calls::{CallKind, CallLog, ServiceCalls};
use super::error::AwsError;

const SERVICE: &str = "ec2";

/// A non-terminated instance with its tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    pub instance_id: String,
    pub tags: BTreeMap<String, String>,
}

/// An instance's current profile association.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Association {
    pub association_id: String,
    pub instance_id: String,
    pub profile_arn: String,
    pub state: String,
}

/// States of instances that can hold a profile; terminated ones are ignored.
const LIVE_STATES: [&str; 4] = ["pending", "running", "stopping", "stopped"];

#[derive(Clone, Debug)]
pub struct Ec2 {
    client: aws_sdk_ec2::Client,
    calls: ServiceCalls,
}

impl Ec2 {
    pub fn new(client: aws_sdk_ec2::Client, calls: Arc<CallLog>) -> Self {
        Self {
            client,
            calls: calls.service(SERVICE),
        }
    }

    /// Live instances matching every filter (`tag:<key>` or `instance-id`), all pages.
    pub async fn describe_instances(
        &self,
        filters: Vec<(String, Vec<String>)>,
    ) -> Result<Vec<Instance>, AwsError> {
        let mut request_filters: Vec<Filter> = filters
            .into_iter()
            .map(|(name, values)| {
                Filter::builder()
                    .name(name)
                    .set_values(Some(values))
                    .build()
            })
            .collect();
        request_filters.push(
            Filter::builder()
                .name("instance-state-name")
                .set_values(Some(LIVE_STATES.iter().map(|s| s.to_string()).collect()))
                .build(),
        );
        let mut instances = Vec::new();
        self.calls
            .pages(
                CallKind::Read,
                "DescribeInstances",
                self.client
                    .describe_instances()
                    .set_filters(Some(request_filters))
                    .into_paginator()
                    .send(),
                |output| {
                    for reservation in output.reservations() {
                        for instance in reservation.instances() {
                            let Some(instance_id) = instance.instance_id() else {
                                continue;
                            };
                            instances.push(Instance {
                                instance_id: instance_id.to_owned(),
                                tags: instance
                                    .tags()
                                    .iter()
                                    .filter_map(|tag| {
                                        Some((
                                            tag.key()?.to_owned(),
                                            tag.value().unwrap_or_default().to_owned(),
                                        ))
                                    })
                                    .collect(),
                            });
                        }
                    }
                },
            )
            .await?;
        instances.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        instances.dedup_by(|a, b| a.instance_id == b.instance_id);
        Ok(instances)
    }

    /// Current (associating or associated) associations of these instances.
    pub async fn associations(
        &self,
        instance_ids: &[String],
    ) -> Result<Vec<Association>, AwsError> {
        let mut associations = Vec::new();
        for chunk in instance_ids.chunks(100) {
            self.calls
                .pages(
                    CallKind::Read,
                    "DescribeIamInstanceProfileAssociations",
                    self.client
                        .describe_iam_instance_profile_associations()
                        .filters(
                            Filter::builder()
                                .name("instance-id")
                                .set_values(Some(chunk.to_vec()))
                                .build(),
                        )
                        .filters(
                            Filter::builder()
                                .name("state")
                                .values("associating")
                                .values("associated")
                                .build(),
                        )
                        .into_paginator()
                        .send(),
                    |output| {
                        for association in output.iam_instance_profile_associations() {
                            let state = association
                                .state()
                                .map(|s| s.as_str().to_owned())
                                .unwrap_or_default();
                            if state != "associating" && state != "associated" {
                                continue;
                            }
                            associations.push(Association {
                                association_id: association
                                    .association_id()
                                    .unwrap_or_default()
                                    .to_owned(),
                                instance_id: association
                                    .instance_id()
                                    .unwrap_or_default()
                                    .to_owned(),
                                profile_arn: association
                                    .iam_instance_profile()
                                    .and_then(|profile| profile.arn())
                                    .unwrap_or_default()
                                    .to_owned(),
                                state,
                            });
                        }
                    },
                )
                .await?;
        }
        Ok(associations)
    }

    pub async fn associate(
        &self,
        instance_id: &str,
        profile_arn: &str,
    ) -> Result<Association, AwsError> {
        let output = self
            .calls
            .call(
                CallKind::Write,
                "AssociateIamInstanceProfile",
                self.client
                    .associate_iam_instance_profile()
                    .instance_id(instance_id)
                    .iam_instance_profile(
                        IamInstanceProfileSpecification::builder()
                            .arn(profile_arn)
                            .build(),
                    )
                    .send(),
            )
            .await?;
        Ok(to_association(
            output.iam_instance_profile_association(),
            instance_id,
            profile_arn,
        ))
    }

    pub async fn replace(
        &self,
        association_id: &str,
        instance_id: &str,
        profile_arn: &str,
    ) -> Result<Association, AwsError> {
        let output = self
            .calls
            .call(
                CallKind::Write,
                "ReplaceIamInstanceProfileAssociation",
                self.client
                    .replace_iam_instance_profile_association()
                    .association_id(association_id)
                    .iam_instance_profile(
                        IamInstanceProfileSpecification::builder()
                            .arn(profile_arn)
                            .build(),
                    )
                    .send(),
            )
            .await?;
        Ok(to_association(
            output.iam_instance_profile_association(),
            instance_id,
            profile_arn,
        ))
    }

    pub async fn disassociate(&self, association_id: &str) -> Result<(), AwsError> {
        let result = self
            .calls
            .call(
                CallKind::Write,
                "DisassociateIamInstanceProfile",
                self.client
                    .disassociate_iam_instance_profile()
                    .association_id(association_id)
                    .send(),
            )
            .await;
        super::Iam::optional(result).map(drop)
    }
}

fn to_association(
    association: Option<&aws_sdk_ec2::types::IamInstanceProfileAssociation>,
    instance_id: &str,
    profile_arn: &str,
) -> Association {
    Association {
        association_id: association
            .and_then(|a| a.association_id())
            .unwrap_or_default()
            .to_owned(),
        instance_id: instance_id.to_owned(),
        profile_arn: profile_arn.to_owned(),
        state: association
            .and_then(|a| a.state())
            .map(|state| state.as_str().to_owned())
            .unwrap_or_else(|| "associating".into()),
    }
}
