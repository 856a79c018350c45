"""moto_server with one fixture patch: an AWS service as a trust-policy principal.

Real EC2 assumes an instance's role as the service principal ec2.amazonaws.com. moto
authenticates only IAM users and roles, and crashes (HTTP 500) on a trust policy whose
principal is a Service. Here a request signed by the IAM user named after a service (the
IMDS mock signs as user "ec2.amazonaws.com") matches a trust statement naming that
service; every other check is moto's own.

Usage: python server.py [moto_server arguments]
"""

import moto.iam.access_control as access_control
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

if __name__ == "__main__":
    main()
