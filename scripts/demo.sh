#!/usr/bin/env bash
# rolecall's two stories on screen, on a local control plane with moto enforcing IAM:
#   seed      an EC2 instance with no role cannot list S3; four manifests later it can (the
#             IMDS mock serves the instance its role's credentials)
#   baseline  a new account's security report fails the IAM console's five recommendations;
#             after examples/account-baseline/ they pass, except root MFA, which only the
#             root user can enable, as the report says
# Usage: scripts/demo.sh [seed|baseline|all]   (default: all, one after the other)
# Everything runs on 127.0.0.1 and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

stories=${1:-all}
case $stories in seed | baseline | all) ;; *) echo "usage: $0 [seed|baseline|all]" >&2; exit 2 ;; esac

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

# rolecall with the given credentials (key id, secret, session token or ""), replacing the one
# running; its log goes to $ROLECALL_STATE/operator.log.
operator_pid=
start_rolecall() {
  if [[ -n $operator_pid ]]; then kill "$operator_pid"; wait "$operator_pid" 2>/dev/null || true; fi
  env AWS_ACCESS_KEY_ID="$1" AWS_SECRET_ACCESS_KEY="$2" ${3:+AWS_SESSION_TOKEN="$3"} \
    "$rolecall" run --aws-endpoint-url "$endpoint" --region us-east-1 --cluster-name demo --http-address 127.0.0.1:0 \
    >>"$ROLECALL_STATE/operator.log" 2>&1 &
  operator_pid=$!
  pids+=("$operator_pid")
}

seed_story() {
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
  start_rolecall "$ROLECALL_TEST_MOTO_ADMIN_ACCESS_KEY_ID" "$ROLECALL_TEST_MOTO_ADMIN_SECRET_ACCESS_KEY" ""

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
}

# The five checks the IAM console lists for a new account, and the root user's own.
console_checks='iam_no_root_access_key|iam_root_mfa_enabled|iam_individual_users_exist|iam_groups_assign_permissions|iam_password_policy_exists'
report_checks() {
  kubectl get secreport account -o jsonpath='{range .status.checks[*]}{.id}{"\t"}{.result}{"\t"}{.reason}{"\n"}{end}' \
    | grep -E "^($console_checks)"$'\t' | column -t -s $'\t'
}
check_result() { kubectl get secreport account -o jsonpath="{.status.checks[?(@.id==\"$1\")].result}"; }

baseline_story() {
  say "the second story: hygiene right after an account is created"
  account=210987654321
  say "preparing AWS: a new account $account, made as AWS Organizations makes one (OrganizationAccountAccessRole, trusting the management account); its root user has an access key and no MFA"
  eval "$("$ROLECALL_MOTO_BIN/python" tools/moto/new_account.py "$endpoint" "$account" \
    "$ROLECALL_TEST_MOTO_ADMIN_ACCESS_KEY_ID" "$ROLECALL_TEST_MOTO_ADMIN_SECRET_ACCESS_KEY")"
  echo "rolecall now runs as that role, in account $account"
  start_rolecall "$NEW_ACCOUNT_ACCESS_KEY_ID" "$NEW_ACCOUNT_SECRET_ACCESS_KEY" "$NEW_ACCOUNT_SESSION_TOKEN"
  in_account() { AWS_ACCESS_KEY_ID=$NEW_ACCOUNT_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$NEW_ACCOUNT_SECRET_ACCESS_KEY \
    AWS_SESSION_TOKEN=$NEW_ACCOUNT_SESSION_TOKEN aws --endpoint-url "$endpoint" "$@"; }

  say "1. the account's security report, before anything is done"
  show "kubectl apply -f examples/account-baseline/report.yaml"
  kubectl apply -f examples/account-baseline/report.yaml
  show "kubectl wait --for=condition=Ready secreport/account"
  kubectl wait --for=condition=Ready --timeout=60s secreport/account
  show "kubectl get secreport account"
  kubectl get secreport account
  echo "the IAM console's five recommendations (kubectl describe secreport account shows every check):"
  report_checks

  say "2. the platform team: a namespace for the account's people, then the baseline (the admin group, the administrator in it, the password policy)"
  show "kubectl apply -f examples/account-baseline/platform.yaml"
  kubectl apply -f examples/account-baseline/platform.yaml
  show "kubectl apply -n accounts -f examples/account-baseline/"
  kubectl apply -n accounts -f examples/account-baseline/
  show "kubectl wait -n accounts --for=condition=Ready iamgroup/admin iamuser/administrator accountpasswordpolicy/account"
  kubectl wait -n accounts --for=condition=Ready --timeout=60s iamgroup/admin iamuser/administrator accountpasswordpolicy/account
  show "kubectl get -n accounts iamuser administrator"
  kubectl get -n accounts iamuser administrator
  show "kubectl get -n accounts secret administrator-console-password -o jsonpath='{.data}' (the password to hand over; not shown here)"
  kubectl get -n accounts secret administrator-console-password -o jsonpath='{.data}' | python3 -c 'import json,sys; print(sorted(json.load(sys.stdin)))'
  show "aws iam get-account-password-policy --query 'PasswordPolicy.[MinimumPasswordLength,PasswordReusePrevention]'"
  in_account iam get-account-password-policy --query 'PasswordPolicy.[MinimumPasswordLength,PasswordReusePrevention]' --output text

  say "3. the root user signs in and deletes its access key (rolecall cannot: only the root user can; here moto's root state)"
  curl -s -X POST -H 'Content-Type: application/json' "$endpoint/rolecall-moto/root" \
    -d "{\"account\": \"$account\", \"mfa\": null, \"accessKeys\": 0}" >/dev/null

  say "4. the report, asked to run now"
  show "kubectl annotate secreport account rolecall.dev/touched=\$(date +%s) --overwrite"
  kubectl annotate secreport account rolecall.dev/touched="$(date +%s)" --overwrite
  for _ in $(seq 100); do [[ $(check_result iam_password_policy_exists) == Pass ]] && break; sleep 0.1; done
  show "kubectl get secreport account"
  kubectl get secreport account
  report_checks
  echo "(still failing besides root MFA: root's hardware MFA, and the administrator's own MFA, which the person enables at first sign-in)"
}

: >"$ROLECALL_STATE/operator.log"
case $stories in
  seed) seed_story ;;
  baseline)
    show "kubectl apply -f crds/"
    kubectl apply -f crds/
    baseline_story
    ;;
  all) seed_story; baseline_story ;;
esac
