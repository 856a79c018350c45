//! The Secrets an IamUser writes its credentials to: in its own namespace, created and owned
//! by it (an ownerReference and rolecall's label), never one that belongs to anything else;
//! watched (metadata only, rolecall's label only) so that a Secret deleted or edited wakes its
//! user, and deleted by rolecall once the access they hold is off.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};

use futures::{Stream, StreamExt};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Client, Resource, ResourceExt};

use crate::api::IamUser;
use crate::context::Context;
use crate::controllers::watch_backoff::watch_backoff;
use crate::error::Error;

/// The label on every Secret rolecall writes: the Secrets watch selects by it, so the
/// operator never caches or hears of any other Secret.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "rolecall";

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

fn owned_by(secret: &impl Resource, user: &IamUser) -> bool {
    let uid = user.uid();
    uid.is_some()
        && secret
            .owner_references()
            .iter()
            .any(|owner| Some(&owner.uid) == uid.as_ref())
}

/// Whether rolecall made `secret` for `user`: its label and the user's ownerReference. Only
/// such a Secret is ever deleted.
fn made_for(secret: &impl Resource, user: &IamUser) -> bool {
    secret.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
        && owned_by(secret, user)
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
    secret.metadata.labels = Some([(MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string())].into());
    match api.create(&PostParams::default(), &secret).await {
        Ok(created) => {
            own_writes().written(&created);
            return Ok(());
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(error) => return Err(not_granted(error)),
    }
    // It exists: written only if it is this user's (read checks); these keys overwritten.
    read(ctx, user, name).await?;
    let patch = serde_json::json!({ "data": data });
    let patched = api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    own_writes().written(&patched);
    Ok(())
}

/// This process's own writes to the credentials Secrets, whose watch events must not wake the
/// user that made them: that reconcile would run on a copy of the IamUser older than the
/// status its writer is about to record (a reset password's request, say), and redo the
/// write. Writes are known by the resourceVersion they produced, deletes by the Secret's uid.
#[derive(Default)]
struct OwnWrites {
    versions: HashSet<String>,
    deleted: HashSet<String>,
}

/// More than this many unmatched entries (a watch that is not running) are dropped.
const OWN_WRITES_KEPT: usize = 1024;

fn own_writes() -> std::sync::MutexGuard<'static, OwnWrites> {
    static OWN: LazyLock<Mutex<OwnWrites>> = LazyLock::new(Mutex::default);
    OWN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl OwnWrites {
    fn written(&mut self, secret: &impl Resource) {
        if self.versions.len() >= OWN_WRITES_KEPT {
            self.versions.clear();
        }
        self.versions.extend(secret.resource_version());
    }

    fn deleting(&mut self, uid: &str) {
        if self.deleted.len() >= OWN_WRITES_KEPT {
            self.deleted.clear();
        }
        self.deleted.insert(uid.to_owned());
    }

    /// Whether this event is of this process's own write (forgotten once seen).
    fn own(&mut self, secret: &impl Resource) -> bool {
        let written = secret
            .resource_version()
            .is_some_and(|version| self.versions.remove(&version));
        let deleted = secret.uid().is_some_and(|uid| self.deleted.remove(&uid));
        written || deleted
    }
}

/// Deletes the Secret `name` if rolecall made it for `user` (its label and the user's
/// ownerReference; the delete is conditional on that Secret's uid, so one replaced meanwhile
/// is left alone). Returns whether it deleted one; an absent Secret, or anyone else's, is left.
pub async fn delete_owned(ctx: &Context, user: &IamUser, name: &str) -> Result<bool, Error> {
    let api: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &user.namespace().unwrap_or_default());
    let Some(secret) = api
        .get_metadata_opt(name)
        .await
        .map_err(not_granted)?
        .filter(|secret| made_for(secret, user))
    else {
        return Ok(false);
    };
    if let Some(uid) = secret.uid() {
        own_writes().deleting(&uid);
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: secret.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(true),
        // Gone already, or replaced by another Secret of that name (the uid precondition).
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(false),
        Err(error) => Err(not_granted(error)),
    }
}

/// Changes to the Secrets rolecall writes, in the scope's namespace (`None`: every
/// namespace): metadata only, selected by rolecall's label, each change or deletion once (a
/// re-list does not repeat them). Without list and watch on Secrets (the chart's
/// `rbac.userSecrets` off) the watch is refused: said once, then retried quietly, and a lost
/// Secret is seen at the next resync.
pub fn changes(
    client: &Client,
    scope: &Option<String>,
) -> impl Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> + Send + use<> {
    let api: Api<PartialObjectMeta<Secret>> = match scope {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let selection = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
    let refused_once = AtomicBool::new(false);
    watcher(api, selection)
        .backoff(watch_backoff())
        .touched_objects()
        .predicate_filter(predicates::resource_version, Default::default())
        .filter_map(move |event| {
            let event = match event {
                Err(error) if forbidden(&error) => {
                    if !refused_once.swap(true, Ordering::Relaxed) {
                        tracing::info!(
                            %error,
                            "the operator may not watch Secrets (the chart's rbac.userSecrets): \
                             a credentials Secret deleted or edited is seen at the next resync"
                        );
                    }
                    None
                }
                Ok(secret) if own_writes().own(&secret) => None,
                event => Some(event),
            };
            std::future::ready(event)
        })
}

fn forbidden(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code == 403,
        watcher::Error::WatchError(status) => status.code == 403,
        _ => false,
    }
}

/// The IamUser a changed Secret belongs to: its IamUser ownerReference, in its namespace.
pub fn owning_user(secret: PartialObjectMeta<Secret>) -> Vec<ObjectRef<IamUser>> {
    let namespace = secret.namespace().unwrap_or_default();
    let group = IamUser::group(&());
    secret
        .owner_references()
        .iter()
        .filter(|owner| {
            owner.kind == "IamUser" && owner.api_version.split('/').next() == Some(group.as_ref())
        })
        .map(|owner| ObjectRef::new(&owner.name).within(&namespace))
        .collect()
}
