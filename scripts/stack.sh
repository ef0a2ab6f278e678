#!/usr/bin/env bash
# Local real stack for tests and the demo, everything on 127.0.0.1:
#   - Docker engine (Debian docker.io), started here only when none is reachable
#   - registry :5000 (no auth) and :5001 (htpasswd basic auth, deploy/deploy-secret)
#   - haproxy, nginx, wrk, socat, busybox-static, apache2-utils installed, NOT started
#     (the collection starts its own router instances)
# Usage: scripts/stack.sh start|stop|status|verify
# Pid files under the state dir record only what this script started; stop touches
# nothing else, and never removes containers or images.
set -euo pipefail

STATE="${IMMUTABLE_DEPLOY_STATE:-/var/tmp/immutable-deploy}"
RUN="$STATE/run"
DOCKERD_PID="$RUN/dockerd.pid"
DOCKERD_LOG="$STATE/dockerd.log"
PACKAGES=(docker.io docker-registry haproxy nginx wrk socat busybox-static apache2-utils prometheus)
REG_USER=deploy
REG_PASS=deploy-secret
# A user-set pin (e.g. DOCKER_API_VERSION=1.50 for a newer engine) would stop the
# 28.x client at /usr/local/bin from negotiating down to Debian's 20.10 engine (1.41).
unset DOCKER_API_VERSION

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- packages
missing_packages() {
  local p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || echo "$p"
  done
}

