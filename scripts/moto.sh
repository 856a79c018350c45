#!/usr/bin/env bash
# Local AWS fake (moto server) for rolecall tests, on 127.0.0.1 only.
#   scripts/moto.sh install              pinned venv outside the checkout (moto + awscli v1)
#   scripts/moto.sh up [--enforce-iam]   start moto (tools/moto/server.py) (free port or $MOTO_PORT) in the background
#   scripts/moto.sh env                  shell lines to eval: eval "$(scripts/moto.sh env)"
#   scripts/moto.sh reset                wipe moto's state and request recording (re-creates the admin user when enforcing)
#   scripts/moto.sh down                 stop the recorded server
#   scripts/moto.sh status
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REQ=$ROOT/tools/moto/requirements.txt
CACHE=${ROLECALL_CACHE:-$HOME/.cache/rolecall}
STATE=${ROLECALL_STATE:-$HOME/.cache/rolecall/state}/moto
MOTO_VERSION=$(sed -n 's/^moto==\([^ ;\\]*\).*/\1/p' "$REQ")
VENV=$CACHE/venv/moto-$MOTO_VERSION-$(sha256sum "$REQ" | cut -c1-12)
PIDF=$STATE/moto.pid
[[ -n $MOTO_VERSION ]] || { echo "moto.sh: no moto== pin in $REQ" >&2; exit 1; }
export AWS_EC2_METADATA_DISABLED=true # never ask an instance metadata service

log() { echo "moto.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

install() {
  if [[ ! -f $VENV/.installed ]]; then
    mkdir -p "$CACHE/venv"
    ( # one installer at a time; the lock is released when the subshell exits
      flock 9
      [[ -f $VENV/.installed ]] && exit 0
      log "installing moto $MOTO_VERSION + awscli (pinned, hashed: $REQ) into $VENV"
      rm -rf "$VENV"
      python3 -m venv "$VENV"
      "$VENV/bin/pip" install -q --no-compile --require-hashes --no-deps -r "$REQ"
      "$VENV/bin/pip" check >/dev/null
      touch "$VENV/.installed"
    ) 9>"$CACHE/venv/.lock"
  fi
  log "installed: $VENV"
}

running_pid() { # pid of the recorded moto_server if it is alive
  local pid
  pid=$(cat "$PIDF" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q tools/moto/server.py && echo "$pid"
}

endpoint() { sed -n 's/^export ROLECALL_TEST_AWS_ENDPOINT=\([^ ]*\).*/\1/p' "$STATE/env" 2>/dev/null; }
enforced() { grep -q '^export ROLECALL_TEST_MOTO_ENFORCE_IAM=1' "$STATE/env" 2>/dev/null; }
api() { curl -sf --noproxy '*' --max-time 10 -X POST "$1/moto-api/$2" >/dev/null; } # $1 endpoint, $2 path
answers() { curl -s --noproxy '*' --max-time 2 -o /dev/null "$1/moto-api/config"; }

write_env() { # $1 endpoint, $2 enforce (0/1); with enforcement also creates the admin user
  local admin=""
  if [[ $2 == 1 ]]; then
    admin=$("$VENV/bin/python" "$ROOT/tools/moto/bootstrap_admin.py" "$1") || return 1
    admin="export ROLECALL_TEST_MOTO_ENFORCE_IAM=1"$'\n'$admin
  fi
  cat >"$STATE/env.tmp" <<EOF || return 1
export ROLECALL_TEST_AWS_ENDPOINT=$1 AWS_ENDPOINT_URL=$1
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export NO_PROXY="127.0.0.1,localhost\${NO_PROXY:+,\$NO_PROXY}"
export ROLECALL_MOTO_BIN="$VENV/bin" PATH="$VENV/bin:\$PATH"
export ROLECALL_TEST_MOTO_RECORDING="$STATE/recording.jsonl"
${admin}
EOF
  mv "$STATE/env.tmp" "$STATE/env"
}

up() {
  local enforce=0 pid port url
  case "${1:-}" in --enforce-iam) enforce=1 ;; "") ;; *) die "usage: up [--enforce-iam]" ;; esac
  install
  mkdir -p "$STATE"
  if pid=$(running_pid) && answers "$(endpoint)"; then
    local was=0; enforced && was=1
    if [[ $was == "$enforce" ]]; then log "already up (pid $pid, $(endpoint), enforce-iam=$enforce)"; return; fi
    log "up with enforce-iam=$was, restarting with enforce-iam=$enforce"
  fi
  down
  port=${MOTO_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
  url=http://127.0.0.1:$port
  log "starting moto_server on $url (enforce-iam=$enforce, log $STATE/moto.log)"
  # AWS managed policies (arn:aws:iam::aws:policy/...) exist only when moto loads them.
  # No job control here, so setsid execs in place and $! is moto_server's pid.
  INITIAL_NO_AUTH_ACTION_COUNT=$([[ $enforce == 1 ]] && echo 0 || echo inf) \
    MOTO_ENABLE_RECORDING=true MOTO_RECORDER_FILEPATH=$STATE/recording.jsonl \
    MOTO_IAM_LOAD_MANAGED_POLICIES=true \
    setsid nohup "$VENV/bin/python" "$ROOT/tools/moto/server.py" -H 127.0.0.1 -p "$port" >"$STATE/moto.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDF"
  log "waiting for moto_server (pid $pid) to answer on $url"
  # Only the process's death means it failed: until the background child has exec'd the
  # server (slow on a loaded machine) its cmdline is still bash's, so running_pid says no.
  local deadline=$((SECONDS + 30))
  until answers "$url"; do
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$STATE/moto.log" >&2; die "moto_server exited"; }
    ((SECONDS < deadline)) || { kill "$pid" 2>/dev/null || true; down; die "moto_server did not answer within 30s"; }
    sleep 0.2
  done
  write_env "$url" "$enforce" || { down; die "could not write $STATE/env"; }
  api "$url" recorder/reset-recording # start counting requests from here
  log "up (pid $(cat "$PIDF")): eval \"\$($0 env)\""
}

down() {
  local pid
  if pid=$(running_pid); then
    log "stopping moto_server (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { log "still alive, KILL"; kill -KILL "$pid" 2>/dev/null || true; }
  fi
  rm -f "$PIDF" "$STATE/env"
}

is_up() { running_pid >/dev/null && [[ -f $STATE/env ]]; }
need_up() { is_up || die "moto is not up: run $0 up"; }

case "${1:-}" in
  install) install ;;
  up) shift; up "$@" ;;
  down) down; log "down" ;;
  env) need_up; cat "$STATE/env" ;;
  reset)
    need_up
    log "resetting $(endpoint)"
    api "$(endpoint)" reset
    if enforced; then write_env "$(endpoint)" 1 || die "could not re-create the admin user"; fi
    api "$(endpoint)" recorder/reset-recording
    ;;
  status) if is_up; then log "up (pid $(cat "$PIDF")) at $(endpoint)"; else log "down"; exit 1; fi ;;
  *) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
