//! Policy documents as IAM sees them: decoding what IAM returns, the JSON we send, whether two
//! documents are the same policy, and the checks the CRD schema cannot express.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use crate::api::document::{OneOrMany, PolicyDocument, Principal, Statement};

/// The policy language IAM reads a document in when it omits `Version`: the legacy one, in
/// which `${aws:username}` and other policy variables are literal text. An AWS copy without
/// Version is therefore not a `2012-10-17` document.
pub const IMPLIED_VERSION: &str = "2008-10-17";

/// The language rolecall writes a spec without `Version` in (as the field documents), always
/// explicitly, so IAM never falls back to [`IMPLIED_VERSION`].
pub const DEFAULT_VERSION: &str = "2012-10-17";

/// The spec's document with its Version made explicit.
fn with_version(doc: &PolicyDocument) -> PolicyDocument {
    let mut doc = doc.clone();
    doc.version
        .get_or_insert_with(|| DEFAULT_VERSION.to_string());
    doc
}

/// IAM's size limit for a managed policy document, whitespace excluded.
pub const MANAGED_POLICY_MAX_CHARS: usize = 6144;

const PRINCIPAL_TYPES: [&str; 4] = ["AWS", "Service", "Federated", "CanonicalUser"];

/// Why a policy document returned by IAM could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("policy document has an invalid percent-escape at byte {position}")]
    InvalidEscape { position: usize },

    #[error("URL-decoded policy document is not valid UTF-8: {0}")]
    NotUtf8(#[source] std::string::FromUtf8Error),

    #[error("policy document is not valid JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),

    #[error("policy document is not a JSON object")]
    NotAnObject,
}

/// Reads a document as returned by GetPolicyVersion, GetRole or GetRolePolicy.
///
/// IAM percent-encodes these documents (RFC 3986: a space is `%20`, and `+` is a literal plus),
/// while some emulators return plain JSON; both are accepted.
pub fn decode_iam_document(raw: &str) -> Result<Value, DocumentError> {
    if let Ok(value @ Value::Object(_)) = serde_json::from_str::<Value>(raw) {
        return Ok(value);
    }
    let text = String::from_utf8(percent_decode(raw)?).map_err(DocumentError::NotUtf8)?;
    match serde_json::from_str(&text).map_err(DocumentError::InvalidJson)? {
        value @ Value::Object(_) => Ok(value),
        _ => Err(DocumentError::NotAnObject),
    }
}

