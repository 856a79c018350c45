#!/usr/bin/env bash
# The seed story on screen: a local control plane, moto enforcing IAM, the IMDS mock for one
# EC2 instance, and rolecall. An instance with no role cannot list S3; four manifests later it
# can. Everything runs on 127.0.0.1 and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

# Separate state, so the demo never touches a test environment that is up.
export ROLECALL_STATE="${ROLECALL_STATE:-$HOME/.cache/rolecall/state}/demo"
say() { printf '\n\033[1;34m==> %s\033[0m\n' "$*"; }
show() { printf '\033[1m$ %s\033[0m\n' "$*"; }

pids=()
cleanup() {
  local status=$?
  say "cleaning up"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  scripts/moto.sh down || true
  scripts/cluster.sh down || true
  exit "$status"
}
trap cleanup EXIT

say "building rolecall"
cargo build --quiet --locked
rolecall="${CARGO_TARGET_DIR:-target}/debug/rolecall"

say "starting kube-apiserver + etcd, and moto with IAM authorization enforced"
scripts/cluster.sh up
eval "$(scripts/cluster.sh env)"
scripts/moto.sh up --enforce-iam
eval "$(scripts/moto.sh env)"
endpoint=$ROLECALL_TEST_AWS_ENDPOINT
unset AWS_ENDPOINT_URL

# The platform team's administrator, and the identity EC2 itself uses to hand out credentials.
admin() { AWS_ACCESS_KEY_ID=$ROLECALL_TEST_MOTO_ADMIN_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$ROLECALL_TEST_MOTO_ADMIN_SECRET_ACCESS_KEY \
  aws --endpoint-url "$endpoint" "$@"; }

say "preparing AWS: two buckets and one EC2 instance of the web team (app=web, team=web), with no instance profile"
admin s3api create-bucket --bucket assets >/dev/null
admin s3api create-bucket --bucket assets-logs >/dev/null
instance=$(admin ec2 run-instances --image-id ami-03cf127a --count 1 \
  --tag-specifications 'ResourceType=instance,Tags=[{Key=app,Value=web},{Key=team,Value=web}]' --query 'Instances[0].InstanceId' --output text)
echo "instance $instance"

# The instance's metadata service, answering from moto's live state.
AWS_ACCESS_KEY_ID=$ROLECALL_TEST_MOTO_EC2_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$ROLECALL_TEST_MOTO_EC2_SECRET_ACCESS_KEY \
  "$rolecall" imds-mock --listen 127.0.0.1:0 --instance-id "$instance" --aws-endpoint-url "$endpoint" \
  --region us-east-1 >"$ROLECALL_STATE/imds.out" 2>"$ROLECALL_STATE/imds.log" &
pids+=($!)
for _ in $(seq 100); do grep -q '^listening on' "$ROLECALL_STATE/imds.out" 2>/dev/null && break; sleep 0.1; done
imds=$(sed -n 's/^listening on //p' "$ROLECALL_STATE/imds.out")
# Commands "on the instance": no keys anywhere, only the metadata service.
on_instance() { env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY AWS_EC2_METADATA_DISABLED=false \
  AWS_EC2_METADATA_SERVICE_ENDPOINT="$imds" aws --endpoint-url "$endpoint" "$@"; }

say "1. on the instance, with no role"
show "aws s3 ls"
on_instance s3 ls || true

say "installing the CRDs and starting rolecall"
show "kubectl apply -f crds/"
kubectl apply -f crds/
AWS_ACCESS_KEY_ID=$ROLECALL_TEST_MOTO_ADMIN_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$ROLECALL_TEST_MOTO_ADMIN_SECRET_ACCESS_KEY \
  "$rolecall" run --aws-endpoint-url "$endpoint" --region us-east-1 --cluster-name demo --http-address 127.0.0.1:0 >"$ROLECALL_STATE/operator.log" 2>&1 &
pids+=($!)

say "the platform team hands namespace web to the web team, with its Tenancy"
show "cat examples/platform/web.yaml"
cat examples/platform/web.yaml
show "kubectl apply -f examples/platform/"
kubectl apply -f examples/platform/

say "2-5. the web team: a policy, a role trusting EC2, an instance profile, and a binding for app=web"
show "cat examples/seed-s3-reader/*.yaml"
cat examples/seed-s3-reader/*.yaml
curl -s -X POST "$endpoint/moto-api/recorder/reset-recording" >/dev/null # count only what follows
show "kubectl apply -n web -f examples/seed-s3-reader/"
started=$(date +%s.%N)
kubectl apply -n web -f examples/seed-s3-reader/
show "kubectl wait -n web --for=condition=Ready iampolicy/s3-reader iamrole/web instanceprofile/web ec2instancebinding/web"
kubectl wait -n web --for=condition=Ready --timeout=60s iampolicy/s3-reader iamrole/web instanceprofile/web ec2instancebinding/web
ready=$(date +%s.%N)
printf 'all four Ready %.2f s after kubectl apply; AWS calls made meanwhile (from moto'"'"'s request log):\n' "$(python3 -c "print($ready - $started)")"
"$ROLECALL_MOTO_BIN/python" tools/moto/count_calls.py
echo
show "kubectl get -n web rolecall"
kubectl get -n web rolecall

say "6. on the instance, the same command"
show "curl -s \$IMDS/latest/meta-data/iam/security-credentials/ (with an IMDSv2 token)"
token=$(curl -s -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "$imds/latest/api/token")
curl -s -H "X-aws-ec2-metadata-token: $token" "$imds/latest/meta-data/iam/security-credentials/"; echo
show "aws s3 ls"
for _ in $(seq 50); do on_instance s3 ls >/dev/null 2>&1 && break; sleep 0.2; done
on_instance s3 ls
show "aws s3api create-bucket --bucket not-allowed"
on_instance s3api create-bucket --bucket not-allowed || true

say "7. unbinding takes the credentials away"
show "kubectl delete -n web ec2instancebinding/web"
kubectl delete -n web ec2instancebinding/web
show "aws s3 ls"
on_instance s3 ls || true

say "deleting everything: rolecall removes what it created"
show "kubectl delete -n web -f examples/seed-s3-reader/"
kubectl delete -n web -f examples/seed-s3-reader/ --ignore-not-found --wait=true
show "aws iam list-roles --query 'Roles[].RoleName'"
admin iam list-roles --query 'Roles[].RoleName' --output text
echo "(no role left)"
