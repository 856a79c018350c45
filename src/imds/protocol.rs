//! What the instance metadata service says, without I/O: which path answers what, the IMDSv2
//! token rules, and the JSON documents in the shape EC2 serves them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_sts::primitives::{DateTime, DateTimeFormat};
use hyper::Method;
use serde::Serialize;

/// The header a client sends with `PUT /latest/api/token` to choose the token's lifetime.
pub const TOKEN_TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
/// The header that carries the token on every other request.
pub const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
/// Longest token lifetime IMDS accepts: six hours.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(21_600);
/// The one instance-identity credential name EC2 serves.
pub const IDENTITY_CREDENTIALS_NAME: &str = "ec2-instance";

const SECURITY_CREDENTIALS: &str = "/latest/meta-data/iam/security-credentials/";
const IDENTITY_CREDENTIALS: &str = "/latest/dynamic/identity-credentials/ec2/security-credentials/";

/// The directories this mock can list, relative to `/latest/`, without the trailing slash.
/// Whether one is listed (or 404) depends on what the instance has: see `served_files`.
pub const DIRECTORIES: [&str; 8] = [
    "",
    "meta-data",
    "meta-data/iam",
    "meta-data/iam/security-credentials",
    "dynamic",
    "dynamic/identity-credentials",
    "dynamic/identity-credentials/ec2",
    "dynamic/identity-credentials/ec2/security-credentials",
];

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `PUT /latest/api/token`: a new IMDSv2 session token.
    Token,
    /// `meta-data/instance-id`.
    InstanceId,
    /// `meta-data/iam/info`: the instance profile.
    IamInfo,
    /// A directory (one of `DIRECTORIES`), with or without the trailing slash: its entries,
    /// one a line, subdirectories ending in `/`. `security-credentials/` lists the role's name.
    Listing(&'static str),
    /// `meta-data/iam/security-credentials/<role>`: credentials for that role.
    RoleCredentials(String),
    /// `dynamic/identity-credentials/ec2/security-credentials/ec2-instance`.
    IdentityCredentials,
    /// A path this mock knows, asked with the wrong method.
    MethodNotAllowed,
    NotFound,
}

/// Maps a method and path (without the query) to what it asks for.
pub fn route(method: &Method, path: &str) -> Route {
    let found = match path {
        "/latest/api/token" => Some((Method::PUT, Route::Token)),
        "/latest/meta-data/instance-id" => Some((Method::GET, Route::InstanceId)),
        "/latest/meta-data/iam/info" => Some((Method::GET, Route::IamInfo)),
        _ => None,
    }
    .or_else(|| Some((Method::GET, Route::Listing(directory(path)?))))
    .or_else(|| {
        let role = path.strip_prefix(SECURITY_CREDENTIALS)?;
        (!role.is_empty() && !role.contains('/'))
            .then(|| (Method::GET, Route::RoleCredentials(role.to_owned())))
    })
    .or_else(|| {
        (path.strip_prefix(IDENTITY_CREDENTIALS)? == IDENTITY_CREDENTIALS_NAME)
            .then_some((Method::GET, Route::IdentityCredentials))
    });
    match found {
        // HEAD is answered like GET (without a body), as a web server does.
        Some((expected, route))
            if *method == expected || (expected == Method::GET && *method == Method::HEAD) =>
        {
            route
        }
        Some(_) => Route::MethodNotAllowed,
        None => Route::NotFound,
    }
}

/// The directory `path` names, if it is one of `DIRECTORIES`. Like EC2, a directory answers
/// with and without the trailing slash (`iam/security-credentials` lists the role too).
fn directory(path: &str) -> Option<&'static str> {
    if path == "/latest" || path == "/latest/" {
        return Some("");
    }
    let rest = path.strip_prefix("/latest/")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    DIRECTORIES
        .into_iter()
        .find(|directory| !directory.is_empty() && *directory == rest)
}