fn percent_decode(raw: &str) -> Result<Vec<u8>, DocumentError> {
    // percent-encoding passes a malformed escape through as literal text; IAM never sends one,
    // so it is reported, with its position, instead of being read as part of the document.
    let bytes = raw.as_bytes();
    let malformed = bytes.iter().enumerate().find(|&(position, &byte)| {
        byte == b'%'
            && !bytes
                .get(position + 1..position + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if let Some((position, _)) = malformed {
        return Err(DocumentError::InvalidEscape { position });
    }
    Ok(percent_encoding::percent_decode(bytes).collect())
}

/// The compact JSON to send to IAM, with the Version made explicit.
pub fn to_iam_json(doc: &PolicyDocument) -> String {
    serde_json::to_string(&with_version(doc))
        .expect("a policy document has string keys and always serializes")
}

/// A normal form in which two documents IAM treats as the same policy are equal.
///
/// Statements are sorted; value lists become sorted, deduplicated lists; action names and
/// condition key names are lowercased; account-root principals become bare account ids;
/// condition values become strings; a missing Version is `2008-10-17`. Anything not understood
/// is kept as is.
pub fn canonical(doc: &Value) -> Value {
    let Value::Object(fields) = doc else {
        return sorted(doc);
    };
    let mut out: BTreeMap<String, Value> = fields
        .iter()
        .map(|(key, value)| {
            let value = match key.as_str() {
                "Statement" => canonical_statements(value),
                _ => sorted(value),
            };
            (key.clone(), value)
        })
        .collect();
    out.entry("Version".to_string())
        .or_insert_with(|| Value::String(IMPLIED_VERSION.to_string()));
    object(out)
}

/// Whether IAM treats the two documents as the same policy.
pub fn equivalent(a: &Value, b: &Value) -> bool {
    canonical(a) == canonical(b)
}

/// Whether the document IAM returned (URL-encoded or plain) is the desired one; a document that
/// cannot be read does not match.
pub fn document_matches(desired: &PolicyDocument, observed_raw: &str) -> bool {
    let (Ok(desired), Ok(observed)) = (
        serde_json::to_value(with_version(desired)),
        decode_iam_document(observed_raw),
    ) else {
        return false;
    };
    equivalent(&desired, &observed)
}

// Objects are rebuilt in key order so that their serialization, used to sort statements and
// values, does not depend on the order the keys were written in.
fn object(fields: BTreeMap<String, Value>) -> Value {
    Value::Object(fields.into_iter().collect::<Map<String, Value>>())
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(fields) => object(
            fields
                .iter()
                .map(|(key, value)| (key.clone(), sorted(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn canonical_statements(value: &Value) -> Value {
    let mut statements: Vec<Value> = match value {
        Value::Array(items) => items.iter().map(canonical_statement).collect(),
        Value::Object(_) => vec![canonical_statement(value)],
        other => return sorted(other),
    };
    statements.sort_by_cached_key(Value::to_string);
    Value::Array(statements)
}

fn canonical_statement(value: &Value) -> Value {
    let Value::Object(fields) = value else {
        return sorted(value);
    };
    let mut out = BTreeMap::new();
    for (key, value) in fields {
        let value = match key.as_str() {
            "Action" | "NotAction" => string_set(value, str::to_lowercase),
            "Resource" | "NotResource" => string_set(value, str::to_string),
            "Principal" | "NotPrincipal" => canonical_principal(value),
            "Condition" => match canonical_condition(value) {
                Some(condition) => condition,
                None => continue,
            },
            _ => sorted(value),
        };
        out.insert(key.clone(), value);
    }
    object(out)
}

/// One value or a list, as a sorted list without duplicates.
fn string_set(value: &Value, normalize: impl Fn(&str) -> String) -> Value {
    let items: &[Value] = match value {
        Value::Array(items) => items,
        single => std::slice::from_ref(single),
    };
    let set: BTreeMap<String, Value> = items
        .iter()
        .map(|item| match item {
            Value::String(text) => Value::String(normalize(text)),
            other => sorted(other),
        })
        .map(|item| (item.to_string(), item))
        .collect();
    Value::Array(set.into_values().collect())
}

fn canonical_principal(value: &Value) -> Value {
    match value {
        Value::String(text) if text == "*" => {
            canonical_principal(&serde_json::json!({ "AWS": "*" }))
        }
        Value::Object(types) => object(
            types
                .iter()
                .map(|(kind, values)| {
                    let values = if kind == "AWS" {
                        string_set(values, account_of_root_arn)
                    } else {
                        string_set(values, str::to_string)
                    };
                    (kind.clone(), values)
                })
                .collect(),
        ),
        other => sorted(other),
    }
}

// IAM rewrites an account id in a principal to that account's root ARN. Mapping the root ARN back
// to the id, rather than the id forward, avoids guessing the partition (aws, aws-cn, ...).
fn account_of_root_arn(principal: &str) -> String {
    let parts: Vec<&str> = principal.split(':').collect();
    match parts.as_slice() {
        ["arn", partition, "iam", "", account, "root"]
            if partition.starts_with("aws")
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (*account).to_string()
        }
        _ => principal.to_string(),
    }
}

/// `None` when the condition constrains nothing (`{}` or only empty operator blocks).
fn canonical_condition(value: &Value) -> Option<Value> {
    let Value::Object(operators) = value else {
        return Some(sorted(value));
    };
    let mut out = BTreeMap::new();
    for (operator, block) in operators {
        let canonical_block = match block {
            Value::Object(keys) if keys.is_empty() => continue,
            Value::Object(keys) => canonical_condition_block(keys),
            other => sorted(other),
        };
        // Operator names stay case-sensitive: IAM rejects a miscased one ("Invalid Condition
        // type"), so a stored document always spells them as written.
        out.insert(operator.clone(), canonical_block);
    }
    (!out.is_empty()).then(|| object(out))
}

// Condition key names are case-insensitive, values are not; IAM keeps booleans and numbers as
// strings. Two keys differing only in case must both hold, so they are kept as separate value
// sets rather than merged.
fn canonical_condition_block(keys: &Map<String, Value>) -> Value {
    let mut grouped: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (key, values) in keys {
        let values = match values {
            Value::Array(items) => Value::Array(items.iter().map(condition_scalar).collect()),
            single => condition_scalar(single),
        };
        grouped
            .entry(key.to_lowercase())
            .or_default()
            .push(string_set(&values, str::to_string));
    }
    object(
        grouped
            .into_iter()
            .map(|(key, mut sets)| {
                let value = if sets.len() == 1 {
                    sets.remove(0)
                } else {
                    sets.sort_by_key(Value::to_string);
                    Value::Array(sets)
                };
                (key, value)
            })
            .collect(),
    )
}

fn condition_scalar(value: &Value) -> Value {
    match value {
        Value::Bool(flag) => Value::String(flag.to_string()),
        Value::Number(number) => Value::String(number.to_string()),
        other => sorted(other),
    }
}

/// Checks IAM would fail on (or silently misread) that the CRD schema cannot express, so they
/// are reported before any AWS write. Each message starts with its location, such as
/// `Statement[0].Action`.
pub fn validate(doc: &PolicyDocument) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    if doc.statement.is_empty() {
        errors.push("Statement: at least one statement is required".to_string());
    }
    let mut sids: HashMap<&str, usize> = HashMap::new();
    for (index, statement) in doc.statement.iter().enumerate() {
        let at = format!("Statement[{index}]");
        validate_statement(&at, statement, &mut errors);
        if let Some(sid) = statement.sid.as_deref() {
            if let Some(first) = sids.get(sid) {
                errors.push(format!(
                    "{at}.Sid: \"{sid}\" is already used by Statement[{first}]"
                ));
            } else {
                sids.insert(sid, index);
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Where a document is used, which decides the statement fields IAM requires or forbids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocumentUse {
    /// A managed or inline policy: what an identity may do.
    Permissions,
    /// A role's trust policy: who may assume it.
    Trust,
}

/// `validate`, plus IAM's rules for the document's use: a permissions policy names resources
/// and no principal; a trust policy names a principal and no resource. IAM refuses either
/// mistake with a terse MalformedPolicyDocument, after rolecall would already have written.
pub fn validate_for(doc: &PolicyDocument, use_: DocumentUse) -> Result<(), Vec<String>> {
    let mut errors = validate(doc).err().unwrap_or_default();
    for (index, statement) in doc.statement.iter().enumerate() {
        let at = format!("Statement[{index}]");
        let has_principal = statement.principal.is_some() || statement.not_principal.is_some();
        let has_resource = statement.resource.is_some() || statement.not_resource.is_some();
        match use_ {
            DocumentUse::Permissions => {
                if has_principal {
                    errors.push(format!(
                        "{at}: a permissions policy cannot name a Principal or NotPrincipal; who may assume a role belongs in its trust policy"
                    ));
                }
                if !has_resource {
                    errors.push(format!(
                        "{at}: one of Resource or NotResource is required in a permissions policy"
                    ));
                }
            }
            DocumentUse::Trust => {
                if !has_principal {
                    errors.push(format!(
                        "{at}: one of Principal or NotPrincipal is required in a trust policy"
                    ));
                }
                if has_resource {
                    errors.push(format!(
                        "{at}: a trust policy cannot name a Resource or NotResource; the resource is the role itself"
                    ));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn validate_statement(at: &str, statement: &Statement, errors: &mut Vec<String>) {
    match (&statement.action, &statement.not_action) {
        (None, None) => errors.push(format!("{at}: one of Action or NotAction is required")),
        (Some(_), Some(_)) => errors.push(format!("{at}: Action and NotAction cannot both be set")),
        _ => {}
    }
    if statement.resource.is_some() && statement.not_resource.is_some() {
        errors.push(format!("{at}: Resource and NotResource cannot both be set"));
    }
    if statement.principal.is_some() && statement.not_principal.is_some() {
        errors.push(format!(
            "{at}: Principal and NotPrincipal cannot both be set"
        ));
    }
    for (field, values) in [
        ("Action", &statement.action),
        ("NotAction", &statement.not_action),
    ] {
        if let Some(values) = values {
            validate_values(&format!("{at}.{field}"), values, errors, |action| {
                (!is_action(action)).then(|| {
                    format!("\"{action}\" is not an action of the form service:Action (wildcards allowed) or \"*\"")
                })
            });
        }
    }
    for (field, values) in [
        ("Resource", &statement.resource),
        ("NotResource", &statement.not_resource),
    ] {
        if let Some(values) = values {
            validate_values(&format!("{at}.{field}"), values, errors, |resource| {
                (resource != "*" && !resource.starts_with("arn:"))
                    .then(|| format!("\"{resource}\" is neither an ARN (arn:...) nor \"*\""))
            });
        }
    }
    for (field, principal) in [
        ("Principal", &statement.principal),
        ("NotPrincipal", &statement.not_principal),
    ] {
        if let Some(principal) = principal {
            validate_principal(&format!("{at}.{field}"), principal, errors);
        }
    }
    for (operator, keys) in statement.condition.iter().flatten() {
        if keys.is_empty() {
            errors.push(format!(
                "{at}.Condition.{operator}: at least one condition key is required"
            ));
        }
        for (key, value) in keys {
            if !is_condition_value(value) {
                errors.push(format!(
                    "{at}.Condition.{operator}.{key}: must be a string, number or boolean, or a non-empty list of them"
                ));
            }
        }
    }
}

fn validate_values(
    at: &str,
    values: &OneOrMany,
    errors: &mut Vec<String>,
    check: impl Fn(&str) -> Option<String>,
) {
    if let OneOrMany::Malformed(value) = values {
        errors.push(format!(
            "{at}: must be a string or a list of strings, not {}",
            json_kind(value)
        ));
    }
    if let OneOrMany::Many(list) = values
        && list.is_empty()
    {
        errors.push(format!("{at}: the list must not be empty"));
    }
    let many = matches!(values, OneOrMany::Many(_));
    for (index, value) in values.values().iter().enumerate() {
        let location = if many {
            format!("{at}[{index}]")
        } else {
            at.to_string()
        };
        if value.is_empty() {
            errors.push(format!("{location}: must not be empty"));
        } else if let Some(problem) = check(value) {
            errors.push(format!("{location}: {problem}"));
        }
    }
}

fn is_action(action: &str) -> bool {
    if action == "*" {
        return true;
    }
    let Some((service, name)) = action.split_once(':') else {
        return false;
    };
    !service.is_empty()
        && service
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '*' | '?' | '-' | '_' | '.'))
}

fn validate_principal(at: &str, principal: &Principal, errors: &mut Vec<String>) {
    match principal {
        Principal::Wildcard(text) if text == "*" => {}
        Principal::Wildcard(text) => errors.push(format!(
            "{at}: \"{text}\" is not a principal; use \"*\" or a map of AWS, Service, Federated or CanonicalUser to values"
        )),
        Principal::Malformed(value) => errors.push(format!(
            "{at}: must be \"*\" or a map of AWS, Service, Federated or CanonicalUser to values, not {}",
            json_kind(value)
        )),
        Principal::Typed(types) if types.is_empty() => {
            errors.push(format!("{at}: at least one principal type is required"));
        }
        Principal::Typed(types) => {
            for (kind, values) in types {
                if PRINCIPAL_TYPES.contains(&kind.as_str()) {
                    validate_values(&format!("{at}.{kind}"), values, errors, |_| None);
                } else {
                    errors.push(format!(
                        "{at}.{kind}: unknown principal type; expected AWS, Service, Federated or CanonicalUser"
                    ));
                }
            }
        }
    }
}

/// How a JSON value reads in an error message: its type, and the value when short.
fn json_kind(value: &Value) -> String {
    let kind = match value {
        Value::Null => return "null".into(),
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list holding something other than strings",
        Value::Object(_) => "a map",
    };
    let text = value.to_string();
    if text.chars().count() <= 40 {
        format!("{kind} ({text})")
    } else {
        kind.to_string()
    }
}

fn is_condition_value(value: &Value) -> bool {
    let scalar =
        |value: &Value| matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_));
    match value {
        Value::Array(items) => !items.is_empty() && items.iter().all(scalar),
        single => scalar(single),
    }
}

/// Whether the document fits IAM's size limit. IAM does not count whitespace, so this counts
/// the characters of the compact JSON sent to IAM, whitespace excluded.
pub fn check_size(doc: &PolicyDocument, max_chars: usize) -> Result<(), String> {
    let size = to_iam_json(doc)
        .chars()
        .filter(|c| !c.is_whitespace())
        .count();
    if size <= max_chars {
        Ok(())
    } else {
        Err(format!(
            "the policy document is {size} characters (whitespace excluded), more than the {max_chars} IAM allows"
        ))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn doc(value: Value) -> PolicyDocument {
        serde_json::from_value(value).expect("test document deserializes")
    }

    fn statement(fields: Value) -> Value {
        json!({ "Version": "2012-10-17", "Statement": [fields] })
    }

    fn percent_encode(text: &str) -> String {
        text.bytes()
            .map(|byte| match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (byte as char).to_string()
                }
                other => format!("%{other:02X}"),
            })
            .collect()
    }

    fn errors_of(value: Value) -> Vec<String> {
        validate(&doc(value)).expect_err("document is invalid")
    }

    const ENCODED: &str = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22s3%3AGetObject%22%2C%22Resource%22%3A%22arn%3Aaws%3As3%3A%3A%3Abucket%2F%2A%22%7D%5D%7D";

    #[test]
    fn malformed_action_and_principal_deserialize_and_are_reported() {
        for (field, value, expected) in [
            (
                "Action",
                json!(5),
                "Statement[0].Action: must be a string or a list of strings, not a number (5)",
            ),
            ("Action", json!(true), "not a boolean"),
            ("Action", json!({ "s3": "GetObject" }), "not a map"),
            (
                "Action",
                json!(["s3:GetObject", 7]),
                "not a list holding something other than strings",
            ),
            (
                "Resource",
                json!([["*"]]),
                "Statement[0].Resource: must be a string or a list of strings",
            ),
            (
                "Principal",
                json!(42),
                "Statement[0].Principal: must be \"*\" or a map",
            ),
            (
                "Principal",
                json!({ "AWS": { "id": 1 } }),
                "Statement[0].Principal.AWS: must be a string or a list",
            ),
        ] {
            let mut fields = json!({ "Effect": "Allow", "Action": "s3:*", "Resource": "*" });
            fields[field] = value.clone();
            let document = doc(statement(fields));
            let errors = validate(&document).expect_err("malformed field must be reported");
            assert!(
                errors.iter().any(|error| error.contains(expected)),
                "{field}={value}: {errors:?}"
            );
        }
    }

    #[test]
    fn permissions_policies_need_resources_and_no_principal() {
        let with_principal = doc(statement(
            json!({ "Effect": "Allow", "Action": "s3:*", "Resource": "*", "Principal": "*" }),
        ));
        let errors = validate_for(&with_principal, DocumentUse::Permissions).unwrap_err();
        assert!(errors[0].contains("cannot name a Principal"), "{errors:?}");
        let without_resource = doc(statement(json!({ "Effect": "Allow", "Action": "s3:*" })));
        let errors = validate_for(&without_resource, DocumentUse::Permissions).unwrap_err();
        assert!(
            errors[0].contains("Resource or NotResource is required"),
            "{errors:?}"
        );
        let fine = doc(statement(
            json!({ "Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::x" }),
        ));
        assert_eq!(validate_for(&fine, DocumentUse::Permissions), Ok(()));
    }

    #[test]
    fn trust_policies_need_a_principal_and_no_resource() {
        let with_resource = doc(statement(json!({
            "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*",
            "Principal": { "Service": "ec2.amazonaws.com" },
        })));
        let errors = validate_for(&with_resource, DocumentUse::Trust).unwrap_err();
        assert!(errors[0].contains("cannot name a Resource"), "{errors:?}");
        let without_principal = doc(statement(
            json!({ "Effect": "Allow", "Action": "sts:AssumeRole" }),
        ));
        let errors = validate_for(&without_principal, DocumentUse::Trust).unwrap_err();
        assert!(
            errors[0].contains("Principal or NotPrincipal is required"),
            "{errors:?}"
        );
        let fine = doc(statement(json!({
            "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": { "AWS": "arn:aws:iam::123456789012:root" },
        })));
        assert_eq!(validate_for(&fine, DocumentUse::Trust), Ok(()));
    }

    #[test]
    fn url_encoded_document_decodes_to_its_json() {
        let decoded = decode_iam_document(ENCODED).unwrap();
        assert_eq!(
            decoded,
            statement(
                json!({ "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket/*" })
            )
        );
    }

    #[test]
    fn plain_json_document_is_accepted_as_is() {
        let raw =
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::a%41"}]}"#;
        let decoded = decode_iam_document(raw).unwrap();
        assert_eq!(decoded["Statement"][0]["Resource"], "arn:aws:s3:::a%41");
    }

    #[test]
    fn plus_sign_stays_a_plus_and_percent_20_is_a_space() {
        let raw = percent_encode(
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::a+b"}]}"#,
        )
        .replace("%2B", "+")
        .replace("s3%3A%2A", "s3%3A%2A%20");
        let decoded = decode_iam_document(&raw).unwrap();
        assert_eq!(decoded["Statement"][0]["Resource"], "arn:aws:s3:::a+b");
        assert_eq!(decoded["Statement"][0]["Action"], "s3:* ");
    }

    #[test]
    fn lowercase_hex_escapes_decode() {
        assert_eq!(
            decode_iam_document("%7b%22a%22%3a%22%c3%a9%22%7d").unwrap(),
            json!({ "a": "é" })
        );
    }

    #[test]
    fn invalid_percent_escape_is_reported_with_its_position() {
        let error = decode_iam_document("%7B%ZZ%7D").unwrap_err();
        assert!(
            matches!(error, DocumentError::InvalidEscape { position: 3 }),
            "{error}"
        );
        assert!(matches!(
            decode_iam_document("%7B%7"),
            Err(DocumentError::InvalidEscape { position: 3 })
        ));
    }

    #[test]
    fn text_that_is_not_json_is_an_invalid_json_error() {
        let error = decode_iam_document("not a policy").unwrap_err();
        assert!(matches!(error, DocumentError::InvalidJson(_)), "{error}");
        assert!(
            error
                .to_string()
                .starts_with("policy document is not valid JSON")
        );
    }

    #[test]
    fn json_that_is_not_an_object_is_rejected() {
        assert!(matches!(
            decode_iam_document("[1,2]"),
            Err(DocumentError::NotAnObject)
        ));
        assert!(matches!(
            decode_iam_document("%5B1%5D"),
            Err(DocumentError::NotAnObject)
        ));
    }

    #[test]
    fn invalid_utf8_after_decoding_is_reported() {
        assert!(matches!(
            decode_iam_document("%7B%FF%7D"),
            Err(DocumentError::NotUtf8(_))
        ));
    }

    #[test]
    fn whitespace_reformatted_document_is_equivalent() {
        let compact =
            statement(json!({ "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*" }));
        let pretty = serde_json::to_string_pretty(&compact).unwrap();
        assert!(equivalent(&compact, &decode_iam_document(&pretty).unwrap()));
        assert!(equivalent(
            &compact,
            &decode_iam_document(&percent_encode(&pretty)).unwrap()
        ));
    }

    #[test]
    fn absent_version_is_the_2008_language_not_2012() {
        let current = statement(json!({ "Effect": "Allow", "Action": "s3:*", "Resource": "*" }));
        let mut without = current.clone();
        without.as_object_mut().unwrap().remove("Version");
        let mut legacy = current.clone();
        legacy["Version"] = json!("2008-10-17");
        assert!(!equivalent(&current, &without));
        assert!(equivalent(&legacy, &without));
    }

    #[test]
    fn observed_document_without_version_is_drift_from_a_2012_document() {
        let desired = doc(statement(
            json!({ "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*" }),
        ));
        let observed =
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
        assert!(!document_matches(&desired, observed));
        assert!(!document_matches(&desired, &percent_encode(observed)));
    }

    #[test]
    fn a_spec_without_version_is_written_as_2012_and_an_aws_copy_without_it_is_drift() {
        let desired = doc(
            json!({ "Statement": [{ "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*" }] }),
        );
        let sent = to_iam_json(&desired);
        assert!(sent.starts_with(r#"{"Version":"2012-10-17","#), "{sent}");
        assert!(document_matches(&desired, &sent));
        assert!(document_matches(&desired, &percent_encode(&sent)));
        let versionless =
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
        assert!(!document_matches(&desired, versionless));
        let legacy = r#"{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
        assert!(!document_matches(&desired, legacy));
    }

    #[test]
    fn version_2008_differs_from_2012() {
        let new = statement(json!({ "Effect": "Allow", "Action": "s3:*", "Resource": "*" }));
        let mut old = new.clone();
        old["Version"] = json!("2008-10-17");
        assert!(!equivalent(&new, &old));
    }

    #[test]
    fn single_statement_object_equals_one_element_list() {
        let fields = json!({ "Effect": "Allow", "Action": "s3:*", "Resource": "*" });
        assert!(equivalent(
            &statement(fields.clone()),
            &json!({ "Version": "2012-10-17", "Statement": fields })
        ));
    }

    #[test]
    fn statement_order_does_not_matter() {
        let a = json!({ "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*" });
        let b = json!({ "Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "*" });
        assert!(equivalent(
            &json!({ "Statement": [a, b] }),
            &json!({ "Statement": [b, a] })
        ));
    }

    #[test]
    fn statement_key_order_does_not_matter() {
        let a: Value = serde_json::from_str(
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
        )
        .unwrap();
        let b: Value = serde_json::from_str(
            r#"{"Statement":[{"Resource":"*","Action":"s3:*","Effect":"Allow"}]}"#,
        )
        .unwrap();
        assert!(equivalent(&a, &b));
    }

    #[test]
    fn single_action_string_equals_one_element_list() {
        let one =
            statement(json!({ "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*" }));
        let list =
            statement(json!({ "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*" }));
        assert!(equivalent(&one, &list));
    }

    #[test]
    fn action_order_and_duplicates_do_not_matter() {
        let a = statement(
            json!({ "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "*" }),
        );
        let b = statement(
            json!({ "Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject", "s3:PutObject"], "Resource": "*" }),
        );
        assert!(equivalent(&a, &b));
    }

    #[test]
    fn action_names_compare_case_insensitively() {
        let a = statement(json!({ "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*" }));
        let b = statement(json!({ "Effect": "Allow", "Action": "S3:getobject", "Resource": "*" }));
        assert!(equivalent(&a, &b));
    }

    #[test]
    fn not_action_is_not_action() {
        let a = statement(json!({ "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*" }));
        let b =
            statement(json!({ "Effect": "Allow", "NotAction": "s3:GetObject", "Resource": "*" }));
        assert!(!equivalent(&a, &b));
    }

    #[test]
    fn changed_action_is_a_change() {
        let a = statement(json!({ "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*" }));
        let b =
            statement(json!({ "Effect": "Allow", "Action": "s3:GetObjectAcl", "Resource": "*" }));
        assert!(!equivalent(&a, &b));
    }

    #[test]
    fn resources_compare_case_sensitively() {
        let a = statement(
            json!({ "Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::Bucket" }),
        );
        let b = statement(
            json!({ "Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::bucket" }),
        );
        assert!(!equivalent(&a, &b));
    }

    #[test]
    fn resource_order_duplicates_and_single_form_do_not_matter() {
        let a = statement(
            json!({ "Effect": "Allow", "Action": "s3:*", "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::a"] }),
        );
        let b = statement(
            json!({ "Effect": "Allow", "Action": "s3:*", "Resource": ["arn:aws:s3:::a", "arn:aws:s3:::b", "arn:aws:s3:::a"] }),
        );
        assert!(equivalent(&a, &b));
        let one = statement(
            json!({ "Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::a" }),
        );
        let list = statement(
            json!({ "Effect": "Allow", "Action": "s3:*", "NotResource": ["arn:aws:s3:::a"] }),
        );
        assert!(equivalent(&one, &list));
    }

    #[test]
    fn changed_effect_is_a_change() {
        let a = statement(json!({ "Effect": "Allow", "Action": "s3:*", "Resource": "*" }));
        let b = statement(json!({ "Effect": "Deny", "Action": "s3:*", "Resource": "*" }));
        assert!(!equivalent(&a, &b));
    }

    #[test]
    fn account_id_principal_equals_its_root_arn() {
        let trust = |principal: Value| {
            statement(
                json!({ "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": principal }),
            )
        };
        let id = trust(json!({ "AWS": "123456789012" }));
        assert!(equivalent(
            &id,
            &trust(json!({ "AWS": "arn:aws:iam::123456789012:root" }))
        ));
        assert!(equivalent(
            &id,
            &trust(json!({ "AWS": ["arn:aws-cn:iam::123456789012:root"] }))
        ));
        assert!(!equivalent(
            &id,
            &trust(json!({ "AWS": "arn:aws:iam::210987654321:root" }))
        ));
    }

    #[test]
    fn role_arn_principal_is_not_its_account() {
        let trust = |principal: Value| {
            statement(
                json!({ "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": principal }),
            )
        };
        let role = trust(json!({ "AWS": "arn:aws:iam::123456789012:role/app" }));
        assert!(!equivalent(&role, &trust(json!({ "AWS": "123456789012" }))));
    }

    #[test]
    fn wildcard_principal_equals_aws_wildcard() {
        let trust = |principal: Value| {
            statement(
                json!({ "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": principal }),
            )
        };
        assert!(equivalent(
            &trust(json!("*")),
            &trust(json!({ "AWS": "*" }))
        ));
        assert!(equivalent(
            &trust(json!("*")),
            &trust(json!({ "AWS": ["*"] }))
        ));
        assert!(!equivalent(
            &trust(json!("*")),
            &trust(json!({ "Service": "*" }))
        ));
    }

    #[test]
    fn principal_values_ignore_order_duplicates_and_single_form() {
        let trust = |principal: Value| {
            statement(
                json!({ "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": principal }),
            )
        };
        let a = trust(json!({ "Service": ["lambda.amazonaws.com", "ec2.amazonaws.com"] }));
        let b = trust(
            json!({ "Service": ["ec2.amazonaws.com", "lambda.amazonaws.com", "ec2.amazonaws.com"] }),
        );
        assert!(equivalent(&a, &b));
        let one = trust(json!({ "Service": "ec2.amazonaws.com" }));
        assert!(equivalent(
            &one,
            &trust(json!({ "Service": ["ec2.amazonaws.com"] }))
        ));
        assert!(!equivalent(
            &one,
            &trust(json!({ "AWS": "ec2.amazonaws.com" }))
        ));
    }

    #[test]
    fn not_principal_is_normalized_like_principal() {
        let deny = |principal: Value| {
            statement(
                json!({ "Effect": "Deny", "Action": "s3:*", "Resource": "*", "NotPrincipal": principal }),
            )
        };
        assert!(equivalent(
            &deny(json!({ "AWS": "123456789012" })),
            &deny(json!({ "AWS": ["arn:aws:iam::123456789012:root"] }))
        ));
    }

    fn with_condition(condition: Value) -> Value {
        statement(
            json!({ "Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": condition }),
        )
    }

    #[test]
    fn condition_key_names_compare_case_insensitively() {
        let a = with_condition(json!({ "IpAddress": { "aws:SourceIp": "10.0.0.0/8" } }));
        let b = with_condition(json!({ "IpAddress": { "AWS:SOURCEIP": "10.0.0.0/8" } }));
        assert!(equivalent(&a, &b));
    }

    #[test]
    fn condition_keys_differing_only_in_case_are_both_kept() {
        let both =
            with_condition(json!({ "StringEquals": { "aws:username": "a", "AWS:username": "b" } }));
        let merged = with_condition(json!({ "StringEquals": { "aws:username": ["a", "b"] } }));
        assert!(!equivalent(&both, &merged));
        let swapped =
            with_condition(json!({ "StringEquals": { "aws:username": "b", "AWS:username": "a" } }));
        assert!(equivalent(&both, &swapped));
    }

    #[test]
    fn condition_operators_compare_case_sensitively() {
        let a = with_condition(json!({ "StringEquals": { "aws:username": "alice" } }));
        let b = with_condition(json!({ "stringequals": { "aws:username": "alice" } }));
        assert!(!equivalent(&a, &b));
    }

    #[test]
    fn condition_values_compare_case_sensitively() {
        let a = with_condition(json!({ "StringEquals": { "aws:username": "alice" } }));
        let b = with_condition(json!({ "StringEquals": { "aws:username": "Alice" } }));
        assert!(!equivalent(&a, &b));
    }

    #[test]
    fn condition_values_ignore_order_duplicates_and_single_form() {
        let a = with_condition(json!({ "StringEquals": { "aws:username": ["bob", "alice"] } }));
        let b = with_condition(
            json!({ "StringEquals": { "aws:username": ["alice", "bob", "alice"] } }),
        );
        assert!(equivalent(&a, &b));
        let one = with_condition(json!({ "StringEquals": { "aws:username": "alice" } }));
        assert!(equivalent(
            &one,
            &with_condition(json!({ "StringEquals": { "aws:username": ["alice"] } }))
        ));
    }

    #[test]
    fn condition_booleans_and_numbers_equal_their_string_form() {
        let typed = with_condition(
            json!({ "Bool": { "aws:SecureTransport": true }, "NumericLessThan": { "s3:max-keys": [5, 10] } }),
        );
        let strings = with_condition(
            json!({ "Bool": { "aws:SecureTransport": "true" }, "NumericLessThan": { "s3:max-keys": ["10", "5"] } }),
        );
        assert!(equivalent(&typed, &strings));
        let changed = with_condition(
            json!({ "Bool": { "aws:SecureTransport": false }, "NumericLessThan": { "s3:max-keys": [5, 10] } }),
        );
        assert!(!equivalent(&typed, &changed));
    }

    #[test]
    fn empty_condition_equals_no_condition() {
        let none = statement(json!({ "Effect": "Allow", "Action": "s3:*", "Resource": "*" }));
        assert!(equivalent(&none, &with_condition(json!({}))));
        assert!(equivalent(
            &none,
            &with_condition(json!({ "StringEquals": {} }))
        ));
    }

    #[test]
    fn changed_sid_is_a_change() {
        let a = statement(
            json!({ "Sid": "Read", "Effect": "Allow", "Action": "s3:*", "Resource": "*" }),
        );
        let b = statement(
            json!({ "Sid": "ReadAll", "Effect": "Allow", "Action": "s3:*", "Resource": "*" }),
        );
        let none = statement(json!({ "Effect": "Allow", "Action": "s3:*", "Resource": "*" }));
        assert!(!equivalent(&a, &b));
        assert!(!equivalent(&a, &none));
    }

    #[test]
    fn to_iam_json_is_compact_and_makes_the_version_explicit() {
        let document = doc(
            json!({ "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action": "s3:*", "Resource": "*" }] }),
        );
        assert_eq!(
            to_iam_json(&document),
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#
        );
        let without =
            doc(json!({ "Statement": [{ "Effect": "Allow", "Action": "s3:*", "Resource": "*" }] }));
        assert_eq!(to_iam_json(&without), to_iam_json(&document));
        let old = doc(
            json!({ "Version": "2008-10-17", "Statement": [{ "Effect": "Deny", "Action": "*", "Resource": "*" }] }),
        );
        assert!(to_iam_json(&old).starts_with(r#"{"Version":"2008-10-17","#));
    }

    #[test]
    fn document_matches_what_iam_returns_url_encoded() {
        let desired = doc(json!({
            "Version": "2012-10-17",
            "Statement": [{ "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::bucket/*" }]
        }));
        assert!(document_matches(&desired, ENCODED));
        assert!(document_matches(&desired, &to_iam_json(&desired)));
        assert!(document_matches(
            &desired,
            &percent_encode(&to_iam_json(&desired))
        ));
    }

    #[test]
    fn document_matches_a_trust_policy_iam_rewrote() {
        let desired = doc(json!({
            "Version": "2012-10-17",
            "Statement": [{ "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": { "AWS": "123456789012" } }]
        }));
        let observed = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#;
        assert!(document_matches(&desired, &percent_encode(observed)));
    }

    #[test]
    fn unreadable_observed_document_does_not_match() {
        let desired =
            doc(json!({ "Statement": [{ "Effect": "Allow", "Action": "s3:*", "Resource": "*" }] }));
        assert!(!document_matches(&desired, "%7B%ZZ"));
        assert!(!document_matches(&desired, ""));
    }

    #[test]
    fn valid_documents_pass_validation() {
        let document = doc(json!({
            "Version": "2012-10-17",
            "Statement": [
                { "Sid": "Read", "Effect": "Allow", "Action": ["s3:Get*", "s3:?istBucket"], "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"] },
                { "Sid": "Everything", "Effect": "Deny", "NotAction": "*", "NotResource": "*",
                  "Condition": { "Bool": { "aws:SecureTransport": false }, "StringLike": { "s3:prefix": ["a/*", "b/*"] } } },
                { "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": { "AWS": ["123456789012"], "Service": "ec2.amazonaws.com" } },
                { "Effect": "Allow", "Action": "execute-api:Invoke", "NotPrincipal": "*" }
            ]
        }));
        assert_eq!(validate(&document), Ok(()));
    }

    #[test]
    fn statement_without_action_or_not_action_is_invalid() {
        let errors = errors_of(json!({ "Statement": [{ "Effect": "Allow", "Resource": "*" }] }));
        assert_eq!(
            errors,
            ["Statement[0]: one of Action or NotAction is required"]
        );
    }

    #[test]
    fn statement_with_both_action_and_not_action_is_invalid() {
        let errors = errors_of(
            json!({ "Statement": [{ "Effect": "Allow", "Action": "s3:*", "NotAction": "s3:Get*", "Resource": "*" }] }),
        );
        assert_eq!(
            errors,
            ["Statement[0]: Action and NotAction cannot both be set"]
        );
    }

    #[test]
    fn statement_with_both_resource_and_not_resource_is_invalid() {
        let errors = errors_of(
            json!({ "Statement": [{ "Effect": "Allow", "Action": "s3:*", "Resource": "*", "NotResource": "*" }] }),
        );
        assert_eq!(
            errors,
            ["Statement[0]: Resource and NotResource cannot both be set"]
        );
    }

    #[test]
    fn statement_with_both_principal_and_not_principal_is_invalid() {
        let errors = errors_of(json!({
            "Statement": [{ "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": "*", "NotPrincipal": { "AWS": "123456789012" } }]
        }));
        assert_eq!(
            errors,
            ["Statement[0]: Principal and NotPrincipal cannot both be set"]
        );
    }

    #[test]
    fn empty_lists_and_empty_strings_are_invalid() {
        let errors = errors_of(json!({
            "Statement": [{ "Effect": "Allow", "Action": [], "Resource": ["arn:aws:s3:::b", ""] }]
        }));
        assert_eq!(
            errors,
            [
                "Statement[0].Action: the list must not be empty",
                "Statement[0].Resource[1]: must not be empty"
            ]
        );
    }

    #[test]
    fn malformed_actions_are_named_with_their_position() {
        let errors = errors_of(json!({
            "Statement": [
                { "Effect": "Allow", "Action": "s3:*", "Resource": "*" },
                { "Effect": "Allow", "Action": ["s3:GetObject", "s3GetObject", "s3:", ":Get", "s3:Get Object", "a:b:c"], "Resource": "*" }
            ]
        }));
        let locations: Vec<&str> = errors
            .iter()
            .map(|e| e.split(':').next().unwrap())
            .collect();
        assert_eq!(
            locations,
            [
                "Statement[1].Action[1]",
                "Statement[1].Action[2]",
                "Statement[1].Action[3]",
                "Statement[1].Action[4]",
                "Statement[1].Action[5]"
            ]
        );
        assert!(errors[0].contains("\"s3GetObject\" is not an action of the form service:Action"));
    }

    #[test]
    fn resources_must_be_arns_or_wildcard() {
        let errors = errors_of(
            json!({ "Statement": [{ "Effect": "Allow", "Action": "s3:*", "NotResource": "my-bucket" }] }),
        );
        assert_eq!(
            errors,
            ["Statement[0].NotResource: \"my-bucket\" is neither an ARN (arn:...) nor \"*\""]
        );
    }

    #[test]
    fn principals_must_be_wildcard_or_known_types() {
        let errors = errors_of(json!({
            "Statement": [
                { "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": "everyone" },
                { "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": { "Aws": "123456789012" } },
                { "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {} },
                { "Effect": "Allow", "Action": "sts:AssumeRole", "NotPrincipal": { "Service": [] } }
            ]
        }));
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors[0].starts_with("Statement[0].Principal: \"everyone\" is not a principal"));
        assert!(errors[1].starts_with("Statement[1].Principal.Aws: unknown principal type"));
        assert_eq!(
            errors[2],
            "Statement[2].Principal: at least one principal type is required"
        );
        assert_eq!(
            errors[3],
            "Statement[3].NotPrincipal.Service: the list must not be empty"
        );
    }

    #[test]
    fn sids_must_be_unique_within_a_document() {
        let errors = errors_of(json!({
            "Statement": [
                { "Sid": "Read", "Effect": "Allow", "Action": "s3:Get*", "Resource": "*" },
                { "Sid": "Write", "Effect": "Allow", "Action": "s3:Put*", "Resource": "*" },
                { "Sid": "Read", "Effect": "Allow", "Action": "s3:List*", "Resource": "*" }
            ]
        }));
        assert_eq!(
            errors,
            ["Statement[2].Sid: \"Read\" is already used by Statement[0]"]
        );
    }

    #[test]
    fn condition_values_must_be_scalars_or_non_empty_lists_of_scalars() {
        let errors = errors_of(json!({
            "Statement": [{ "Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {
                "StringEquals": { "aws:username": [], "aws:PrincipalTag/team": { "a": 1 }, "s3:prefix": ["ok", 5, true] },
                "Bool": {}
            } }]
        }));
        assert_eq!(
            errors,
            [
                "Statement[0].Condition.Bool: at least one condition key is required",
                "Statement[0].Condition.StringEquals.aws:PrincipalTag/team: must be a string, number or boolean, or a non-empty list of them",
                "Statement[0].Condition.StringEquals.aws:username: must be a string, number or boolean, or a non-empty list of them",
            ]
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let errors = errors_of(json!({
            "Statement": [
                { "Effect": "Allow", "Resource": "*", "NotResource": "*" },
                { "Effect": "Deny", "Action": "bad", "Resource": "*" }
            ]
        }));
        assert_eq!(errors.len(), 3, "{errors:?}");
    }

    #[test]
    fn empty_statement_list_is_invalid() {
        let errors = validate(&PolicyDocument {
            version: None,
            id: None,
            statement: vec![],
        })
        .unwrap_err();
        assert_eq!(errors, ["Statement: at least one statement is required"]);
    }

    fn document_with_resource_of(length: usize) -> PolicyDocument {
        doc(
            json!({ "Statement": [{ "Effect": "Allow", "Action": "s3:*", "Resource": "x".repeat(length) }] }),
        )
    }

    #[test]
    fn document_within_the_size_limit_passes() {
        let document = document_with_resource_of(10);
        let size = to_iam_json(&document).chars().count();
        assert_eq!(check_size(&document, size), Ok(()));
        assert_eq!(check_size(&document, MANAGED_POLICY_MAX_CHARS), Ok(()));
    }

    #[test]
    fn document_over_the_size_limit_is_rejected_with_its_size() {
        let document = document_with_resource_of(MANAGED_POLICY_MAX_CHARS);
        let size = to_iam_json(&document).chars().count();
        assert_eq!(
            check_size(&document, MANAGED_POLICY_MAX_CHARS),
            Err(format!(
                "the policy document is {size} characters (whitespace excluded), more than the {MANAGED_POLICY_MAX_CHARS} IAM allows"
            ))
        );
        assert!(check_size(&document, size - 1).is_err());
    }

    #[test]
    fn size_check_does_not_count_whitespace() {
        let spaced = doc(
            json!({ "Statement": [{ "Effect": "Allow", "Action": "s3:*", "Resource": "*",
            "Condition": { "StringEquals": { "aws:username": "a b c d" } } }] }),
        );
        let size = to_iam_json(&spaced).chars().count();
        assert_eq!(check_size(&spaced, size - 3), Ok(()));
        assert!(check_size(&spaced, size - 4).is_err());
    }

    #[test]
    fn size_counts_characters_not_bytes() {
        let ascii = document_with_resource_of(4);
        let mut accented = ascii.clone();
        accented.statement[0].resource = Some(OneOrMany::One("éééé".to_string()));
        let size = to_iam_json(&ascii).chars().count();
        assert_eq!(check_size(&accented, size), Ok(()));
    }

    // Property tests: a small model of a document, rendered in the many spellings IAM accepts.

    const ACTIONS: [&str; 6] = [
        "s3:GetObject",
        "s3:PutObject",
        "s3:*",
        "ec2:Describe*",
        "iam:PassRole",
        "*",
    ];
    const RESOURCES: [&str; 5] = [
        "*",
        "arn:aws:s3:::bucket",
        "arn:aws:s3:::Bucket",
        "arn:aws:s3:::bucket/*",
        "arn:aws:iam::123456789012:role/app",
    ];
    const CONDITIONS: [(&str, &str); 4] = [
        ("StringEquals", "aws:username"),
        ("StringEquals", "aws:PrincipalTag/team"),
        ("Bool", "aws:SecureTransport"),
        ("NumericLessThan", "s3:max-keys"),
    ];
    const CONDITION_VALUES: [&str; 6] = ["true", "false", "5", "10", "alice", "Alice"];
    const ACCOUNTS: [&str; 2] = ["111122223333", "444455556666"];
    const SERVICES: [&str; 2] = ["ec2.amazonaws.com", "lambda.amazonaws.com"];

    #[derive(Clone, Debug)]
    enum ModelPrincipal {
        Wildcard,
        Accounts(Vec<String>),
        Services(Vec<String>),
    }

    #[derive(Clone, Debug)]
    struct ModelStatement {
        has_sid: bool,
        allow: bool,
        actions: Vec<String>,
        resources: Vec<String>,
        principal: Option<ModelPrincipal>,
        conditions: Vec<(String, String, Vec<String>)>,
    }

    #[derive(Clone, Debug)]
    struct Model {
        /// `2012-10-17`; otherwise the legacy language, spelled `2008-10-17` or with no Version.
        current_version: bool,
        statements: Vec<ModelStatement>,
    }

    fn owned(values: Vec<&str>) -> Vec<String> {
        values.into_iter().map(str::to_string).collect()
    }

    fn model_principal() -> impl Strategy<Value = ModelPrincipal> {
        prop_oneof![
            Just(ModelPrincipal::Wildcard),
            prop::sample::subsequence(ACCOUNTS.to_vec(), 1..=2)
                .prop_map(|a| ModelPrincipal::Accounts(owned(a))),
            prop::sample::subsequence(SERVICES.to_vec(), 1..=2)
                .prop_map(|s| ModelPrincipal::Services(owned(s))),
        ]
    }

    fn model_statement() -> impl Strategy<Value = ModelStatement> {
        let condition = (
            prop::sample::subsequence(CONDITIONS.to_vec(), 0..=2),
            prop::collection::vec(
                prop::sample::subsequence(CONDITION_VALUES.to_vec(), 1..=3),
                2,
            ),
        )
            .prop_map(|(pairs, values)| {
                pairs
                    .into_iter()
                    .zip(values)
                    .map(|((operator, key), values)| {
                        (operator.to_string(), key.to_string(), owned(values))
                    })
                    .collect::<Vec<_>>()
            });
        (
            any::<bool>(),
            any::<bool>(),
            prop::sample::subsequence(ACTIONS.to_vec(), 1..=3),
            prop::sample::subsequence(RESOURCES.to_vec(), 1..=3),
            prop::option::of(model_principal()),
            condition,
        )
            .prop_map(
                |(has_sid, allow, actions, resources, principal, conditions)| ModelStatement {
                    has_sid,
                    allow,
                    actions: owned(actions),
                    resources: owned(resources),
                    principal,
                    conditions,
                },
            )
    }

    fn model() -> impl Strategy<Value = Model> {
        (
            any::<bool>(),
            prop::collection::vec(model_statement(), 1..=3),
        )
            .prop_map(|(current_version, statements)| Model {
                current_version,
                statements,
            })
    }

    /// A small deterministic generator, so one proptest seed picks one spelling.
    struct Spelling(u64);

    impl Spelling {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn coin(&mut self) -> bool {
            self.next() & 1 == 1
        }

        /// Shuffled, sometimes with a duplicate, and a single value sometimes as a bare string.
        fn list(&mut self, values: &[Value]) -> Value {
            let mut values = values.to_vec();
            for i in (1..values.len()).rev() {
                values.swap(i, self.below(i + 1));
            }
            if values.len() == 1 && self.coin() {
                return values.remove(0);
            }
            if self.coin() {
                let duplicate = values[self.below(values.len())].clone();
                values.insert(self.below(values.len() + 1), duplicate);
            }
            Value::Array(values)
        }

        fn case(&mut self, text: &str) -> String {
            match self.below(3) {
                0 => text.to_lowercase(),
                1 => text.to_uppercase(),
                _ => text.to_string(),
            }
        }
    }

    fn strings(values: &[String]) -> Vec<Value> {
        values.iter().map(|v| Value::String(v.clone())).collect()
    }

    fn render(model: &Model, seed: u64) -> Value {
        let mut spelling = Spelling(seed);
        let mut statements: Vec<Value> = model
            .statements
            .iter()
            .enumerate()
            .map(|(index, statement)| render_statement(index, statement, &mut spelling))
            .collect();
        for i in (1..statements.len()).rev() {
            statements.swap(i, spelling.below(i + 1));
        }
        let mut document = Map::new();
        if model.current_version {
            document.insert("Version".into(), json!("2012-10-17"));
        } else if spelling.coin() {
            document.insert("Version".into(), json!(IMPLIED_VERSION));
        }
        let statement = if statements.len() == 1 && spelling.coin() {
            statements.remove(0)
        } else {
            Value::Array(statements)
        };
        document.insert("Statement".into(), statement);
        Value::Object(document)
    }

    fn render_statement(
        index: usize,
        statement: &ModelStatement,
        spelling: &mut Spelling,
    ) -> Value {
        let mut fields = Map::new();
        if statement.has_sid {
            fields.insert("Sid".into(), json!(format!("Stmt{index}")));
        }
        fields.insert(
            "Effect".into(),
            json!(if statement.allow { "Allow" } else { "Deny" }),
        );
        let actions: Vec<Value> = statement
            .actions
            .iter()
            .map(|a| Value::String(spelling.case(a)))
            .collect();
        fields.insert("Action".into(), spelling.list(&actions));
        fields.insert(
            "Resource".into(),
            spelling.list(&strings(&statement.resources)),
        );
        if let Some(principal) = &statement.principal {
            let principal = match principal {
                ModelPrincipal::Wildcard if spelling.coin() => json!("*"),
                ModelPrincipal::Wildcard => json!({ "AWS": spelling.list(&[json!("*")]) }),
                ModelPrincipal::Accounts(accounts) => {
                    let spelled: Vec<Value> = accounts
                        .iter()
                        .map(|account| {
                            if spelling.coin() {
                                json!(account)
                            } else {
                                json!(format!("arn:aws:iam::{account}:root"))
                            }
                        })
                        .collect();
                    json!({ "AWS": spelling.list(&spelled) })
                }
                ModelPrincipal::Services(services) => {
                    json!({ "Service": spelling.list(&strings(services)) })
                }
            };
            fields.insert("Principal".into(), principal);
        }
        if !statement.conditions.is_empty() || spelling.coin() {
            let mut condition = Map::new();
            for (operator, key, values) in &statement.conditions {
                let spelled: Vec<Value> = values
                    .iter()
                    .map(
                        |value| match (value.parse::<i64>(), value.parse::<bool>()) {
                            (Ok(number), _) if spelling.coin() => json!(number),
                            (_, Ok(flag)) if spelling.coin() => json!(flag),
                            _ => json!(value),
                        },
                    )
                    .collect();
                let block = condition
                    .entry(operator.clone())
                    .or_insert_with(|| json!({}));
                block
                    .as_object_mut()
                    .unwrap()
                    .insert(spelling.case(key), spelling.list(&spelled));
            }
            fields.insert("Condition".into(), Value::Object(condition));
        }
        Value::Object(fields)
    }

    #[derive(Clone, Copy, Debug)]
    enum Mutation {
        Version,
        Action,
        Resource,
        Effect,
        ConditionValue,
    }

    fn mutate(model: &Model, mutation: Mutation, pick: usize) -> Model {
        let mut model = model.clone();
        if let Mutation::Version = mutation {
            model.current_version = !model.current_version;
            return model;
        }
        let count = model.statements.len();
        let with_conditions: Vec<usize> = (0..count)
            .filter(|&i| !model.statements[i].conditions.is_empty())
            .collect();
        let mutation = match mutation {
            Mutation::ConditionValue if with_conditions.is_empty() => Mutation::Effect,
            other => other,
        };
        let statement = match mutation {
            Mutation::ConditionValue => {
                &mut model.statements[with_conditions[pick % with_conditions.len()]]
            }
            _ => &mut model.statements[pick % count],
        };
        match mutation {
            Mutation::Version => unreachable!("handled above"),
            Mutation::Action => {
                let index = pick % statement.actions.len();
                statement.actions[index] = "s3:MutatedAction".to_string();
            }
            Mutation::Resource => {
                let index = pick % statement.resources.len();
                statement.resources[index] = "arn:aws:s3:::mutated".to_string();
            }
            Mutation::Effect => statement.allow = !statement.allow,
            Mutation::ConditionValue => {
                let condition = pick % statement.conditions.len();
                let values = &mut statement.conditions[condition].2;
                let index = pick % values.len();
                values[index] = "mutated-value".to_string();
            }
        }
        model
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            Just(Mutation::Version),
            Just(Mutation::Action),
            Just(Mutation::Resource),
            Just(Mutation::Effect),
            Just(Mutation::ConditionValue)
        ]
    }

    proptest! {
        #[test]
        fn any_two_spellings_of_a_document_are_equivalent(model in model(), a in any::<u64>(), b in any::<u64>()) {
            let first = render(&model, a);
            let second = render(&model, b);
            prop_assert!(equivalent(&first, &second), "{first}\n{second}");
        }

        #[test]
        fn url_encoded_and_reformatted_copies_are_equivalent(model in model(), a in any::<u64>(), b in any::<u64>()) {
            let original = render(&model, a);
            let copy = serde_json::to_string_pretty(&render(&model, b)).unwrap();
            prop_assert!(equivalent(&original, &decode_iam_document(&copy).unwrap()));
            prop_assert!(equivalent(&original, &decode_iam_document(&percent_encode(&copy)).unwrap()));
        }

        #[test]
        fn typed_document_matches_its_own_iam_json(model in model(), seed in any::<u64>()) {
            let mut rendered = render(&model, seed);
            if rendered["Statement"].is_object() {
                rendered["Statement"] = json!([rendered["Statement"].take()]);
            }
            let mut document: PolicyDocument = serde_json::from_value(rendered).unwrap();
            if !model.current_version {
                // A spec without Version means 2012-10-17; the legacy language is spelt out.
                document.version = Some(IMPLIED_VERSION.into());
            }
            prop_assert!(document_matches(&document, &percent_encode(&to_iam_json(&document))));
            prop_assert!(document_matches(&document, &render(&model, seed ^ 1).to_string()));
        }

        #[test]
        fn changing_one_element_is_never_equivalent(
            model in model(), mutation in mutation(), pick in any::<usize>(), a in any::<u64>(), b in any::<u64>(),
        ) {
            let changed = mutate(&model, mutation, pick);
            let original = render(&model, a);
            let mutated = render(&changed, b);
            prop_assert!(!equivalent(&original, &mutated), "{mutation:?}\n{original}\n{mutated}");
        }
    }
}
