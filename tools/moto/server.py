"""moto_server with fixture patches: an AWS service as a trust-policy principal,
DeletePolicy refused while the policy is attached, ListEntitiesForPolicy over every role, the
root user's MFA and access keys (settable by tests), and CreateLoginProfile's
PasswordResetRequired, as IAM does; GetAccountAuthorizationDetails with its policies' names
and ids, a page at a time.

Real EC2 assumes an instance's role as the service principal ec2.amazonaws.com. moto
authenticates only IAM users and roles, and crashes (HTTP 500) on a trust policy whose
principal is a Service. Here a request signed by the IAM user named after a service (the
IMDS mock signs as user "ec2.amazonaws.com") matches a trust statement naming that
service; every other check is moto's own.

moto deletes an attached managed policy and leaves the attachment behind, which no call can
detach and which then blocks DeleteRole forever; IAM answers DeleteConflict instead. And its
ListEntitiesForPolicy looks only at the first 100 roles (by id), so with more roles a policy's
attachments go unseen.

moto has no root user: GetAccountSummary always answers AccountMFAEnabled 0 and
AccountAccessKeysPresent 0, the credential report has no <root_account> row, and no virtual
MFA device can belong to root. Tests set an account's root state with
`POST /rolecall-moto/root` and a JSON body `{"account": "123456789012", "mfa": "virtual" |
"hardware" | null, "accessKeys": 0..2}` (`GET /rolecall-moto/root?account=...` reads it); the
summary, the report's root row and ListVirtualMFADevices then answer as IAM would for that
root user. moto's CreateLoginProfile also ignores PasswordResetRequired (always false).

IAM users, as IAM has them: moto keeps no permissions boundary on a user (CreateUser drops
PermissionsBoundary, GetUser never returns one, Put/DeleteUserPermissionsBoundary are missing);
its DeleteUser succeeds while the user still has a login profile, access keys, MFA devices,
group memberships, signing certificates, SSH public keys or service-specific credentials, where
IAM answers DeleteConflict; it has no service-specific credentials at all (Create, List and
Delete are added here); and its Create/UpdateLoginProfile accept
any password, where IAM refuses one the account's password policy does not allow
(PasswordPolicyViolation).

Usage: python server.py [moto_server arguments]
"""

import json
import threading
from datetime import datetime, timezone
from types import SimpleNamespace
from urllib.parse import parse_qs

import moto.iam.access_control as access_control
from moto.iam.exceptions import DeleteConflictException
from moto.iam.models import AccountSummary, IAMBackend, VirtualMfaDevice
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.core.responses import EmptyResult
from moto.core.serialize import return_if_not_empty
from moto.iam.responses import IamResponse
from moto.server import main

_original_check_principal = access_control.IAMPolicyStatement._check_principal


def _check_principal(self, principal):
    expected = self._statement.get("Principal")
    if isinstance(expected, dict) and "AWS" not in expected:
        services = expected.get("Service", [])
        if isinstance(services, str):
            services = [services]
        return any(principal.endswith(f":user/{service}") for service in services)
    return _original_check_principal(self, principal)


access_control.IAMPolicyStatement._check_principal = _check_principal

_original_delete_policy = IAMBackend.delete_policy


def _delete_policy(self, policy_arn):
    # Not moto's attachment_count: it counts a repeated AttachRolePolicy twice.
    entities = [*self.roles.values(), *self.users.values(), *self.groups.values()]
    if any(policy_arn in entity.managed_policies for entity in entities):
        raise DeleteConflictException("Cannot delete a policy attached to entities.")
    return _original_delete_policy(self, policy_arn)


IAMBackend.delete_policy = _delete_policy

_listing_entities = threading.local()
_original_list_roles = IAMBackend.list_roles


def _list_roles(self, path_prefix=None, marker=None, max_items=None):
    if getattr(_listing_entities, "active", False):
        max_items = max(len(self.roles), 1)
    return _original_list_roles(self, path_prefix, marker, max_items)


_original_list_entities_for_policy = IamResponse.list_entities_for_policy


def _list_entities_for_policy(self):
    _listing_entities.active = True
    try:
        return _original_list_entities_for_policy(self)
    finally:
        _listing_entities.active = False


