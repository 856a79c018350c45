//! One watch per kind and scope, shared by every controller that follows the kind: it fills
//! the kind's store and hands each change to each follower. Without it, every controller that
//! is woken by another kind opened its own watch of that kind (a policy was watched four
//! times per scope), each a connection, a list at start, and a relist after every outage.
//!
//! kube's own shared streams (`reflect_shared`) pass on only objects still in the store, so a
//! deletion never reaches a follower; here deletions are passed on too (a holder's final
//! removal releases what it held).

use futures::channel::mpsc::{UnboundedSender, unbounded};
use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};

use super::Managed;
use super::watch_backoff::watch_backoff;

/// The watch of one kind in one scope, with its store and its followers.
pub struct SharedWatch<K: Managed> {
    api: Api<K>,
    reader: Store<K>,
    writer: Writer<K>,
    /// Whether each follower hears deletions, and its channel.
    followers: Vec<(bool, UnboundedSender<K>)>,
}

impl<K: Managed> SharedWatch<K> {
    pub fn new(api: Api<K>) -> Self {
        let (reader, writer) = reflector::store();
        Self {
            api,
            reader,
            writer,
            followers: Vec::new(),
        }
    }

    /// The store this watch fills.
    pub fn store(&self) -> Store<K> {
        self.reader.clone()
    }

    /// Every object as it is listed, created or changed: a controller's own kind.
    pub fn applied(&mut self) -> impl Stream<Item = Result<K, watcher::Error>> + Send + use<K> {
        self.follow(false)
    }

    /// As [`SharedWatch::applied`], and every object as it goes: another kind's changes.
    pub fn touched(&mut self) -> impl Stream<Item = Result<K, watcher::Error>> + Send + use<K> {
        self.follow(true)
    }

    fn follow(
        &mut self,
        deletions: bool,
    ) -> impl Stream<Item = Result<K, watcher::Error>> + use<K> {
        let (sender, receiver) = unbounded();
        self.followers.push((deletions, sender));
        receiver.map(Ok)
    }

    /// Watches until the stream ends (it does not, short of the process ending), filling the
    /// store first and then passing each change on. A watch error is retried with
    /// [`watch_backoff`]; the followers never see it.
    pub async fn run(self, trim: fn(&mut K)) {
        let Self {
            api,
            writer,
            mut followers,
            ..
        } = self;
        let mut events = watcher(api, watcher::Config::default())
            .backoff(watch_backoff())
            .modify(trim)
            .reflect(writer)
            .boxed();
        while let Some(event) = events.next().await {
            let (object, deleted) = match event {
                Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                    (object, false)
                }
                Ok(watcher::Event::Delete(object)) => (object, true),
                Ok(watcher::Event::Init | watcher::Event::InitDone) => continue,
                Err(error) => {
                    tracing::warn!(kind = %K::kind(&()), %error, "watch failed; retrying");
                    continue;
                }
            };
            followers.retain(|(_, sender)| !sender.is_closed());
            for (hears_deletions, sender) in &followers {
                if deleted && !hears_deletions {
                    continue;
                }
                // A follower that went (its controller stopped) is dropped above next time.
                let _ = sender.unbounded_send(object.clone());
            }
        }
    }
}
