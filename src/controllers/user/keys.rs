//! Access key rotation, as a pure plan over the keys IAM lists and the one the Secret holds.
//!
//! IAM allows two keys per user. The key in the Secret is replaced once its age (from AWS's
//! CreateDate) reaches `maxAge`: a new key is created and written to the Secret, and the old
//! one is deleted once the new one is older than the grace period, so that programs reading
//! the Secret have time to pick the new key up. A key IAM lists that is not in the Secret (the
//! Secret was deleted, or a write of it failed) is treated the same way: replaced, then
//! deleted after the grace period.

use crate::aws::iam::users::AccessKey;

/// The spec's limits, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRules {
    pub max_age: i64,
    pub grace: i64,
}

/// One write to the user's keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyChange {
    /// Create a key and write it to the Secret.
    Create,
    Delete {
        id: String,
    },
}

/// The changes that take `keys` (oldest first) to one fresh key in the Secret; `rules: None`
/// (programmatic access off) deletes every key. `in_secret` is the key id the Secret holds.
pub fn plan(
    rules: Option<&KeyRules>,
    now: i64,
    keys: &[AccessKey],
    in_secret: Option<&str>,
) -> Vec<KeyChange> {
    let delete = |key: &AccessKey| KeyChange::Delete { id: key.id.clone() };
    let Some(rules) = rules else {
        return keys.iter().map(delete).collect();
    };
    let current = in_secret.and_then(|id| keys.iter().find(|key| key.id == id && key.active));
    let mut others: Vec<&AccessKey> = keys
        .iter()
        .filter(|key| Some(key.id.as_str()) != current.map(|c| c.id.as_str()))
        .collect();
    let due = current.is_none_or(|key| now - key.created >= rules.max_age);
    let mut changes = Vec::new();
    if due {
        // IAM keeps two keys: make room by deleting the oldest one the Secret does not hold
        // (a replaced key whose grace period is long over, or one nobody can read).
        if keys.len() >= 2 && !others.is_empty() {
            changes.push(delete(others.remove(0)));
        }
        changes.push(KeyChange::Create);
        // The rest wait out the grace period, counted from the new key.
        return changes;
    }
    let current = current.expect("a key that is not due exists");
    if now - current.created >= rules.grace {
        changes.extend(others.into_iter().map(delete));
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: KeyRules = KeyRules {
        max_age: 90 * 86400,
        grace: 86400,
    };

    fn key(id: &str, created: i64) -> AccessKey {
        AccessKey {
            id: id.into(),
            active: true,
            created,
        }
    }

    fn create() -> KeyChange {
        KeyChange::Create
    }

    fn delete(id: &str) -> KeyChange {
        KeyChange::Delete { id: id.into() }
    }

    #[test]
    fn a_user_without_a_key_gets_one() {
        assert_eq!(plan(Some(&RULES), 0, &[], None), vec![create()]);
    }

    #[test]
    fn a_fresh_key_in_the_secret_needs_nothing() {
        let keys = [key("A", 0)];
        assert_eq!(plan(Some(&RULES), 89 * 86400, &keys, Some("A")), vec![]);
    }

    #[test]
    fn a_key_at_its_maximum_age_is_replaced_and_kept_through_the_grace_period() {
        let keys = [key("A", 0)];
        let now = 90 * 86400;
        assert_eq!(plan(Some(&RULES), now, &keys, Some("A")), vec![create()]);
        // The new key B is in the Secret: A stays until B is a day old, then goes.
        let keys = [key("A", 0), key("B", now)];
        assert_eq!(plan(Some(&RULES), now + 3600, &keys, Some("B")), vec![]);
        assert_eq!(
            plan(Some(&RULES), now + 86400, &keys, Some("B")),
            vec![delete("A")]
        );
    }

    #[test]
    fn with_two_keys_the_one_not_in_the_secret_makes_room_first() {
        // B is due while A (replaced long ago) is still there: A goes before the create.
        let keys = [key("A", 0), key("B", 10)];
        assert_eq!(
            plan(Some(&RULES), 10 + 90 * 86400, &keys, Some("B")),
            vec![delete("A"), create()]
        );
    }

    #[test]
    fn keys_nobody_can_read_are_replaced_then_deleted_after_the_grace_period() {
        // The Secret was deleted: both keys are unreadable. The oldest makes room now; the
        // other goes once the new key has had its grace period.
        let keys = [key("A", 0), key("B", 10)];
        assert_eq!(
            plan(Some(&RULES), 100, &keys, None),
            vec![delete("A"), create()]
        );
        let keys = [key("B", 10), key("C", 100)];
        assert_eq!(plan(Some(&RULES), 200, &keys, Some("C")), vec![]);
        assert_eq!(
            plan(Some(&RULES), 100 + 86400, &keys, Some("C")),
            vec![delete("B")]
        );
    }

    #[test]
    fn an_inactive_key_in_the_secret_is_replaced() {
        let mut inactive = key("A", 0);
        inactive.active = false;
        assert_eq!(
            plan(Some(&RULES), 10, &[inactive], Some("A")),
            vec![create()]
        );
    }

    #[test]
    fn turning_programmatic_access_off_deletes_every_key() {
        let keys = [key("A", 0), key("B", 10)];
        assert_eq!(
            plan(None, 20, &keys, Some("B")),
            vec![delete("A"), delete("B")]
        );
    }
}