IAMBackend.list_roles = _list_roles
IamResponse.list_entities_for_policy = _list_entities_for_policy

# ---- the root user ----

_root_states = {}  # account id -> {"mfa": None | "virtual" | "hardware", "accessKeys": int, "since": datetime}
_root_lock = threading.Lock()


def _root_state(account_id):
    with _root_lock:
        return dict(_root_states.get(account_id, {"mfa": None, "accessKeys": 0, "since": None}))


_original_summary_map = AccountSummary.summary_map.fget


def _summary_map(self):
    summary = _original_summary_map(self)
    root = _root_state(self._iam_backend.account_id)
    summary["AccountMFAEnabled"] = 1 if root["mfa"] else 0
    summary["AccountAccessKeysPresent"] = 1 if root["accessKeys"] else 0
    return summary


AccountSummary.summary_map = property(_summary_map)

_original_get_credential_report = IAMBackend.get_credential_report


def _get_credential_report(self):
    report = _original_get_credential_report(self)
    header, _, users = report.partition("\n")
    root = _root_state(self.account_id)
    stamp = "%Y-%m-%dT%H:%M:%S+00:00"
    since = (root["since"] or datetime.now(timezone.utc)).strftime(stamp)
    keys = []
    for index in range(2):
        if index < root["accessKeys"]:
            keys.append(["true", since, "N/A", "N/A", "N/A"])
        else:
            keys.append(["false", "N/A", "N/A", "N/A", "N/A"])
    # IAM's root row: no password columns of its own, the account's creation as its own.
    row = [
        "<root_account>",
        f"arn:aws:iam::{self.account_id}:root",
        since,
        "not_supported",
        "no_information",
        "not_supported",
        "not_supported",
        "true" if root["mfa"] else "false",
        *keys[0],
        *keys[1],
        "false",
        "N/A",
        "false",
        "N/A",
    ]
    return f"{header}\n{','.join(row)}\n{users}"


IAMBackend.get_credential_report = _get_credential_report

_original_list_virtual_mfa_devices = IAMBackend.list_virtual_mfa_devices


def _list_virtual_mfa_devices(self, assignment_status, marker, max_items):
    devices, next_marker = _original_list_virtual_mfa_devices(
        self, assignment_status, marker, max_items
    )
    root = _root_state(self.account_id)
    # One page is enough for tests; the root device leads the first one.
    if root["mfa"] == "virtual" and assignment_status != "Unassigned" and not marker:
        device = VirtualMfaDevice(self.account_id, self.region_name, "/root-account-mfa-device")
        device.enable_date = root["since"]
        # IAM names root's device's user by the account's ARN.
        device.user = SimpleNamespace(
            path="/",
            name="root",
            id=self.account_id,
            arn=f"arn:aws:iam::{self.account_id}:root",
            create_date=root["since"],
        )
        devices = [device, *devices]
    return devices, next_marker


IAMBackend.list_virtual_mfa_devices = _list_virtual_mfa_devices

_original_dispatch = DomainDispatcherApplication.__call__


def _dispatch(self, environ, start_response):
    if environ.get("PATH_INFO") != "/rolecall-moto/root":
        return _original_dispatch(self, environ, start_response)
    try:
        if environ["REQUEST_METHOD"] == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = json.loads(environ["wsgi.input"].read(length) or b"{}")
            account = str(body["account"])
            mfa = body.get("mfa")
            keys = int(body.get("accessKeys", 0))
            if mfa not in (None, "virtual", "hardware") or not 0 <= keys <= 2:
                raise ValueError("mfa is virtual, hardware or null; accessKeys 0..2")
            with _root_lock:
                _root_states[account] = {
                    "mfa": mfa,
                    "accessKeys": keys,
                    "since": datetime.now(timezone.utc),
                }
        else:
            account = parse_qs(environ.get("QUERY_STRING", "")).get("account", [""])[0]
        root = _root_state(account)
        answer = {"account": account, "mfa": root["mfa"], "accessKeys": root["accessKeys"]}
        status = "200 OK"
    except (KeyError, ValueError) as error:
        answer, status = {"error": str(error)}, "400 Bad Request"
    start_response(status, [("Content-Type", "application/json")])
    return [json.dumps(answer).encode()]


