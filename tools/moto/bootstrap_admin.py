"""Create the first admin user in a moto server that enforces IAM.

Usage: python bootstrap_admin.py http://127.0.0.1:PORT
Prints shell `export` lines with the admin user's access key.

moto checks signatures and IAM policies only once its unauthenticated
request counter has reached INITIAL_NO_AUTH_ACTION_COUNT. POST
/moto-api/reset-auth with a number sets that limit and zeroes the counter, so
this opens the door ("inf"), creates the user, and closes it again ("0").
The key is deterministic (moto's random is seeded) so it survives `reset`.
"""

import sys
import urllib.request

import boto3

USER = "rolecall-admin"
ADMIN = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}'
# The IMDS mock stands in for the EC2 service: it signs as this user (see server.py) and
# needs only what EC2 does to hand an instance its role's credentials.
EC2_SERVICE = "ec2.amazonaws.com"
EC2_SERVICE_POLICY = ('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":'
                      '["sts:AssumeRole","ec2:DescribeIamInstanceProfileAssociations",'
                      '"iam:GetInstanceProfile"],"Resource":"*"}]}')


def moto_api(endpoint: str, path: str, body: bytes = b"") -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    # text/plain: with urllib's default form content type moto sees an empty body
    req = urllib.request.Request(endpoint + path, data=body, method="POST",
                                 headers={"Content-Type": "text/plain"})
    opener.open(req, timeout=10).read()


def main() -> None:
    endpoint = sys.argv[1]
    moto_api(endpoint, "/moto-api/reset-auth", b"inf")
    try:
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        if not any(u["UserName"] == USER for u in iam.list_users()["Users"]):
            iam.create_user(UserName=USER)
        iam.put_user_policy(UserName=USER, PolicyName="admin", PolicyDocument=ADMIN)
        for key in iam.list_access_keys(UserName=USER)["AccessKeyMetadata"]:
            iam.delete_access_key(UserName=USER, AccessKeyId=key["AccessKeyId"])
        if not any(u["UserName"] == EC2_SERVICE for u in iam.list_users()["Users"]):
            iam.create_user(UserName=EC2_SERVICE)
        iam.put_user_policy(UserName=EC2_SERVICE, PolicyName="imds", PolicyDocument=EC2_SERVICE_POLICY)
        for key in iam.list_access_keys(UserName=EC2_SERVICE)["AccessKeyMetadata"]:
            iam.delete_access_key(UserName=EC2_SERVICE, AccessKeyId=key["AccessKeyId"])
        moto_api(endpoint, "/moto-api/seed?a=4242")
        key = iam.create_access_key(UserName=USER)["AccessKey"]
        ec2_key = iam.create_access_key(UserName=EC2_SERVICE)["AccessKey"]
    finally:
        moto_api(endpoint, "/moto-api/reset-auth", b"0")
    print(f"export ROLECALL_TEST_MOTO_ADMIN_ACCESS_KEY_ID={key['AccessKeyId']}")
    print(f"export ROLECALL_TEST_MOTO_ADMIN_SECRET_ACCESS_KEY={key['SecretAccessKey']}")
    print(f"export ROLECALL_TEST_MOTO_EC2_ACCESS_KEY_ID={ec2_key['AccessKeyId']}")
    print(f"export ROLECALL_TEST_MOTO_EC2_SECRET_ACCESS_KEY={ec2_key['SecretAccessKey']}")


if __name__ == "__main__":
    main()
