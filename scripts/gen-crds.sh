#!/usr/bin/env bash
# Regenerates crds/ and the Helm chart's copy from the Rust types.
set -euo pipefail
cd "$(dirname "$0")/.."
for dir in crds charts/rolecall/crds; do
  echo "==> generating $dir/ from the Rust types"
  rm -f "$dir"/*.yaml
  cargo run --quiet -- crd --out-dir "$dir"
done