DomainDispatcherApplication.__call__ = _dispatch

# ---- CreateLoginProfile ----

_original_create_login_profile = IamResponse.create_login_profile


def _create_login_profile(self):
    _original_create_login_profile(self)
    user = self.backend.get_user(self._get_param("UserName"))
    user.password_reset_required = self._get_bool_param("PasswordResetRequired", False)
    # The same LoginProfile answer, now carrying the flag.
    return IamResponse.get_login_profile(self)


IamResponse.create_login_profile = _create_login_profile

# ---- IAM users ----

from moto.iam.exceptions import IAMException
from moto.iam.models import User


class PasswordPolicyViolation(IAMException):
    code = "PasswordPolicyViolation"


_SYMBOLS = set("!@#$%^&*()_+-=[]{}|'")


def _check_password(backend, password):
    policy = backend.account_password_policy
    minimum = policy.minimum_password_length if policy else 8
    problems = []
    if len(password or "") < (minimum or 8):
        problems.append(f"at least {minimum} characters")
    if policy:
        for required, test, what in [
            (policy.require_uppercase_characters, str.isupper, "an uppercase letter"),
            (policy.require_lowercase_characters, str.islower, "a lowercase letter"),
            (policy.require_numbers, str.isdigit, "a number"),
        ]:
            if required and not any(test(c) for c in password):
                problems.append(what)
        if policy.require_symbols and not any(c in _SYMBOLS for c in password):
            problems.append("a symbol")
    if problems:
        raise PasswordPolicyViolation(
            "Password should have " + ", ".join(problems) + "."
        )


def _user_permissions_boundary(self):
    arn = getattr(self, "permissions_boundary_arn", None)
    if arn:
        return {"PermissionsBoundaryType": "Policy", "PermissionsBoundaryArn": arn}
    return None


User.permissions_boundary = property(_user_permissions_boundary)
for _operation in ("CreateUser", "GetUser"):
    IamResponse.RESPONSE_KEY_PATH_TO_TRANSFORMER[
        f"{_operation}Response.User.PermissionsBoundary"
    ] = return_if_not_empty

_original_create_user = IamResponse.create_user


def _create_user(self):
    boundary = self._get_param("PermissionsBoundary")
    answer = _original_create_user(self)
    if boundary:
        self.backend.get_user(self._get_param("UserName")).permissions_boundary_arn = boundary
    return answer


def _put_user_permissions_boundary(self):
    user = self.backend.get_user(self._get_param("UserName"))
    user.permissions_boundary_arn = self._get_param("PermissionsBoundary")
    return EmptyResult()


def _delete_user_permissions_boundary(self):
    user = self.backend.get_user(self._get_param("UserName"))
    user.permissions_boundary_arn = None
    return EmptyResult()


IamResponse.create_user = _create_user
IamResponse.put_user_permissions_boundary = _put_user_permissions_boundary
IamResponse.delete_user_permissions_boundary = _delete_user_permissions_boundary

_original_delete_user = IAMBackend.delete_user


def _delete_user(self, user_name):
    user = self.get_user(user_name)
    attached = [
        what
        for what, present in [
            ("a login profile", user.password),
            ("access keys", user.access_keys),
            ("MFA devices", user.mfa_devices),
            ("group memberships", self.get_groups_for_user(user_name)),
            ("signing certificates", user.signing_certificates),
            ("SSH public keys", user.ssh_public_keys),
            ("service-specific credentials", _service_credentials(user)),
        ]
        if present
    ]
    if attached:
        raise DeleteConflictException(
            "Cannot delete entity, must remove " + ", ".join(attached) + " first."
        )
    return _original_delete_user(self, user_name)


IAMBackend.delete_user = _delete_user

_create_login_profile_with_flag = IamResponse.create_login_profile


def _create_login_profile_checked(self):
    _check_password(self.backend, self._get_param("Password"))
    return _create_login_profile_with_flag(self)


_original_update_login_profile = IamResponse.update_login_profile


