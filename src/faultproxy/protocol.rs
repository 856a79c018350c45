//! The AWS query protocol as the proxy needs it: which service and operation a request is,
//! the names it touches, and the error bodies each service answers with.

use std::collections::BTreeMap;

/// The query-protocol services rolecall talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Iam,
    Sts,
    Ec2,
    Unknown,
}

/// What the proxy understood of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Call {
    pub operation: String,
    pub service: Option<Service>,
    /// The parameters naming what the call touches (`RoleName`, `PolicyArn`, `InstanceId`...);
    /// indexed parameters (`InstanceId.1`, `InstanceId.2`) are joined with commas.
    pub names: BTreeMap<String, String>,
}

/// Parameters worth logging: they say which AWS object a call reads or writes.
const NAME_PARAMETERS: &[&str] = &[
    "PolicyName",
    "RoleName",
    "InstanceProfileName",
    "PolicyArn",
    "VersionId",
    "InstanceId",
    "AssociationId",
    "IamInstanceProfile.Arn",
    "IamInstanceProfile.Name",
    "RoleArn",
];

/// Parses a form body (`Action=CreateRole&RoleName=web&Version=2010-05-08`) and, when the
/// body gives no API version, the SigV4 credential scope of the `Authorization` header.
pub fn parse_call(body: &[u8], authorization: Option<&str>) -> Call {
    let mut call = Call::default();
    let mut version = None;
    for (key, value) in form_pairs(body) {
        match key.as_str() {
            "Action" => call.operation = value,
            "Version" => version = Some(value),
            _ => {
                let base = strip_index(&key);
                if NAME_PARAMETERS.contains(&base) {
                    call.names
                        .entry(base.to_owned())
                        .and_modify(|joined| {
                            joined.push(',');
                            joined.push_str(&value);
                        })
                        .or_insert(value);
                }
            }
        }
    }
    call.service = version
        .as_deref()
        .map(service_of_version)
        .filter(|service| *service != Service::Unknown)
        .or_else(|| authorization.map(service_of_authorization));
    call
}

/// `InstanceId.3` → `InstanceId`; `IamInstanceProfile.Arn` stays as is.
fn strip_index(key: &str) -> &str {
    match key.rsplit_once('.') {
        Some((base, index)) if index.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => key,
    }
}

fn service_of_version(version: &str) -> Service {
    match version {
        "2010-05-08" => Service::Iam,
        "2011-06-15" => Service::Sts,
        "2016-11-15" => Service::Ec2,
        _ => Service::Unknown,
    }
}

/// `AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/iam/aws4_request, ...` → IAM.
fn service_of_authorization(header: &str) -> Service {
    let scope = header
        .split("Credential=")
        .nth(1)
        .and_then(|rest| rest.split([',', ' ']).next())
        .unwrap_or_default();
    match scope.split('/').nth(3) {
        Some("iam") => Service::Iam,
        Some("sts") => Service::Sts,
        Some("ec2") => Service::Ec2,
        _ => Service::Unknown,
    }
}

/// The `key=value` pairs of an `application/x-www-form-urlencoded` body, decoded.
pub fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    body.split(|byte| *byte == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let mut parts = pair.splitn(2, |byte| *byte == b'=');
            let key = percent_decode(parts.next().unwrap_or_default());
            let value = percent_decode(parts.next().unwrap_or_default());
            (key, value)
        })
        .collect()
}

