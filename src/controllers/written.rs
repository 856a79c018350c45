//! The status this process last wrote to each object, until the watch brings it back.
//!
//! A reconcile reads the object from the reflector store, which may lag behind the process's
//! own last status write: two reconciles in quick succession (a failure, then a wake-up that
//! succeeds) can both see the copy from before the first write. Deciding "nothing changed"
//! against that copy would leave the first write's status in place for good. So the decision
//! compares with whichever is newer: the store's copy, or what this process wrote after it.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use serde::Serialize;

/// One status write, by the resourceVersion the API server gave it.
struct Written {
    resource_version: u64,
    fingerprint: u64,
}

/// Per object uid, the newest status write the store has not shown yet.
#[derive(Default)]
pub struct WrittenStatuses(Mutex<HashMap<String, Written>>);

/// The object as a reconcile read it from the store.
pub struct Cached<'a, S> {
    pub uid: &'a str,
    pub resource_version: Option<&'a str>,
    pub status: Option<&'a S>,
}

impl WrittenStatuses {
    /// Whether `desired` is the object's status now, as far as this process knows.
    pub fn is_current<S: Serialize + PartialEq>(
        &self,
        cached: &Cached<'_, S>,
        desired: &S,
    ) -> bool {
        let cached_version = cached
            .resource_version
            .and_then(|rv| rv.parse::<u64>().ok());
        let mut writes = self.0.lock().expect("written statuses lock");
        let Some(written) = writes.get(cached.uid) else {
            return cached.status == Some(desired);
        };
        match cached_version {
            // The store has caught up with the write (or gone past it): it is the truth again.
            Some(version) if version >= written.resource_version => {
                writes.remove(cached.uid);
                cached.status == Some(desired)
            }
            // The store is behind this process's own write.
            Some(_) => written.fingerprint == fingerprint(desired),
            // Versions that cannot be ordered: write rather than guess.
            None => false,
        }
    }

    /// Records that `status` was written and the API server answered with `resource_version`.
    pub fn wrote<S: Serialize>(&self, uid: &str, resource_version: Option<&str>, status: &S) {
        let mut writes = self.0.lock().expect("written statuses lock");
        match resource_version.and_then(|rv| rv.parse::<u64>().ok()) {
            Some(resource_version) => {
                writes.insert(
                    uid.to_owned(),
                    Written {
                        resource_version,
                        fingerprint: fingerprint(status),
                    },
                );
            }
            // Unordered: the next decision cannot use it, and must not use an older record.
            None => {
                writes.remove(uid);
            }
        }
    }

    /// Drops what is kept for an object that is gone.
    pub fn forget(&self, uid: &str) {
        self.0.lock().expect("written statuses lock").remove(uid);
    }

    /// How many objects have a write the store has not shown yet.
    pub fn len(&self) -> usize {
        self.0.lock().expect("written statuses lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Statuses compared by their JSON: a false difference only costs a redundant write.
fn fingerprint<S: Serialize>(status: &S) -> u64 {
    let mut hasher = DefaultHasher::new();
    serde_json::to_vec(status)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached<'a>(rv: &'a str, status: &'a String) -> Cached<'a, String> {
        Cached {
            uid: "u-1",
            resource_version: Some(rv),
            status: Some(status),
        }
    }

    #[test]
    fn without_a_write_of_its_own_the_store_decides() {
        let writes = WrittenStatuses::default();
        let ready = "Ready".to_owned();
        assert!(writes.is_current(&cached("7", &ready), &ready));
        assert!(!writes.is_current(&cached("7", &ready), &"Waiting".to_owned()));
    }

    #[test]
    fn a_store_behind_the_own_write_is_not_believed() {
        let writes = WrittenStatuses::default();
        let (ready, waiting) = ("Ready".to_owned(), "Waiting".to_owned());
        writes.wrote("u-1", Some("8"), &waiting);
        // The store still shows rv 7, Ready; the server has Waiting.
        assert!(!writes.is_current(&cached("7", &ready), &ready));
        assert!(writes.is_current(&cached("7", &ready), &waiting));
        assert_eq!(writes.len(), 1, "kept until the store catches up");
    }

    #[test]
    fn a_store_that_caught_up_is_the_truth_again_and_the_record_goes() {
        let writes = WrittenStatuses::default();
        let (ready, waiting) = ("Ready".to_owned(), "Waiting".to_owned());
        writes.wrote("u-1", Some("8"), &waiting);
        // Someone else changed the status after our write: the store shows it.
        assert!(writes.is_current(&cached("9", &ready), &ready));
        assert!(writes.is_empty());
    }

    #[test]
    fn versions_that_cannot_be_ordered_always_write() {
        let writes = WrittenStatuses::default();
        let ready = "Ready".to_owned();
        writes.wrote("u-1", Some("8"), &ready);
        let unordered = Cached {
            uid: "u-1",
            resource_version: Some("not-a-number"),
            status: Some(&ready),
        };
        assert!(!writes.is_current(&unordered, &ready));
        writes.wrote("u-1", Some("also-not"), &ready);
        assert!(
            writes.is_empty(),
            "an unordered write replaces the older record"
        );
    }
}
