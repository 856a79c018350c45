"""A new AWS account in a moto server that enforces IAM, as AWS Organizations makes one.

Usage: python new_account.py http://127.0.0.1:PORT ACCOUNT_ID ADMIN_KEY_ID ADMIN_SECRET
Prints shell `export` lines with credentials of the account's OrganizationAccountAccessRole,
assumed by the management account's administrator (the keys given).

Organizations creates that role in every new account, trusting the management account, with
AdministratorAccess. moto starts every account empty and, enforcing IAM, would refuse the
role's credentials while the role does not exist there; so, as bootstrap_admin.py does, this
opens the door (POST /moto-api/reset-auth "inf"), creates the role in the account through
credentials moto maps to it, and closes the door ("0"). The role's credentials are then
asked for as Organizations' users do: AssumeRole, checked by moto.

The new account's root user gets an access key and no MFA (POST /rolecall-moto/root, see
server.py): an account someone set up with root keys before handing it over.
"""

import json
import sys
import urllib.request

import boto3

ROLE = "OrganizationAccountAccessRole"
ADMIN = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}'


def post(endpoint: str, path: str, body: bytes, content_type: str = "text/plain") -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(endpoint + path, data=body, method="POST",
                                 headers={"Content-Type": content_type})
    opener.open(req, timeout=10).read()


def assume(endpoint: str, account: str, key_id: str, secret: str) -> dict:
    sts = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id=key_id, aws_secret_access_key=secret)
    return sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/{ROLE}",
                           RoleSessionName="platform-team")["Credentials"]


def main() -> None:
    endpoint, account, key_id, secret = sys.argv[1:5]
    post(endpoint, "/moto-api/reset-auth", b"inf")
    try:
        creds = assume(endpoint, account, "testing", "testing")
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id=creds["AccessKeyId"],
                           aws_secret_access_key=creds["SecretAccessKey"],
                           aws_session_token=creds["SessionToken"])
        trust = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"AWS": "arn:aws:iam::123456789012:root"}}]}
        if not any(r["RoleName"] == ROLE for r in iam.list_roles()["Roles"]):
            iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(trust))
        iam.put_role_policy(RoleName=ROLE, PolicyName="admin", PolicyDocument=ADMIN)
    finally:
        post(endpoint, "/moto-api/reset-auth", b"0")
    post(endpoint, "/rolecall-moto/root",
         json.dumps({"account": account, "mfa": None, "accessKeys": 1}).encode(),
         "application/json")
    creds = assume(endpoint, account, key_id, secret)
    print(f"export NEW_ACCOUNT_ACCESS_KEY_ID={creds['AccessKeyId']}")
    print(f"export NEW_ACCOUNT_SECRET_ACCESS_KEY={creds['SecretAccessKey']}")
    print(f"export NEW_ACCOUNT_SESSION_TOKEN={creds['SessionToken']}")


if __name__ == "__main__":
    main()