/// The files this mock serves an instance, relative to `/latest/`: `iam/info` while it has a
/// profile, the role's credentials (and the identity credentials, see the module `imds`) while
/// that profile holds a role. Listings are derived from these, so every listed entry answers.
pub fn served_files(has_profile: bool, role: Option<&str>) -> Vec<String> {
    let mut files = vec!["meta-data/instance-id".to_owned()];
    if has_profile {
        files.push("meta-data/iam/info".to_owned());
    }
    if let Some(role) = role {
        files.push(format!("meta-data/iam/security-credentials/{role}"));
        files.push(format!(
            "dynamic/identity-credentials/ec2/security-credentials/{IDENTITY_CREDENTIALS_NAME}"
        ));
    }
    files
}

/// The entries of `directory` (relative to `/latest/`, no trailing slash) holding `files`:
/// each name once, sorted, subdirectories ending in `/`. `None` for a directory with nothing
/// in it, which EC2 answers with 404 (`security-credentials/` of an instance without a role).
pub fn listing(files: &[String], directory: &str) -> Option<Vec<String>> {
    let prefix = if directory.is_empty() {
        String::new()
    } else {
        format!("{directory}/")
    };
    let mut entries: Vec<String> = files
        .iter()
        .filter_map(|file| file.strip_prefix(&prefix))
        .map(|rest| match rest.split_once('/') {
            Some((subdirectory, _)) => format!("{subdirectory}/"),
            None => rest.to_owned(),
        })
        .collect();
    entries.sort();
    entries.dedup();
    (!entries.is_empty()).then_some(entries)
}

/// Why a token request is refused with 400.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenTtlError {
    #[error("missing X-aws-ec2-metadata-token-ttl-seconds header")]
    Missing,
    #[error(
        "X-aws-ec2-metadata-token-ttl-seconds must be a whole number of seconds from 1 to 21600"
    )]
    OutOfRange,
}

/// Reads the TTL header of a token request: 1 to 21600 seconds, as EC2 accepts.
pub fn parse_token_ttl(header: Option<&str>) -> Result<Duration, TokenTtlError> {
    let text = header.ok_or(TokenTtlError::Missing)?.trim();
    let seconds: u64 = text.parse().map_err(|_| TokenTtlError::OutOfRange)?;
    let ttl = Duration::from_secs(seconds);
    if seconds == 0 || ttl > MAX_TOKEN_TTL {
        return Err(TokenTtlError::OutOfRange);
    }
    Ok(ttl)
}

/// Whether a metadata request may be answered. A token that is present must be valid even
/// when IMDSv1 is allowed (EC2 answers 401 to a stale token rather than ignoring it).
pub fn may_read(
    token: Option<&str>,
    token_is_valid: impl FnOnce(&str) -> bool,
    allow_v1: bool,
) -> bool {
    match token {
        Some(token) => token_is_valid(token),
        None => allow_v1,
    }
}

/// `iam/info`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct IamInfo {
    pub code: &'static str,
    pub last_updated: String,
    pub instance_profile_arn: String,
    pub instance_profile_id: String,
}

impl IamInfo {
    pub fn new(profile_arn: &str, profile_id: &str, now: SystemTime) -> Self {
        Self {
            code: "Success",
            last_updated: timestamp(now),
            instance_profile_arn: profile_arn.to_owned(),
            instance_profile_id: profile_id.to_owned(),
        }
    }
}

/// `iam/security-credentials/<role>` and the instance-identity credentials.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CredentialsDocument {
    pub code: &'static str,
    pub last_updated: String,
    #[serde(rename = "Type")]
    pub kind: &'static str,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub token: String,
    pub expiration: String,
}

/// Temporary credentials as STS minted them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expiration: SystemTime,
    /// When they were minted.
    pub issued: SystemTime,
}

impl From<&SessionCredentials> for CredentialsDocument {
    fn from(credentials: &SessionCredentials) -> Self {
        Self {
            code: "Success",
            last_updated: timestamp(credentials.issued),
            kind: "AWS-HMAC",
            access_key_id: credentials.access_key_id.clone(),
            secret_access_key: credentials.secret_access_key.clone(),
            token: credentials.session_token.clone(),
            expiration: timestamp(credentials.expiration),
        }
    }
}

