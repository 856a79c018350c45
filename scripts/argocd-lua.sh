#!/usr/bin/env bash
# The Argo CD health-check runner (tools/argocd-lua: gopher-lua, the Lua VM Argo CD uses),
# built once into the cache outside the checkout; tests/argocd_health.rs runs it.
#
#   scripts/argocd-lua.sh install   build it if the cache has no build of this source
#   scripts/argocd-lua.sh path      print the binary's path (exit 1 if not built)
#
# Env: ROLECALL_CACHE   binaries in $ROLECALL_CACHE/bin/ (~/.cache/rolecall)
set -euo pipefail

GOPHER_LUA_VERSION=v1.1.1   # github.com/yuin/gopher-lua; tools/argocd-lua/go.mod must require it

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC=$ROOT/tools/argocd-lua
CACHE=${ROLECALL_CACHE:-$HOME/.cache/rolecall}
# The runner's own source is part of the key, so an edit to main.go rebuilds it.
KEY=$(cat "$SRC/go.mod" "$SRC/go.sum" "$SRC/main.go" | sha256sum | cut -c1-12)
BIN=$CACHE/bin/argocd-lua-$GOPHER_LUA_VERSION-$KEY/argocd-lua

log() { echo "argocd-lua: $*" >&2; }

cmd_install() {
  grep -Eq "^require github.com/yuin/gopher-lua $GOPHER_LUA_VERSION\$" "$SRC/go.mod" ||
    { log "ERROR: $SRC/go.mod does not require github.com/yuin/gopher-lua $GOPHER_LUA_VERSION"; exit 1; }
  if [[ -x $BIN ]]; then log "cached ($BIN)"; return; fi
  command -v go >/dev/null || { log "ERROR: go is not installed"; exit 1; }
  log "building $BIN"
  mkdir -p "$(dirname "$BIN")"
  local tmp=$BIN.tmp-$$
  (cd "$SRC" && CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "-s -w" -o "$tmp" .)
  mv -f "$tmp" "$BIN"
  log "built $BIN"
}

cmd_path() {
  [[ -x $BIN ]] || { log "not built: run scripts/argocd-lua.sh install (scripts/test.sh does)"; exit 1; }
  echo "$BIN"
}

case ${1:-} in
  install | path) "cmd_$1" ;;
  *) echo "usage: $0 {install|path}" >&2; exit 2 ;;
esac
