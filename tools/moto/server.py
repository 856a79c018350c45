"""moto_server with three fixture patches: an AWS service as a trust-policy principal,
DeletePolicy refused while the policy is attached, and ListEntitiesForPolicy over every role,
as IAM does.

Real EC2 assumes an instance's role as the service principal ec2.amazonaws.com. moto
authenticates only IAM users and roles, and crashes (HTTP 500) on a trust policy whose
principal is a Service. Here a request signed by the IAM user named after a service (the
IMDS mock signs as user "ec2.amazonaws.com") matches a trust statement naming that
service; every other check is moto's own.

moto deletes an attached managed policy and leaves the attachment behind, which no call can
detach and which then blocks DeleteRole forever; IAM answers DeleteConflict instead. And its
ListEntitiesForPolicy looks only at the first 100 roles (by id), so with more roles a policy's
attachments go unseen.

Usage: python server.py [moto_server arguments]
"""

import threading

import moto.iam.access_control as access_control
from moto.iam.exceptions import DeleteConflictException
from moto.iam.models import IAMBackend
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

if __name__ == "__main__":
    main()