/// Formats a time as IMDS does: RFC 3339 in UTC, whole seconds, `Z` (`2026-11-23T12:00:00Z`).
pub fn timestamp(time: SystemTime) -> String {
    let seconds = match time.duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_secs() as i64,
        Err(before) => -(before.duration().as_secs() as i64),
    };
    DateTime::from_secs(seconds)
        .fmt(DateTimeFormat::DateTime)
        .expect("whole-second times within the year range format")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_like_ec2() {
        let get = Method::GET;
        assert_eq!(route(&Method::PUT, "/latest/api/token"), Route::Token);
        assert_eq!(route(&get, "/latest/api/token"), Route::MethodNotAllowed);
        assert_eq!(
            route(&get, "/latest/meta-data/instance-id"),
            Route::InstanceId
        );
        assert_eq!(
            route(&Method::HEAD, "/latest/meta-data/instance-id"),
            Route::InstanceId
        );
        assert_eq!(route(&get, "/latest/meta-data/iam/info"), Route::IamInfo);
        assert_eq!(
            route(&get, "/latest/meta-data/iam/security-credentials/"),
            Route::Listing("meta-data/iam/security-credentials")
        );
        assert_eq!(
            route(&get, "/latest/meta-data/iam/security-credentials"),
            Route::Listing("meta-data/iam/security-credentials")
        );
        assert_eq!(
            route(&get, "/latest/meta-data/iam/security-credentials/app-role"),
            Route::RoleCredentials("app-role".into())
        );
        assert_eq!(
            route(
                &get,
                "/latest/dynamic/identity-credentials/ec2/security-credentials/ec2-instance"
            ),
            Route::IdentityCredentials
        );
        assert_eq!(
            route(
                &Method::PUT,
                "/latest/meta-data/iam/security-credentials/app-role"
            ),
            Route::MethodNotAllowed
        );
    }

    #[test]
    fn unknown_paths_are_not_found() {
        for path in [
            "/",
            "/latest/meta-data/iam/security-credentials/app-role/extra",
            "/latest/meta-data/iam/security-credentialsX",
            "/latest/dynamic/identity-credentials/ec2/security-credentials/other",
            "/latest/meta-data/instance-id/",
            "/latest/meta-data/iam/info/",
            "/latest//",
            "/latest/meta-data//",
            "/latest/user-data",
            "/meta-data/",
        ] {
            assert_eq!(route(&Method::GET, path), Route::NotFound, "{path}");
        }
    }

    #[test]
    fn directories_route_with_and_without_the_trailing_slash() {
        assert_eq!(route(&Method::GET, "/latest"), Route::Listing(""));
        for directory in DIRECTORIES {
            for path in [
                format!("/latest/{directory}"),
                format!("/latest/{directory}/"),
            ] {
                let path = path.replace("//", "/");
                assert_eq!(
                    route(&Method::GET, &path),
                    Route::Listing(directory),
                    "{path}"
                );
                assert_eq!(route(&Method::HEAD, &path), Route::Listing(directory));
                assert_eq!(route(&Method::PUT, &path), Route::MethodNotAllowed);
            }
        }
    }

    #[test]
    fn listings_name_files_and_subdirectories_once() {
        let files = served_files(true, Some("app-role"));
        let list = |directory| listing(&files, directory);
        assert_eq!(list("").unwrap(), ["dynamic/", "meta-data/"]);
        assert_eq!(list("meta-data").unwrap(), ["iam/", "instance-id"]);
        assert_eq!(
            list("meta-data/iam").unwrap(),
            ["info", "security-credentials/"]
        );
        assert_eq!(
            list("meta-data/iam/security-credentials").unwrap(),
            ["app-role"]
        );
        assert_eq!(
            list("dynamic/identity-credentials/ec2/security-credentials").unwrap(),
            [IDENTITY_CREDENTIALS_NAME]
        );
        // Not a directory: a file's name is no prefix of another's.
        assert_eq!(list("meta-data/instance"), None);
    }

    #[test]
    fn listings_leave_out_what_the_instance_does_not_have() {
        let no_profile = served_files(false, None);
        assert_eq!(listing(&no_profile, "").unwrap(), ["meta-data/"]);
        assert_eq!(listing(&no_profile, "meta-data").unwrap(), ["instance-id"]);
        for empty in [
            "meta-data/iam",
            "meta-data/iam/security-credentials",
            "dynamic",
        ] {
            assert_eq!(listing(&no_profile, empty), None, "{empty}");
        }
        let no_role = served_files(true, None);
        assert_eq!(listing(&no_role, "meta-data/iam").unwrap(), ["info"]);
        assert_eq!(
            listing(&no_role, "meta-data/iam/security-credentials"),
            None
        );
    }

    #[test]
    fn every_listed_file_routes_to_what_serves_it() {
        let files = served_files(true, Some("app-role"));
        for file in &files {
            let route = route(&Method::GET, &format!("/latest/{file}"));
            assert!(
                !matches!(route, Route::NotFound | Route::Listing(_)),
                "{file}: {route:?}"
            );
        }
        for directory in DIRECTORIES {
            assert!(listing(&files, directory).is_some(), "{directory:?}");
        }
    }

    #[test]
    fn token_ttl_is_one_second_to_six_hours() {
        assert_eq!(parse_token_ttl(Some("1")), Ok(Duration::from_secs(1)));
        assert_eq!(parse_token_ttl(Some("21600")), Ok(MAX_TOKEN_TTL));
        assert_eq!(parse_token_ttl(Some(" 60 ")), Ok(Duration::from_secs(60)));
        assert_eq!(parse_token_ttl(None), Err(TokenTtlError::Missing));
        for bad in ["0", "21601", "-5", "1.5", "", "sixty"] {
            assert_eq!(
                parse_token_ttl(Some(bad)),
                Err(TokenTtlError::OutOfRange),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn reads_need_a_valid_token_unless_v1_is_allowed() {
        assert!(may_read(Some("good"), |t| t == "good", false));
        assert!(!may_read(Some("stale"), |t| t == "good", false));
        assert!(!may_read(Some("stale"), |t| t == "good", true));
        assert!(!may_read(None, |_| true, false));
        assert!(may_read(None, |_| false, true));
    }

    #[test]
    fn timestamps_are_whole_seconds_in_utc() {
        let time = UNIX_EPOCH + Duration::from_millis(1_795_435_200_750);
        assert_eq!(timestamp(time), "2026-11-23T12:00:00Z");
    }

    #[test]
    fn credentials_document_has_the_fields_sdks_read() {
        let issued = UNIX_EPOCH + Duration::from_secs(1_795_435_200);
        let credentials = SessionCredentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: "secret".into(),
            session_token: "session".into(),
            expiration: issued + Duration::from_secs(3600),
            issued,
        };
        let json = serde_json::to_value(CredentialsDocument::from(&credentials)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "Code": "Success",
                "LastUpdated": "2026-11-23T12:00:00Z",
                "Type": "AWS-HMAC",
                "AccessKeyId": "ASIAEXAMPLE",
                "SecretAccessKey": "secret",
                "Token": "session",
                "Expiration": "2026-11-23T13:00:00Z",
            })
        );
    }

    #[test]
    fn iam_info_names_the_profile() {
        let info = IamInfo::new(
            "arn:aws:iam::123456789012:instance-profile/app",
            "AIPAEXAMPLE",
            UNIX_EPOCH,
        );
        assert_eq!(
            serde_json::to_value(info).unwrap(),
            serde_json::json!({
                "Code": "Success",
                "LastUpdated": "1970-01-01T00:00:00Z",
                "InstanceProfileArn": "arn:aws:iam::123456789012:instance-profile/app",
                "InstanceProfileId": "AIPAEXAMPLE",
            })
        );
    }
}
