#!/usr/bin/env bash
# The one test command: builds the tools if needed, starts a local kube-apiserver + etcd and
# moto, runs every check and test, and stops what it started even on failure.
#
# To test against another cluster (kind, say), set ROLECALL_TEST_KUBECONFIG to its kubeconfig:
# the local control plane is then neither built nor started.
set -euo pipefail
cd "$(dirname "$0")/.."

# CI clones afresh each time; keep cargo's build outside the checkout so it is reused.
if [[ "${CI:-}" == "true" && -z "${CARGO_TARGET_DIR:-}" ]]; then
  export CARGO_TARGET_DIR="${ROLECALL_CACHE:-$HOME/.cache/rolecall}/target"
fi

started=()
cleanup() {
  local status=$?
  for component in "${started[@]}"; do
    echo "==> stopping $component"
    case $component in
      enforced) enforced_down || true ;;
      *) "scripts/$component.sh" down || true ;;
    esac
  done
  exit "$status"
}
trap cleanup EXIT

echo "==> static checks"
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings

if [[ -n "${ROLECALL_TEST_KUBECONFIG:-}" ]]; then
  echo "==> using the cluster in $ROLECALL_TEST_KUBECONFIG"
  scripts/cluster.sh install # kubectl and helm
  eval "$(scripts/cluster.sh env)"
  export KUBECONFIG="$ROLECALL_TEST_KUBECONFIG"
else
  started+=(cluster)
  scripts/cluster.sh up
  eval "$(scripts/cluster.sh env)"
fi

started+=(moto)
scripts/moto.sh up
# The seed story runs against a second moto that enforces IAM authorization.
enforced_state="${ROLECALL_STATE:-$HOME/.cache/rolecall/state}/enforced"
enforced_down() { ROLECALL_STATE="$enforced_state" scripts/moto.sh down; }
started+=(enforced)
ROLECALL_STATE="$enforced_state" scripts/moto.sh up --enforce-iam
enforced_env=$(ROLECALL_STATE="$enforced_state" scripts/moto.sh env)
read -r ROLECALL_TEST_ENFORCED_AWS_ENDPOINT ROLECALL_TEST_ENFORCED_ADMIN_KEY_ID ROLECALL_TEST_ENFORCED_ADMIN_SECRET \
  ROLECALL_TEST_ENFORCED_EC2_KEY_ID ROLECALL_TEST_ENFORCED_EC2_SECRET < <(
  bash -c "$enforced_env"'; echo "$ROLECALL_TEST_AWS_ENDPOINT $ROLECALL_TEST_MOTO_ADMIN_ACCESS_KEY_ID $ROLECALL_TEST_MOTO_ADMIN_SECRET_ACCESS_KEY $ROLECALL_TEST_MOTO_EC2_ACCESS_KEY_ID $ROLECALL_TEST_MOTO_EC2_SECRET_ACCESS_KEY"')
export ROLECALL_TEST_ENFORCED_AWS_ENDPOINT ROLECALL_TEST_ENFORCED_ADMIN_KEY_ID ROLECALL_TEST_ENFORCED_ADMIN_SECRET \
  ROLECALL_TEST_ENFORCED_EC2_KEY_ID ROLECALL_TEST_ENFORCED_EC2_SECRET
eval "$(scripts/moto.sh env)"

scripts/argocd-lua.sh install   # the Argo CD health-check runner (tests/argocd_health.rs)

echo "==> cargo test"
cargo test --locked --all-targets
