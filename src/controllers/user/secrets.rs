//! The Secrets an IamUser writes its credentials to: in its own namespace, created and owned
//! by it (an ownerReference, so they go with it), and never one that belongs to anything else.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};

use crate::api::IamUser;
use crate::context::Context;
use crate::error::Error;

/// Secret key holding the console user name.
pub const USERNAME_KEY: &str = "username";
/// Secret key holding the console password.
pub const PASSWORD_KEY: &str = "password";
pub const ACCESS_KEY_ID_KEY: &str = "AWS_ACCESS_KEY_ID";
pub const SECRET_ACCESS_KEY_KEY: &str = "AWS_SECRET_ACCESS_KEY";

/// What an existing Secret of this user holds, as far as a plan needs it: which keys, and
/// the access key id (an id is not a secret). Secret values are never kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    pub keys: Vec<String>,
    pub access_key_id: Option<String>,
}

impl Found {
    pub fn has(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k == key)
    }
}

fn owned_by(secret: &Secret, user: &IamUser) -> bool {
    let uid = user.uid();
    secret
        .owner_references()
        .iter()
        .any(|owner| Some(&owner.uid) == uid.as_ref())
}

/// The API server's 403 on Secrets, in words a platform team can act on.
fn not_granted(error: kube::Error) -> Error {
    match error {
        kube::Error::Api(status) if status.code == 403 => Error::Forbidden(format!(
            "the operator may not read or write Secrets here, which consoleAccess and accessKey \
             need: install the chart with rbac.userSecrets=true ({})",
            status.message
        )),
        error => error.into(),
    }
}

/// The Secret `name` in the user's namespace: `None` when absent, a Conflict when it exists
/// and is not this user's (rolecall never writes to a Secret it did not create for it).
pub async fn read(ctx: &Context, user: &IamUser, name: &str) -> Result<Option<Found>, Error> {
    let api: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &user.namespace().unwrap_or_default());
    let Some(secret) = api.get_opt(name).await.map_err(not_granted)? else {
        return Ok(None);
    };
    if !owned_by(&secret, user) {
        return Err(Error::Conflict(format!(
            "Secret {name} exists and is not owned by this IamUser; rolecall writes credentials only to a Secret it creates"
        )));
    }
    let data = secret.data.unwrap_or_default();
    Ok(Some(Found {
        keys: data.keys().cloned().collect(),
        access_key_id: data
            .get(ACCESS_KEY_ID_KEY)
            .and_then(|value| String::from_utf8(value.0.clone()).ok()),
    }))
}

/// Writes `data` to the Secret `name`, creating it owned by `user`, or replacing the data of
/// the one it already owns.
pub async fn write(
    ctx: &Context,
    user: &IamUser,
    name: &str,
    data: &[(&str, &str)],
) -> Result<(), Error> {
    let api: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &user.namespace().unwrap_or_default());
    let data: BTreeMap<String, ByteString> = data
        .iter()
        .map(|(key, value)| ((*key).to_owned(), ByteString(value.as_bytes().to_vec())))
        .collect();
    let owner = user
        .controller_owner_ref(&())
        .ok_or_else(|| Error::InvalidSpec("the IamUser has no uid yet".into()))?;
    let mut secret = Secret {
        data: Some(data.clone()),
        type_: Some("Opaque".into()),
        ..Secret::default()
    };
    secret.metadata.name = Some(name.to_owned());
    secret.metadata.owner_references = Some(vec![owner]);
    secret.metadata.labels = Some(
        [(
            "app.kubernetes.io/managed-by".to_string(),
            "rolecall".to_string(),
        )]
        .into(),
    );
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => return Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(error) => return Err(not_granted(error)),
    }
    // It exists: written only if it is this user's (read checks); these keys overwritten.
    read(ctx, user, name).await?;
    let patch = serde_json::json!({ "data": data });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}
