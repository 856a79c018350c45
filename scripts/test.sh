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
    "scripts/$component.sh" down || true
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
eval "$(scripts/moto.sh env)"

echo "==> cargo test"
cargo test --locked --all-targets
