//! Tag and ownership decisions shared by every kind.

use std::collections::BTreeMap;

use crate::conditions::OWNER_TAG;

pub type Tags = BTreeMap<String, String>;

/// Whose an existing AWS object is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Tagged with our owner value.
    Ours,
    /// Untagged, and the Kubernetes object asks to adopt it.
    Adopt,
    /// Tagged by another owner, or untagged without the adopt annotation.
    Foreign { owner: Option<String> },
}

pub fn ownership(observed: &Tags, ours: &str, adopt: bool) -> Ownership {
    match observed.get(OWNER_TAG) {
        Some(owner) if owner == ours => Ownership::Ours,
        Some(owner) => Ownership::Foreign {
            owner: Some(owner.clone()),
        },
        None if adopt => Ownership::Adopt,
        None => Ownership::Foreign { owner: None },
    }
}

/// Refuses an existing AWS object that is neither ours nor adoptable, naming `what` it is.
pub fn ensure_ours(
    observed: &Tags,
    owner: &str,
    adopt: bool,
    what: &str,
) -> Result<(), crate::error::Error> {
    match ownership(observed, owner, adopt) {
        found @ Ownership::Foreign { .. } => Err(crate::error::Error::Conflict(conflict_message(
            what, &found,
        ))),
        Ownership::Ours | Ownership::Adopt => Ok(()),
    }
}

/// The message a Conflict condition carries.
pub fn conflict_message(what: &str, ownership: &Ownership) -> String {
    match ownership {
        Ownership::Foreign { owner: Some(owner) } => format!(
            "{what} already exists and belongs to {owner} (tag {OWNER_TAG}={owner}); rolecall will not modify it"
        ),
        _ => format!(
            "{what} already exists without a {OWNER_TAG} tag; rolecall will not modify it unless this object \
             has the annotation rolecall.dev/adopt: \"true\""
        ),
    }
}

/// The spec's tags plus our owner tag.
pub fn desired_tags(spec: &Tags, owner: &str) -> Tags {
    let mut tags = spec.clone();
    tags.insert(OWNER_TAG.into(), owner.into());
    tags
}

/// Tags to set (new or changed) and keys to remove so `observed` becomes `desired`. Keys
/// under `aws:` belong to AWS and are never removed.
pub fn tag_changes(desired: &Tags, observed: &Tags) -> (Tags, Vec<String>) {
    let set: Tags = desired
        .iter()
        .filter(|(key, value)| observed.get(*key) != Some(value))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let remove: Vec<String> = observed
        .keys()
        .filter(|key| !desired.contains_key(*key) && !key.to_ascii_lowercase().starts_with("aws:"))
        .cloned()
        .collect();
    (set, remove)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn our_tag_means_ours() {
        let observed = tags(&[(OWNER_TAG, "c/ns/a")]);
        assert_eq!(ownership(&observed, "c/ns/a", false), Ownership::Ours);
    }

    #[test]
    fn another_namespace_never_takes_an_object_even_with_adopt() {
        let observed = tags(&[(OWNER_TAG, "c/other/a")]);
        let result = ownership(&observed, "c/ns/a", true);
        assert_eq!(
            result,
            Ownership::Foreign {
                owner: Some("c/other/a".into())
            }
        );
        assert!(conflict_message("role a", &result).contains("c/other/a"));
    }

    #[test]
    fn untagged_objects_are_adopted_only_on_request() {
        assert_eq!(ownership(&Tags::new(), "o", true), Ownership::Adopt);
        assert_eq!(
            ownership(&Tags::new(), "o", false),
            Ownership::Foreign { owner: None }
        );
    }

    #[test]
    fn tag_changes_set_only_differences_and_keep_aws_tags() {
        let desired = tags(&[("a", "1"), ("b", "2")]);
        let observed = tags(&[
            ("a", "1"),
            ("b", "old"),
            ("c", "3"),
            ("aws:cloudformation:stack-name", "s"),
        ]);
        let (set, remove) = tag_changes(&desired, &observed);
        assert_eq!(set, tags(&[("b", "2")]));
        assert_eq!(remove, vec!["c".to_string()]);
    }

    #[test]
    fn converged_tags_need_no_change() {
        let desired = tags(&[("a", "1")]);
        assert_eq!(tag_changes(&desired, &desired), (Tags::new(), vec![]));
    }
}
