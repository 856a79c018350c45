#!/usr/bin/env bash
# A real Kubernetes control plane (etcd + kube-apiserver, RBAC on) on 127.0.0.1, built from
# Go modules (no containers, no release downloads).
#
#   scripts/cluster.sh install   build the pinned binaries once (cached outside the checkout)
#   scripts/cluster.sh up        install if needed, start etcd + kube-apiserver, wait until ready
#   scripts/cluster.sh down      stop what `up` started, remove the etcd data
#   scripts/cluster.sh status    print whether it is up (exit 0 if up, 1 if not)
#   scripts/cluster.sh env       print `export KUBECONFIG=... PATH=...` lines for eval
#   scripts/cluster.sh stop-apiserver / start-apiserver   (fault tests) stop or restart the
#                                apiserver alone; etcd and its data stay
#
# Env: ROLECALL_CACHE   binaries in $ROLECALL_CACHE/bin/<tool>-<version>/<tool> (~/.cache/rolecall)
#      ROLECALL_STATE   state in $ROLECALL_STATE/cluster/ (~/.cache/rolecall/state): kubeconfig,
#                       {etcd,kube-apiserver}.{pid,log}, ports, pki/, etcd-data/, lock
#      ROLECALL_ETCD_PORT, ROLECALL_ETCD_PEER_PORT, ROLECALL_APISERVER_PORT (default: free ports)
#      ROLECALL_UP_TIMEOUT  seconds to wait for each readiness step (default 60)
set -euo pipefail

# Pinned versions: the only place they are set. tools/*/go.mod must require the same ones.
K8S_VERSION=v1.34.10   # k8s.io/kubernetes (staging modules k8s.io/* at v0.34.10)
ETCD_VERSION=v3.6.16   # go.etcd.io/etcd/server/v3
HELM_VERSION=v3.19.5   # helm.sh/helm/v3

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${ROLECALL_CACHE:-$HOME/.cache/rolecall}
STATE=${ROLECALL_STATE:-$HOME/.cache/rolecall/state}/cluster
PKI=$STATE/pki
KUBECONFIG_PATH=$STATE/kubeconfig
DEADLINE=${ROLECALL_UP_TIMEOUT:-60}

bin_dir() { echo "$CACHE/bin/$1-$2"; }
APISERVER=$(bin_dir kube-apiserver "$K8S_VERSION")/kube-apiserver
KUBECTL=$(bin_dir kubectl "$K8S_VERSION")/kubectl
ETCD=$(bin_dir etcd "$ETCD_VERSION")/etcd
HELM=$(bin_dir helm "$HELM_VERSION")/helm