ensure_packages() {
  local missing
  mapfile -t missing < <(missing_packages)
  ((${#missing[@]} == 0)) && return 0
  [[ $EUID -eq 0 ]] || die "missing packages (need root to install): ${missing[*]}"
  log "installing: ${missing[*]}"
  # Lock::Timeout waits for a concurrent apt/dpkg instead of failing on the lock.
  local apt=(apt-get -q -y -o DPkg::Lock::Timeout=900)
  # Try without 'update' first (fast path); a fresh machine has empty/old lists.
  if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "${missing[@]}"; then
    # The lists lock may not honour Lock::Timeout on every apt version: retry.
    local i
    for i in 1 2 3; do
      DEBIAN_FRONTEND=noninteractive "${apt[@]}" update && break
      ((i < 3)) && sleep 10
    done
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "${missing[@]}"
  fi
}

# ---------------------------------------------------------------- process helpers
# Echo the pid from $1 if it is alive and its command line contains $2 (guards
# against a stale pid file whose pid was reused by an unrelated process).
owned_pid() {
  local file=$1 match=$2 pid
  [[ -s $file ]] || return 1
  pid=$(<"$file")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$match" || return 1
  echo "$pid"
}

# Wait until "$@" succeeds, up to $timeout seconds; on timeout show the log tail.
# WATCH_PID (optional): fail at once if the process we just started has died.
wait_for() {
  local what=$1 timeout=$2 logfile=$3; shift 3
  local i why="timed out after ${timeout}s"
  for ((i = 0; i < timeout * 4; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    if [[ -n ${WATCH_PID:-} ]] && ! kill -0 "$WATCH_PID" 2>/dev/null; then
      why="process $WATCH_PID exited"; break
    fi
    sleep 0.25
  done
  log "$why waiting for $what; last lines of $logfile:"
  tail -n 30 "$logfile" >&2 || true
  exit 1
}

stop_pid() {
  local name=$1 file=$2 match=$3 timeout=$4 pid i
  if pid=$(owned_pid "$file" "$match"); then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 4; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name did not exit in ${timeout}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$file"
}

port_listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# ---------------------------------------------------------------- docker engine
docker_ok() { docker info >/dev/null 2>&1; }

start_docker() {
  if owned_pid "$DOCKERD_PID" dockerd >/dev/null; then
    wait_for "dockerd" 60 "$DOCKERD_LOG" docker_ok
    return 0
  fi
  if docker_ok; then
    log "using an already running Docker engine (not ours; stop will leave it alone)"
    return 0
  fi
  [[ $EUID -eq 0 ]] || die "no reachable Docker engine and not root to start one"
  [[ -x /usr/sbin/dockerd ]] || die "/usr/sbin/dockerd missing (package docker.io)"
  log "starting dockerd (log $DOCKERD_LOG)"
  # Default socket and data root, so the docker CLI and the Python SDK find it
  # without DOCKER_HOST and images survive a restart. setsid: the daemon must not
  # die with the shell/job that ran this script. 127.0.0.0/8 is an insecure
  # registry by default, so no --insecure-registry is needed for :5000/:5001.
  setsid /usr/sbin/dockerd --storage-driver overlay2 --pidfile "$DOCKERD_PID" \
    </dev/null >>"$DOCKERD_LOG" 2>&1 &
  WATCH_PID=$! wait_for "docker info" 60 "$DOCKERD_LOG" docker_ok
  owned_pid "$DOCKERD_PID" dockerd >/dev/null \
    || die "docker answers but $DOCKERD_PID is not ours; another engine raced us?"
}

# ---------------------------------------------------------------- registries
write_registry_config() {
  local port=$1 auth=$2 dir="$STATE/registry-$1"
  mkdir -p "$dir/storage"
  # Fixed per-instance secret: silences the "generated random secret" warning
  # and keeps upload sessions valid across a restart.
  local secret_file="$dir/http.secret"
  [[ -s $secret_file ]] || od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$secret_file"
  {
    cat <<EOF
version: 0.1
log:
  level: info
  fields:
    service: registry-$port
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$port
  secret: $(<"$secret_file")
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
EOF
    if [[ $auth == yes ]]; then
      cat <<EOF
auth:
  htpasswd:
    realm: immutable-deploy
    path: $dir/htpasswd
EOF
      # Recreate only when missing or no longer matching (idempotent, bcrypt).
      if ! htpasswd -vb "$dir/htpasswd" "$REG_USER" "$REG_PASS" >/dev/null 2>&1; then
        htpasswd -Bbc "$dir/htpasswd" "$REG_USER" "$REG_PASS" >/dev/null 2>&1
      fi
    fi
  } >"$dir/config.yml"
}

registry_http_code() { # port [curl args...]
  local port=$1; shift
  curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$@" "http://127.0.0.1:$port/v2/" || true
}

# A function, not `test "$(curl ...)"`, so wait_for makes a fresh request per try.
registry_is() { [[ "$(registry_http_code "$@")" == "$REG_EXPECT" ]]; }
start_registry() {
  local port=$1 auth=$2 dir="$STATE/registry-$1"
  local pidf="$RUN/registry-$port.pid" logf="$dir/registry.log"
  write_registry_config "$port" "$auth"
  if ! owned_pid "$pidf" "$dir/config.yml" >/dev/null; then
    if port_listening "$port"; then
      log "127.0.0.1:$port is already taken by something we did not start; leaving it"
      return 0
    fi
    log "starting registry on 127.0.0.1:$port (auth=$auth, log $logf)"
    setsid /usr/bin/docker-registry serve "$dir/config.yml" </dev/null >>"$logf" 2>&1 &
    echo $! >"$pidf"
  fi
  local WATCH_PID
  WATCH_PID=$(<"$pidf")
  if [[ $auth == yes ]]; then
    REG_EXPECT=200 wait_for "registry :$port (with credentials)" 30 "$logf" \
      registry_is "$port" -u "$REG_USER:$REG_PASS"
    REG_EXPECT=401 wait_for "registry :$port (401 without credentials)" 5 "$logf" \
      registry_is "$port"
  else
    REG_EXPECT=200 wait_for "registry :$port" 30 "$logf" registry_is "$port"
  fi
}

# ---------------------------------------------------------------- verify
# Push a one-file scratch image to both registries with a throw-away client
# config (DOCKER_CONFIG), so the login does not land in ~/.docker/config.json.
verify() {
  docker_ok || die "docker engine not reachable; run: $0 start"
  local tmp tag="stack-verify:$$"
  tmp=$(mktemp -d)
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'; docker rmi -f $tag 127.0.0.1:5000/$tag 127.0.0.1:5001/$tag >/dev/null 2>&1 || true" RETURN
  echo "verify $$ $(date +%s)" >"$tmp/hello"
  printf 'FROM scratch\nCOPY hello /hello\n' >"$tmp/Dockerfile"
  docker build -q -t "$tag" "$tmp" >/dev/null 2>"$tmp/build.err" \
    || { cat "$tmp/build.err" >&2; die "docker build failed"; }
  docker tag "$tag" "127.0.0.1:5000/$tag"
  docker push -q "127.0.0.1:5000/$tag" >/dev/null || die "push to :5000 failed"
  log "push to 127.0.0.1:5000 ok"
  mkdir -p "$tmp/cfg"
  echo "$REG_PASS" | DOCKER_CONFIG="$tmp/cfg" docker login -u "$REG_USER" --password-stdin 127.0.0.1:5001 >/dev/null 2>&1 \
    || die "docker login 127.0.0.1:5001 failed"
  docker tag "$tag" "127.0.0.1:5001/$tag"
  DOCKER_CONFIG="$tmp/cfg" docker push -q "127.0.0.1:5001/$tag" >/dev/null || die "push to :5001 failed"
  log "login + push to 127.0.0.1:5001 ok"
  # Leave the registries clean: delete the manifests we pushed (delete is enabled).
  local port digest auth=()
  for port in 5000 5001; do
    [[ $port == 5001 ]] && auth=(-u "$REG_USER:$REG_PASS")
    digest=$(curl -fsSI "${auth[@]}" -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
      "http://127.0.0.1:$port/v2/stack-verify/manifests/$$" | tr -d '\r' | awk 'tolower($1)=="docker-content-digest:"{print $2}')
    [[ -n $digest ]] && curl -fsS -X DELETE "${auth[@]}" "http://127.0.0.1:$port/v2/stack-verify/manifests/$digest" >/dev/null
  done
}

# ---------------------------------------------------------------- status
status() {
  local pid v
  echo "state dir: $STATE"
  if pid=$(owned_pid "$DOCKERD_PID" dockerd); then
    echo "dockerd:        running, ours (pid $pid, log $DOCKERD_LOG)"
  elif docker_ok; then
    echo "dockerd:        running, NOT ours (stop leaves it alone)"
  else
    echo "dockerd:        down"
  fi
  if docker_ok; then
    v=$(docker version --format 'client {{.Client.Version}}, server {{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null || true)
    echo "docker:         $(command -v docker): $v"
  fi
  local port code
  for port in 5000 5001; do
    if pid=$(owned_pid "$RUN/registry-$port.pid" "$STATE/registry-$port/config.yml"); then
      who="ours (pid $pid)"
    elif port_listening "$port"; then
      who="NOT ours"
    else
      echo "registry :$port: down"; continue
    fi
    code=$(registry_http_code "$port")
    [[ $port == 5001 ]] && code="$code anonymous, $(registry_http_code "$port" -u "$REG_USER:$REG_PASS") as $REG_USER"
    echo "registry :$port: running, $who, /v2/ -> $code"
  done
  # Routers are only installed here; report anything running (e.g. a system
  # nginx/haproxy started by apt's postinst on :80) so it is not mistaken for ours.
  local svc pids
  for svc in haproxy nginx; do
    v=$(dpkg-query -W -f='${Version}' "$svc" 2>/dev/null || echo "not installed")
    pids=$(pgrep -x "$svc" | tr '\n' ' ' || true)
    if [[ -n $pids ]]; then pids="running pids ${pids}(not managed by stack.sh)"; else pids="not running"; fi
    printf '%-16s%s\n' "$svc:" "installed $v; $pids"
  done
  if port_listening 80; then
    echo "port 80:        in use by: $(ss -Hltnp 'sport = :80' | grep -o 'users:.*' | sort -u | tr '\n' ' ')"
  fi
  local missing
  missing=$(missing_packages | tr '\n' ' ')
  [[ -z $missing ]] || echo "missing packages: $missing"
}

# ---------------------------------------------------------------- main
case "${1:-}" in
  start)
    mkdir -p "$RUN"
    ensure_packages
    start_docker
    start_registry 5000 no
    start_registry 5001 yes
    status
    ;;
  stop)
    # Registries first, the engine last; containers and images are kept.
    stop_pid "registry :5001" "$RUN/registry-5001.pid" "$STATE/registry-5001/config.yml" 10
    stop_pid "registry :5000" "$RUN/registry-5000.pid" "$STATE/registry-5000/config.yml" 10
    stop_pid dockerd "$DOCKERD_PID" dockerd 60
    ;;
  status) status ;;
  verify) verify ;;
  *) echo "usage: $0 start|stop|status|verify" >&2; exit 2 ;;
esac
