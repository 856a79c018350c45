#!/usr/bin/env bash
# Reconcile benchmark (README "Benchmarks"): builds the release binary, starts a private
# kube-apiserver and moto (stopped on exit), and runs `cargo bench --bench reconcile`.
#   scripts/bench.sh [--baseline OTHER_BINARY] [--sizes 10,100,1000] [--out bench-results.json]
#                    [--resync-period 30s]
# Arguments go to the benchmark; --binary defaults to the fresh target/release/rolecall.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export ROLECALL_STATE=${ROLECALL_STATE:-$HOME/.cache/rolecall/state}/bench
export AWS_EC2_METADATA_DISABLED=true # never ask an instance metadata service

log() { echo "bench.sh: $*" >&2; }

cargo build --release --locked --bin rolecall

cleanup() {
  scripts/moto.sh down || true
  scripts/cluster.sh down || true
}
trap cleanup EXIT
scripts/cluster.sh up
scripts/moto.sh up
eval "$(scripts/cluster.sh env)"
eval "$(scripts/moto.sh env)"
log "cluster $KUBECONFIG, moto $ROLECALL_TEST_AWS_ENDPOINT (state $ROLECALL_STATE)"

cargo bench --locked --bench reconcile -- --binary "${CARGO_TARGET_DIR:-$ROOT/target}/release/rolecall" "$@"