log() { echo "cluster: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# build NAME VERSION TOOLSDIR MODULE PACKAGE LDFLAGS: go build into the cache, once.
build() {
  local name=$1 ver=$2 mod=$ROOT/tools/$3 module=$4 pkg=$5 ldflags=$6
  local dir; dir=$(bin_dir "$name" "$ver")
  grep -Eq "^(require)?[[:space:]]*$module $ver([[:space:]]|\$)" "$mod/go.mod" ||
    die "$mod/go.mod does not require $module $ver (versions are pinned at the top of $0)"
  if [[ -x $dir/$name ]]; then log "$name $ver: cached ($dir/$name)"; return; fi
  mkdir -p "$dir"; rm -f "$dir"/.tmp-*
  log "$name $ver: building $pkg (minutes on a cold Go cache)"
  local start=$SECONDS tmp=$dir/.tmp-$name-$$
  (cd "$mod" && CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "$ldflags" -o "$tmp" "$pkg")
  mv -f "$tmp" "$dir/$name"
  log "$name $ver: built in $((SECONDS - start))s -> $dir/$name"
}

cmd_install() {
  command -v go >/dev/null || die "go is not installed"
  local major minor k8s_mod
  major=${K8S_VERSION#v}; minor=${major#*.}; minor=${minor%%.*}; major=${major%%.*}
  k8s_mod=$ROOT/tools/k8s/go.mod
  if grep -E '=> k8s.io/' "$k8s_mod" | grep -vq " v0\.${K8S_VERSION#v1.}\$"; then
    die "$k8s_mod: every staging replace must be k8s.io/X v0.${K8S_VERSION#v1.}"
  fi
  local kv="" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    kv+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  build kube-apiserver "$K8S_VERSION" k8s k8s.io/kubernetes k8s.io/kubernetes/cmd/kube-apiserver "-s -w$kv"
  build kubectl "$K8S_VERSION" k8s k8s.io/kubernetes k8s.io/kubernetes/cmd/kubectl "-s -w$kv"
  build etcd "$ETCD_VERSION" etcd go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3 "-s -w"
  local h=helm.sh/helm/v3 hv
  hv="-X $h/internal/version.version=$HELM_VERSION -X $h/internal/version.gitTreeState=clean"
  for p in pkg/chartutil pkg/lint/rules; do   # default .Capabilities.KubeVersion, as upstream's Makefile
    hv+=" -X $h/$p.k8sVersionMajor=$major -X $h/$p.k8sVersionMinor=$minor"
  done
  build helm "$HELM_VERSION" helm $h $h/cmd/helm "-s -w $hv"
}

# --- processes ------------------------------------------------------------------------------
pid_of() { [[ -s $STATE/$1.pid ]] && cat "$STATE/$1.pid" || true; }
# alive NAME: the recorded pid runs the binary NAME (guards against reused pids; a zombie
# waiting for init to reap it counts as dead).
alive() {
  local pid st comm; pid=$(pid_of "$1")
  [[ -n $pid ]] && read -r st comm < <(ps -o stat=,comm= -p "$pid" 2>/dev/null) || return 1
  [[ $st != Z* && $comm == "$1" ]]
}
ready() { curl -fsS --max-time 2 --cacert "$PKI/ca.crt" "https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null 2>&1; }
load_ports() { [[ -f $STATE/ports ]] && source "$STATE/ports" || true; }
is_up() { load_ports; alive etcd && alive kube-apiserver && [[ -n ${APISERVER_PORT:-} ]] && ready; }

# start NAME BINARY ARGS...: detached in its own session; the pid is the binary's own.
start() {
  local name=$1; shift
  rm -f "$STATE/$name.pid"
  log "starting $name (log: $STATE/$name.log)"
  setsid bash -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$STATE/$name.pid" "$@" \
    </dev/null >"$STATE/$name.log" 2>&1 9>&- &
  local end=$((SECONDS + 10))  # the pid file is written just before exec: wait for the exec
  until alive "$name"; do
    ((SECONDS < end)) || { tail -n 30 "$STATE/$name.log" >&2; die "$name did not start"; }
    sleep 0.1
  done
}

# wait_for WHAT COMMAND...: poll until COMMAND succeeds; fail at the deadline or if a process died.
wait_for() {
  local what=$1 end=$((SECONDS + DEADLINE)) n; shift
  until "$@" >/dev/null 2>&1; do
    for n in etcd kube-apiserver; do
      if [[ -s $STATE/$n.pid ]] && ! alive "$n"; then
        tail -n 30 "$STATE/$n.log" >&2 || true; die "$n exited (see $STATE/$n.log)"
      fi
    done
    ((SECONDS < end)) || die "timed out after ${DEADLINE}s waiting for $what"
    sleep 0.5
  done
}

# stop NAME: TERM the recorded pid, wait up to 20s, then KILL; remove the pid file.
stop() {
  local name=$1 pid end
  pid=$(pid_of "$name")
  if [[ -n $pid ]] && alive "$name"; then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    end=$((SECONDS + 20))
    while alive "$name" && ((SECONDS < end)); do sleep 0.2; done
    if alive "$name"; then log "$name did not stop, killing"; kill -KILL "$pid" 2>/dev/null || true; fi
    while alive "$name"; do sleep 0.1; done
  fi
  rm -f "$STATE/$name.pid"
}

free_port() {  # free_port [EXCLUDED...]: a port nothing listens on
  local p
  while :; do
    p=$((20000 + RANDOM % 12000))
    [[ " $* " == *" $p "* ]] && continue
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

gen_pki() {
  [[ -s $PKI/admin.crt && -s $PKI/sa.pub ]] && return
  log "generating CA, serving/admin certificates and service-account keys in $PKI"
  rm -rf "$PKI"; mkdir -p "$PKI"
  (
    cd "$PKI"; exec 2>openssl.log
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
      -subj /CN=rolecall-ca -addext basicConstraints=critical,CA:TRUE \
      -addext keyUsage=critical,keyCertSign,cRLSign
    leaf() { # leaf NAME SUBJECT EXTENSIONS
      openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2"
      printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
        "$3" >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
        -extfile "$1.ext" -out "$1.crt"
      rm -f "$1.csr" "$1.ext"
    }
    leaf apiserver /CN=kube-apiserver \
      $'extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost'
    leaf admin "/O=system:masters/CN=rolecall-admin" extendedKeyUsage=clientAuth
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
  ) || { cat "$PKI/openssl.log" >&2; die "openssl failed"; }
  chmod 600 "$PKI"/*.key
}

write_kubeconfig() {
  local b64="base64 -w0"
  cat >"$KUBECONFIG_PATH.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: rolecall
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $($b64 <"$PKI/ca.crt")
users:
- name: rolecall-admin
  user:
    client-certificate-data: $($b64 <"$PKI/admin.crt")
    client-key-data: $($b64 <"$PKI/admin.key")
contexts:
- name: rolecall
  context: {cluster: rolecall, user: rolecall-admin, namespace: default}
current-context: rolecall
EOF
  chmod 600 "$KUBECONFIG_PATH.tmp"; mv "$KUBECONFIG_PATH.tmp" "$KUBECONFIG_PATH"
}

lock() { mkdir -p "$STATE"; exec 9>"$STATE/lock"; flock -w 900 9 || die "another up/down holds $STATE/lock"; }

# start_apiserver ETCD_URL: start kube-apiserver on $APISERVER_PORT and wait until it serves.
start_apiserver() {
  start kube-apiserver "$APISERVER" --etcd-servers="$1" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" --authorization-mode=RBAC \
    --service-cluster-ip-range=10.0.0.0/24 --allow-privileged=true \
    --disable-admission-plugins=ServiceAccount \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --api-audiences=https://kubernetes.default.svc
  wait_for "kube-apiserver /readyz" ready
  wait_for "kubectl get --raw /readyz" "$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" get --raw /readyz
  wait_for "namespace default" "$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" get namespace default
}

cmd_up() {
  lock
  cmd_install
  if is_up; then log "already up: https://127.0.0.1:$APISERVER_PORT (KUBECONFIG=$KUBECONFIG_PATH)"; return; fi
  if [[ -e $STATE/etcd.pid || -e $STATE/kube-apiserver.pid || -d $STATE/etcd-data ]]; then
    log "stale state from an earlier run: cleaning it"
    stop kube-apiserver; stop etcd
    rm -rf "$STATE/etcd-data"
  fi
  ETCD_PORT=${ROLECALL_ETCD_PORT:-$(free_port)}
  ETCD_PEER_PORT=${ROLECALL_ETCD_PEER_PORT:-$(free_port "$ETCD_PORT")}
  APISERVER_PORT=${ROLECALL_APISERVER_PORT:-$(free_port "$ETCD_PORT" "$ETCD_PEER_PORT")}
  printf 'ETCD_PORT=%s\nETCD_PEER_PORT=%s\nAPISERVER_PORT=%s\n' \
    "$ETCD_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" >"$STATE/ports"
  gen_pki
  write_kubeconfig

  local etcd_url=http://127.0.0.1:$ETCD_PORT peer=http://127.0.0.1:$ETCD_PEER_PORT
  start etcd "$ETCD" --name=rolecall --data-dir="$STATE/etcd-data" \
    --listen-client-urls="$etcd_url" --advertise-client-urls="$etcd_url" \
    --listen-peer-urls="$peer" --initial-advertise-peer-urls="$peer" \
    --initial-cluster="rolecall=$peer" --unsafe-no-fsync=true
  wait_for "etcd $etcd_url/health" curl -fsS --max-time 2 "$etcd_url/health"

  start_apiserver "$etcd_url"
  log "up: https://127.0.0.1:$APISERVER_PORT (etcd $etcd_url)"
  log "use it with: eval \"\$($0 env)\""
}

cmd_down() {
  lock
  stop kube-apiserver; stop etcd
  rm -rf "$STATE/etcd-data"
  log "down"
}

# For fault tests: stop kube-apiserver alone (etcd and its data stay), and start it again on
# the same port with the same certificates.
cmd_stop_apiserver() {
  lock
  load_ports
  stop kube-apiserver
  log "kube-apiserver stopped (etcd still up)"
}

cmd_start_apiserver() {
  lock
  load_ports
  alive etcd || die "etcd is not running: use up"
  alive kube-apiserver && { log "kube-apiserver already running"; return; }
  start_apiserver "http://127.0.0.1:$ETCD_PORT"
  log "kube-apiserver up again: https://127.0.0.1:$APISERVER_PORT"
}

cmd_status() {
  if is_up; then
    log "up: https://127.0.0.1:$APISERVER_PORT (etcd pid $(pid_of etcd), kube-apiserver pid $(pid_of kube-apiserver))"
  else
    log "down"; return 1
  fi
}

cmd_env() {
  printf 'export KUBECONFIG=%q\n' "$KUBECONFIG_PATH"
  printf 'export PATH=%q:"$PATH"\n' "$(dirname "$KUBECTL"):$(dirname "$HELM"):$(dirname "$APISERVER"):$(dirname "$ETCD")"
}

case ${1:-} in
  install | up | down | status | env) "cmd_$1" ;;
  stop-apiserver | start-apiserver) "cmd_${1//-/_}" ;;
  *) echo "usage: $0 {install|up|down|status|env|stop-apiserver|start-apiserver}" >&2; exit 2 ;;
esac
