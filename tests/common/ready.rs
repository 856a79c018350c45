//! Reading the Ready condition of rolecall objects, and waiting for a reason.

use std::time::Duration;

use kube::Resource;
use kube::api::Api;
use rolecall::api::{Ec2InstanceBinding, IamGroup, IamPolicy, IamRole, IamUser, InstanceProfile};
use serde::de::DeserializeOwned;

pub trait Ready {
    /// (status, reason, message) of Ready, once it describes the current generation.
    fn ready(&self) -> Option<(String, String, String)>;
}

macro_rules! impl_ready {
    ($($kind:ty),*) => {$(
        impl Ready for $kind {
            fn ready(&self) -> Option<(String, String, String)> {
                let status = self.status.as_ref()?;
                (status.common.observed_generation == self.meta().generation)
                    .then(|| super::ready_condition(&status.common.conditions))
                    .flatten()
            }
        }
    )*};
}
impl_ready!(
    IamPolicy,
    IamRole,
    InstanceProfile,
    Ec2InstanceBinding,
    IamGroup,
    IamUser
);

/// Waits until the object's Ready condition (for its current generation) has `reason`.
pub async fn wait_reason<K>(api: &Api<K>, name: &str, reason: &str) -> K
where
    K: Clone + DeserializeOwned + std::fmt::Debug + Ready,
{
    super::wait_for(
        &format!("{name} to report {reason}"),
        Duration::from_secs(60),
        || async {
            let object = api.get(name).await.ok()?;
            (object.ready()?.1 == reason).then_some(object)
        },
    )
    .await
}