def _update_login_profile_checked(self):
    password = self._get_param("Password")
    if password is not None:
        _check_password(self.backend, password)
    else:
        # IAM changes only what the request names; moto would clear the password.
        user = self.backend.get_login_profile(self._get_param("UserName"))
        user.password_reset_required = self._get_bool_param(
            "PasswordResetRequired", user.password_reset_required
        )
        return EmptyResult()
    answer = _original_update_login_profile(self)
    user = self.backend.get_user(self._get_param("UserName"))
    user.password_reset_required = self._get_bool_param("PasswordResetRequired", False)
    return answer


IamResponse.create_login_profile = _create_login_profile_checked
IamResponse.update_login_profile = _update_login_profile_checked

# ---- service-specific credentials (CodeCommit, Keyspaces, Bedrock), which moto lacks ----

import secrets as _secrets
from moto.core.responses import ActionResult
from moto.iam.exceptions import NoSuchEntity as _NoSuchEntity


def _service_credentials(user):
    if not hasattr(user, "rolecall_service_credentials"):
        user.rolecall_service_credentials = []
    return user.rolecall_service_credentials


def _create_service_specific_credential(self):
    user_name = self._get_param("UserName")
    user = self.backend.get_user(user_name)
    credential = {
        "CreateDate": datetime.now(timezone.utc),
        "ServiceName": self._get_param("ServiceName"),
        "ServiceUserName": f"{user_name}-at-{self.current_account}",
        "ServicePassword": _secrets.token_urlsafe(30),
        "ServiceSpecificCredentialId": "ACCA" + _secrets.token_hex(9).upper(),
        "UserName": user_name,
        "Status": "Active",
    }
    _service_credentials(user).append(credential)
    return ActionResult({"ServiceSpecificCredential": credential})


def _list_service_specific_credentials(self):
    user = self.backend.get_user(self._get_param("UserName"))
    listed = [
        {key: value for key, value in credential.items() if key != "ServicePassword"}
        for credential in _service_credentials(user)
    ]
    return ActionResult({"ServiceSpecificCredentials": listed})


def _delete_service_specific_credential(self):
    user = self.backend.get_user(self._get_param("UserName"))
    wanted = self._get_param("ServiceSpecificCredentialId")
    credentials = _service_credentials(user)
    kept = [c for c in credentials if c["ServiceSpecificCredentialId"] != wanted]
    if len(kept) == len(credentials):
        raise _NoSuchEntity(f"No such credential {wanted}")
    credentials[:] = kept
    return EmptyResult()


IamResponse.create_service_specific_credential = _create_service_specific_credential
IamResponse.list_service_specific_credentials = _list_service_specific_credentials
IamResponse.delete_service_specific_credential = _delete_service_specific_credential

# ---- GetAccountAuthorizationDetails ----


def _policy_detail(policy):
    # moto's policy objects serialize without PolicyName and PolicyId; IAM sends both.
    return {
        "PolicyName": policy.name,
        "PolicyId": policy.id,
        "Arn": policy.arn,
        "Path": policy.path,
        "DefaultVersionId": policy.default_version_id,
        "AttachmentCount": policy.attachment_count,
        "IsAttachable": True,
        "Description": policy.description,
        "CreateDate": policy.create_date,
        "UpdateDate": policy.update_date,
        "PolicyVersionList": policy.policy_version_list,
    }


def _get_account_authorization_details(self):
    # moto answers everything in one page and ignores MaxItems and Marker; IAM pages (up to
    # 1,000 items, 100 by default), counting the items of all four lists together.
    details = self.backend.get_account_authorization_details(self._get_param("Filter", []))
    items = [
        *(("UserDetailList", user) for user in details["users"]),
        *(("GroupDetailList", group) for group in details["groups"]),
        *(("RoleDetailList", role) for role in details["roles"]),
        *(("Policies", _policy_detail(policy)) for policy in details["managed_policies"]),
    ]
    start = int(self._get_param("Marker") or 0)
    max_items = min(int(self._get_param("MaxItems") or 100), 1000)
    page = items[start : start + max_items]
    result = {name: [] for name in ("UserDetailList", "GroupDetailList", "RoleDetailList", "Policies")}
    for name, item in page:
        result[name].append(item)
    truncated = start + max_items < len(items)
    result["IsTruncated"] = truncated
    if truncated:
        result["Marker"] = str(start + max_items)
    return ActionResult(result)


IamResponse.get_account_authorization_details = _get_account_authorization_details


if __name__ == "__main__":
    main()