fn percent_decode(raw: &[u8]) -> String {
    // Form bodies write a space as `+` (a literal plus arrives as `%2B`); a broken escape is
    // kept as it is.
    let spaced: Vec<u8> = raw
        .iter()
        .map(|&byte| if byte == b'+' { b' ' } else { byte })
        .collect();
    percent_encoding::percent_decode(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// An error answer: HTTP status and XML body, shaped the way the service shapes its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorAnswer {
    pub status: u16,
    pub body: String,
}

/// "Slow down": IAM and STS answer 400 `Throttling`; EC2 answers 503 `RequestLimitExceeded`.
pub fn throttling(service: Service, request_id: &str) -> ErrorAnswer {
    match service {
        Service::Ec2 => ErrorAnswer {
            status: 503,
            body: ec2_error(
                "RequestLimitExceeded",
                "Request limit exceeded.",
                request_id,
            ),
        },
        _ => ErrorAnswer {
            status: 400,
            body: query_error("Sender", "Throttling", "Rate exceeded", request_id),
        },
    }
}

/// A server-side failure: EC2 `InternalError`, IAM and STS `ServiceFailure`, both HTTP 500.
pub fn internal_error(service: Service, request_id: &str) -> ErrorAnswer {
    let message = "An internal error has occurred (injected by rolecall fault-proxy)";
    let body = match service {
        Service::Ec2 => ec2_error("InternalError", message, request_id),
        _ => query_error("Receiver", "ServiceFailure", message, request_id),
    };
    ErrorAnswer { status: 500, body }
}

fn query_error(kind: &str, code: &str, message: &str, request_id: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">\
         <Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error>\
         <RequestId>{request_id}</RequestId></ErrorResponse>"
    )
}

fn ec2_error(code: &str, message: &str, request_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>\
         <RequestID>{request_id}</RequestID></Response>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_action_and_names_come_from_the_form_body() {
        let body = b"Action=AttachRolePolicy&Version=2010-05-08&RoleName=web&\
                     PolicyArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Apolicy%2Fread";
        let call = parse_call(body, None);
        assert_eq!(call.operation, "AttachRolePolicy");
        assert_eq!(call.service, Some(Service::Iam));
        assert_eq!(call.names["RoleName"], "web");
        assert_eq!(
            call.names["PolicyArn"],
            "arn:aws:iam::123456789012:policy/read"
        );
    }

    #[test]
    fn indexed_parameters_are_joined_and_ec2_is_recognised() {
        let body = b"Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-1&InstanceId.2=i-2";
        let call = parse_call(body, None);
        assert_eq!(call.service, Some(Service::Ec2));
        assert_eq!(call.names["InstanceId"], "i-1,i-2");
        let associate = parse_call(
            b"Action=AssociateIamInstanceProfile&IamInstanceProfile.Arn=arn&InstanceId=i-1",
            None,
        );
        assert_eq!(associate.names["IamInstanceProfile.Arn"], "arn");
    }

    #[test]
    fn the_credential_scope_names_the_service_when_the_body_does_not() {
        let header = "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/sts/aws4_request, \
                      SignedHeaders=host, Signature=abc";
        assert_eq!(
            parse_call(b"Action=X", Some(header)).service,
            Some(Service::Sts)
        );
        assert_eq!(parse_call(b"Action=X", None).service, None);
    }

    #[test]
    fn decoding_handles_plus_percent_and_broken_escapes() {
        assert_eq!(percent_decode(b"a+b%20c"), "a b c");
        assert_eq!(percent_decode(b"100%"), "100%");
        assert_eq!(percent_decode(b"%zz"), "%zz");
        assert_eq!(percent_decode(b"%C3%A9"), "é");
    }

    #[test]
    fn throttling_has_each_services_shape() {
        let iam = throttling(Service::Iam, "r1");
        assert_eq!(iam.status, 400);
        assert!(
            iam.body
                .contains("<Type>Sender</Type><Code>Throttling</Code>")
        );
        let ec2 = throttling(Service::Ec2, "r2");
        assert_eq!(ec2.status, 503);
        assert!(
            ec2.body
                .contains("<Errors><Error><Code>RequestLimitExceeded</Code>")
        );
    }

    #[test]
    fn internal_errors_are_500s() {
        assert_eq!(internal_error(Service::Iam, "r").status, 500);
        assert!(
            internal_error(Service::Ec2, "r")
                .body
                .contains("InternalError")
        );
        assert!(
            internal_error(Service::Sts, "r")
                .body
                .contains("ServiceFailure")
        );
    }
}
