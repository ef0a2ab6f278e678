#!/usr/bin/env bash
# Real single-node Kubernetes (v1.20.2, Debian bookworm's own source package) for tests:
# etcd + kube-apiserver + controller-manager + scheduler + kubelet (dockershim -> local Docker),
# everything on 127.0.0.1. No registry, no internet: binaries are built from `apt-get source`,
# images are FROM scratch. Usage: cluster.sh build|start|stop|status|env|kubectl ARGS...
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEB_VERSION=1.20.5+really1.20.2-1.1+deb12u1   # Debian's package version (upstream v1.20.2)
K8S_VERSION=1.20.2
CACHE_ROOT=${IMMUTABLE_DEPLOY_CACHE:-$HOME/.cache/immutable-deploy}
# the patches are part of the build's identity: changing one gives a new cache folder (a rebuild)
PATCH_ID=$(cat "$HERE"/*.patch | sha256sum | cut -c1-8)
CACHE=$CACHE_ROOT/k8s-$K8S_VERSION-$PATCH_ID
BIN=$CACHE/bin
STATE=${IMMUTABLE_DEPLOY_STATE:-/var/tmp/immutable-deploy}/k8s
PKI=$STATE/pki RUN=$STATE/run LOGS=$STATE/logs
OUR_KUBECONFIG=$STATE/kubeconfig
PAUSE_IMAGE=immutable-deploy/pause:3.2
BINARIES="kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl"
# start order (stop: kubelet first, then the rest)
COMPONENTS="etcd apiserver controller-manager scheduler kubelet"

log() { printf '[k8s] %s\n' "$*" >&2; }
die() { printf '[k8s] ERROR: %s\n' "$*" >&2; exit 1; }

# Install missing Debian packages (the machine may be fresh; apt is the only registry we have).
need_cmds() {  # need_cmds cmd:package ...
  local miss=() c
  for c in "$@"; do command -v "${c%%:*}" >/dev/null 2>&1 || miss+=("${c#*:}"); done
  [ ${#miss[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "missing packages: ${miss[*]} (install them, or run as root)"
  log "installing ${miss[*]}"
  apt-get install -y -q --no-install-recommends "${miss[@]}" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${miss[@]}" >/dev/null; }
}

cache_ok() { local b; for b in $BINARIES pause; do [ -x "$BIN/$b" ] || return 1; done; }

# ---------------------------------------------------------------- build
do_build() {
  mkdir -p "$CACHE_ROOT"
  # one build at a time (parallel test runs would otherwise race on the same work dir)
  exec 9>"$CACHE_ROOT/.k8s-build.lock"; flock 9
  if cache_ok; then log "binaries cached in $BIN"; return 0; fi
  need_cmds go:golang-go dpkg-source:dpkg-dev rsync:rsync jq:jq gcc:gcc make:make patch:patch
  # static libc for the pause binary
  [ "$(gcc -print-file-name=libc.a)" != libc.a ] || need_cmds "no-such-cmd:libc6-dev"
  local t0=$SECONDS W=$CACHE/work
  rm -rf "$W"; mkdir -p "$W"/apt/lists/partial "$W"/apt/cache/archives/partial "$W"/apt/sources.list.d "$W"/src "$W"/home
  # A private APT config that adds deb-src to the machine's own Debian sources: /etc/apt stays untouched.
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    sed 's/^Types: deb$/Types: deb deb-src/' "$f" >"$W/apt/sources.list.d/${f##*/}"
  done
  { [ -f /etc/apt/sources.list ] && sed -n 's/^deb \(.*\)$/deb \1\ndeb-src \1/p' /etc/apt/sources.list; true; } > "$W/apt/sources.list"
  printf 'Dir::Etc::sourcelist "%s";\nDir::Etc::sourceparts "%s";\nDir::State::Lists "%s";\nDir::Cache "%s";\n' \
    "$W/apt/sources.list" "$W/apt/sources.list.d" "$W/apt/lists" "$W/apt/cache" > "$W/apt/apt.conf"
  log "fetching Debian source package kubernetes=$DEB_VERSION"
  ( export APT_CONFIG=$W/apt/apt.conf
    apt-get update -q >"$W/apt.log" 2>&1
    cd "$W/src" && apt-get source -q --download-only "kubernetes=$DEB_VERSION" >>"$W/apt.log" 2>&1
  ) || die "apt-get source failed, see $W/apt.log"
  # apt already checked the files against the signed Sources index; the .dsc key warning is noise
  dpkg-source -x "$W/src/kubernetes_$DEB_VERSION.dsc" "$W/src/k8s" >>"$W/apt.log" 2>&1
  # oom.patch: this machine's root lacks CAP_SYS_RESOURCE, runc cannot set the negative oom_score_adj
  # dockershim asks for, and every pod sandbox fails ("can't get final child's PID from pipe: EOF").
  # gc.patch: deleted pods leave the API in seconds instead of up to a minute (see the patch).
  for f in "$HERE"/*.patch; do ( cd "$W/src/k8s" && patch -p0 --forward --no-backup-if-mismatch -s <"$f" ); done
  log "building $BINARIES (niced: 6-7 min on 2 idle cores, far longer on a busy machine; log: $W/make.log)"
  ( cd "$W/src/k8s"
    mkdir -p .go/src/k8s.io && ln -sfn ../../.. .go/src/k8s.io/kubernetes   # 1.20's build wants a GOPATH layout
    # HOME/GOCACHE inside the work dir: nothing lands in the user's home; GOPROXY=off: all is vendored
    export GOPATH=$PWD/.go CGO_ENABLED=0 HOME=$W/home GOCACHE=$W/home/go-build GOPROXY=off GOFLAGS=-tags=providerless
    # providerless: leave out the cloud providers (smaller, faster build)
    nice -n 19 ionice -c3 make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubelet cmd/kubectl" \
      GOFLAGS=-tags=providerless >"$W/make.log" 2>&1
  ) || { tail -20 "$W/make.log" >&2; die "make failed, see $W/make.log"; }
  rm -rf "$BIN.tmp"; mkdir -p "$BIN.tmp"
  for f in $BINARIES; do cp "$W/src/k8s/_output/bin/$f" "$BIN.tmp/"; done
  # the pod sandbox ("pause") image's binary, from the same source tree, static so FROM scratch works
  gcc -Os -static -DVERSION="v$K8S_VERSION-immutable-deploy" -o "$BIN.tmp/pause" "$W/src/k8s/build/pause/linux/pause.c"
  strip "$BIN.tmp/pause"
  rm -rf "$BIN"; mv "$BIN.tmp" "$BIN"   # atomic: a half-done build never looks cached
  # the source tree + go cache are ~GBs and not needed once binaries exist
  [ "${K8S_KEEP_SRC:-0}" = 1 ] || rm -rf "$W"
  log "built in $((SECONDS - t0))s -> $BIN"
}

# ---------------------------------------------------------------- helpers for the running cluster
kctl() { "$BIN/kubectl" --kubeconfig="$OUR_KUBECONFIG" --request-timeout=10s "$@"; }
answers() {  # answers KUBECONFIG: does that cluster reply to /readyz?
  local k=$BIN/kubectl; [ -x "$k" ] || k=kubectl
  KUBECONFIG=$1 "$k" --request-timeout=5s get --raw /readyz >/dev/null 2>&1
}
user_kubeconfig() {  # the user's own cluster, if KUBECONFIG points elsewhere than ours
  [ -n "${KUBECONFIG:-}" ] && [ "$KUBECONFIG" != "$OUR_KUBECONFIG" ]
}
bin_of() {  # the executable name a component's pid must run
  case $1 in etcd) echo etcd ;; apiserver | controller-manager | scheduler) echo "kube-$1" ;; kubelet) echo kubelet ;; esac
}
pid_of() {  # prints the pid if this component runs from our pid file, else fails
  local f=$RUN/$1.pid p
  [ -f "$f" ] || return 1; p=$(cat "$f")
  # the executable's name guards against a reused pid; not its full path, so a cluster started
  # from an older cache folder can still be stopped
  [ -n "$p" ] && [ "$(basename "$(readlink "/proc/$p/exe" 2>/dev/null)")" = "$(bin_of "$1")" ] && echo "$p"
}
docker_ok() { docker info >/dev/null 2>&1; }
require_docker() {
  docker_ok || die "no reachable Docker engine (docker info fails; DOCKER_HOST=${DOCKER_HOST:-unset}).
  The kubelet runs pods as containers in the local Docker engine, and this script does not start one:
  start it first (scripts/stack.sh, or: dockerd >/var/tmp/dockerd.log 2>&1 &)."
}

# Launch a component detached (own session, stdio to its log) so `start` returns and a caller's
# pipe or Ctrl-C does not take the cluster down; the pid file is what `stop` trusts.
launch() {  # launch NAME CMD...
  local name=$1; shift
  # 8>&- 9>&-: the daemons must not inherit (and so hold forever) our lock files
  setsid "$@" </dev/null >"$LOGS/$name.log" 2>&1 8>&- 9>&- &
  echo $! >"$RUN/$name.pid"
  # until setsid has exec'd, the pid still looks like bash; pid_of must not call that "exited"
  for _ in $(seq 50); do pid_of "$name" >/dev/null && return 0; sleep 0.05; done
}
wait_for() {  # wait_for SECONDS WHAT CMD...: poll, and fail fast if one of our processes died
  local end=$((SECONDS + $1)) what=$2 c; shift 2
  until "$@" >/dev/null 2>&1; do
    for c in $COMPONENTS; do
      if [ -f "$RUN/$c.pid" ] && ! pid_of "$c" >/dev/null; then
        tail -15 "$LOGS/$c.log" >&2; die "$c exited while waiting for $what (log: $LOGS/$c.log)"
      fi
    done
    [ $SECONDS -lt $end ] || die "timed out waiting for $what (logs: $LOGS)"
    sleep 0.5
  done
}

make_pki() {  # once per state dir: keeps the kubeconfig valid across stop/start
  [ -f "$PKI/tokens.csv" ] && return 0
  rm -rf "$PKI"; mkdir -p "$PKI"
  ( cd "$PKI"
    o() { openssl "$@" >/dev/null 2>&1; }
    o genrsa -out sa.key 2048; o rsa -in sa.key -pubout -out sa.pub
    o req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj "/CN=immutable-deploy-test-ca"
    o req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver"
    printf 'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n' >ext.cnf
    o x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 3650 -extfile ext.cnf
    # the apiserver's client cert towards the kubelet (logs/exec)
    o req -newkey rsa:2048 -nodes -keyout kubelet-client.key -out kubelet-client.csr -subj "/O=system:masters/CN=kube-apiserver-kubelet-client"
    o x509 -req -in kubelet-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out kubelet-client.crt -days 3650
    # one static admin token (system:masters) used by the tests and by the components alike
    echo "$(openssl rand -hex 16),admin,admin,\"system:masters\"" >tokens.csv.tmp
    chmod 600 tokens.csv.tmp; mv tokens.csv.tmp tokens.csv )
}
write_kubeconfig() {
  local tok; tok=$(cut -d, -f1 "$PKI/tokens.csv")
  cat >"$OUR_KUBECONFIG.tmp" <<KC
apiVersion: v1
kind: Config
clusters:
- name: immutable-deploy-k8s
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: admin
  user: {token: $tok}
contexts:
- name: immutable-deploy-k8s
  context: {cluster: immutable-deploy-k8s, user: admin, namespace: default}
current-context: immutable-deploy-k8s
KC
  chmod 600 "$OUR_KUBECONFIG.tmp"; mv "$OUR_KUBECONFIG.tmp" "$OUR_KUBECONFIG"
}
pause_image() {  # the sandbox image, FROM scratch with our static pause: nothing is pulled
  docker image inspect "$PAUSE_IMAGE" >/dev/null 2>&1 && return 0
  local d=$STATE/img/pause; rm -rf "$d"; mkdir -p "$d"; cp "$BIN/pause" "$d/"
  printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$d/Dockerfile"
  docker build -q -t "$PAUSE_IMAGE" "$d" >"$d/build.log" 2>&1 || { cat "$d/build.log" >&2; die "pause image build failed"; }
}
ports_free() {
  local p busy=
  for p in 2379 2380 2381 6443 10248 10250 10257 10259; do
    [ -z "$(ss -ltnH "sport = :$p" 2>/dev/null)" ] || busy="$busy $p"
  done
  [ -z "$busy" ] || die "ports already in use on this machine:$busy (another cluster or etcd? see: ss -ltnp)"
}
node_ready() {
  [ "$(kctl get node localhost -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}
all_running() { local c; for c in $COMPONENTS; do pid_of "$c" >/dev/null || return 1; done; }

# ---------------------------------------------------------------- start
do_start() {
  if user_kubeconfig; then
    if answers "$KUBECONFIG"; then
      log "KUBECONFIG=$KUBECONFIG is set and its cluster answers: using the user's cluster, starting nothing"
      return 0
    fi
    log "KUBECONFIG=$KUBECONFIG is set but does not answer: starting the local cluster (see: $0 env)"
  fi
  require_docker
  cache_ok || do_build
  need_cmds etcd:etcd-server openssl:openssl ss:iproute2 setsid:util-linux
  mkdir -p "$STATE" "$RUN" "$LOGS"
  # two `start`s at once would fight over ports and pid files
  exec 8>"$STATE/.lock"; flock -w 300 8 || die "another start/stop holds $STATE/.lock"
  if all_running && kctl get --raw /readyz >/dev/null 2>&1; then
    # a cluster started from another cache folder (a patch changed since) runs other binaries
    if [ "$(readlink "/proc/$(pid_of apiserver)/exe" 2>/dev/null)" = "$BIN/kube-apiserver" ]; then
      log "already running; KUBECONFIG=$OUR_KUBECONFIG"; return 0
    fi
    log "running from other binaries than $BIN: restarting"; do_stop_locked
  fi
  all_running || [ -z "$(ls "$RUN"/*.pid 2>/dev/null)" ] || { log "partly running: stopping the rest first"; do_stop_locked; }
  ports_free
  local sock=$RUN/dockershim.sock
  [ ${#sock} -lt 100 ] || die "state path too long for a unix socket: $sock (set IMMUTABLE_DEPLOY_STATE shorter)"
  local t0=$SECONDS
  # etcd starts empty, so no pod survives a restart: start the kubelet from a clean root dir too
  unmount_kubelet; rm -rf "$RUN/kubelet" "$RUN/dockershim" "$RUN/kubelet-pki"
  make_pki; write_kubeconfig; pause_image
  # etcd on tmpfs: fsync on disk makes every API write slow, and test cluster data is throwaway
  local etcd_dir
  etcd_dir=/dev/shm/immutable-deploy-etcd-$(printf %s "$STATE" | cksum | cut -d' ' -f1)
  [ -d /dev/shm ] || etcd_dir=$STATE/etcd
  rm -rf "$etcd_dir"; echo "$etcd_dir" >"$RUN/etcd.dir"
  launch etcd etcd --name default --data-dir "$etcd_dir" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster default=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381
  # no kube-proxy/CNI, so ClusterIPs are not routed anyway: no endpoint reconciler for `kubernetes`;
  # the apiserver reaches the kubelet by hostname (localhost) for logs/exec
  launch apiserver "$BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port=6443 --insecure-port=0 \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" --client-ca-file="$PKI/ca.crt" \
    --token-auth-file="$PKI/tokens.csv" --authorization-mode=RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 --endpoint-reconciler-type=none \
    --enable-priority-and-fairness=false --kubelet-preferred-address-types=Hostname \
    --kubelet-client-certificate="$PKI/kubelet-client.crt" --kubelet-client-key="$PKI/kubelet-client.key"
  wait_for 90 "apiserver /readyz" kctl get --raw /readyz
  log "apiserver ready after $((SECONDS - t0))s"
  launch controller-manager "$BIN/kube-controller-manager" --kubeconfig="$OUR_KUBECONFIG" \
    --bind-address=127.0.0.1 --port=0 --leader-elect=false \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --authentication-skip-lookup=true
  launch scheduler "$BIN/kube-scheduler" --kubeconfig="$OUR_KUBECONFIG" \
    --bind-address=127.0.0.1 --port=0 --leader-elect=false --authentication-skip-lookup=true
  local drv; drv=$(docker info -f '{{.CgroupDriver}}' 2>/dev/null || echo cgroupfs)
  sed -e "s#@PKI@#$PKI#" -e "s#@CGROUP_DRIVER@#$drv#" "$HERE/kubelet-config.yaml.tmpl" >"$STATE/kubelet-config.yaml"
  local dh=${DOCKER_HOST:-unix:///var/run/docker.sock}
  case $dh in unix://*) ;; *) die "the kubelet (dockershim) needs a local unix Docker socket, DOCKER_HOST=$dh" ;; esac
  : >"$RUN/kubelet.started"   # tells `stop` that k8s_ containers on this engine are ours to remove
  # node name `localhost`: the apiserver reaches the kubelet by that hostname (127.0.0.1)
  AWS_EC2_METADATA_DISABLED=true launch kubelet "$BIN/kubelet" --kubeconfig="$OUR_KUBECONFIG" \
    --config="$STATE/kubelet-config.yaml" --hostname-override=localhost \
    --container-runtime=docker --docker-endpoint="$dh" --pod-infra-container-image="$PAUSE_IMAGE" \
    --root-dir="$RUN/kubelet" --cert-dir="$RUN/kubelet-pki" --experimental-dockershim-root-directory="$RUN/dockershim" \
    --container-runtime-endpoint="unix://$sock" --image-service-endpoint="unix://$sock"
  wait_for 120 "node Ready" node_ready
  # pods are refused until the controller-manager has made the namespace's default ServiceAccount
  wait_for 60 "default ServiceAccount" kctl -n default get serviceaccount default
  log "cluster up in $((SECONDS - t0))s (node Ready); export KUBECONFIG=$OUR_KUBECONFIG"
}

# ---------------------------------------------------------------- stop
stop_pids() {  # stop_pids COMPONENT...: TERM all at once (each takes ~2 s to exit), KILL after 15 s
  local c p alive pids=() names=()
  for c in "$@"; do
    if p=$(pid_of "$c"); then kill "$p" 2>/dev/null || true; pids+=("$p"); names+=("$c"); fi
  done
  for _ in $(seq 150); do
    alive=0; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break; sleep 0.1
  done
  for p in "${pids[@]}"; do
    kill -0 "$p" 2>/dev/null && { log "pid $p did not stop on TERM, killing"; kill -9 "$p" 2>/dev/null || true; }
  done
  [ ${#names[@]} -eq 0 ] || log "stopped ${names[*]}"
  for c in "$@"; do rm -f "$RUN/$c.pid"; done
}
unmount_kubelet() {
  # the kubelet bind-mounts its root dir onto itself, plus tmpfs/secret volumes for pods: unmount all,
  # deepest first, or the state dir cannot be removed and mounts pile up across runs
  awk -v r="$RUN/kubelet" '$2 == r || index($2, r "/") == 1 {print $2}' /proc/mounts | sort -r \
    | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
}
do_stop_locked() {
  local ids=() uids u d
  # kubelet first, so it does not restart the pod containers we are about to remove
  stop_pids kubelet
  if [ -f "$RUN/kubelet.started" ]; then
    if docker_ok; then
      # only what dockershim made: k8s_ names and dockershim's own label; other containers are left alone
      mapfile -t ids < <(docker ps -aq --filter name='^/k8s_' --filter label=io.kubernetes.docker.type)
      if [ ${#ids[@]} -gt 0 ]; then
        uids=$(docker inspect -f '{{index .Config.Labels "io.kubernetes.pod.uid"}}' "${ids[@]}" 2>/dev/null | sort -u || true)
        docker rm -f "${ids[@]}" >/dev/null; log "removed ${#ids[@]} pod containers"
        # the kubelet's per-pod log dirs and symlinks (fixed paths under /var/log) of exactly those pods
        for u in $uids; do
          for d in /var/log/pods/*_"$u"; do
            [ -d "$d" ] || continue
            find /var/log/containers -maxdepth 1 -lname "$d/*" -delete 2>/dev/null || true
            rm -rf "$d"
          done
        done
      fi
      rm -f "$RUN/kubelet.started"
    else
      log "WARNING: Docker engine not reachable, pod containers (k8s_*) not removed; run stop again when it is"
    fi
  fi
  stop_pids scheduler controller-manager apiserver etcd
  unmount_kubelet
  if [ -f "$RUN/etcd.dir" ]; then rm -rf "$(cat "$RUN/etcd.dir")"; rm -f "$RUN/etcd.dir"; fi
}
do_stop() {
  [ -d "$STATE" ] || { log "nothing to stop"; return 0; }
  mkdir -p "$RUN"; exec 8>"$STATE/.lock"; flock -w 300 8 || die "another start/stop holds $STATE/.lock"
  do_stop_locked
  log "stopped"
}

# ---------------------------------------------------------------- status / env
do_status() {
  local c p up=0
  if user_kubeconfig && answers "$KUBECONFIG"; then echo "using the user's cluster: KUBECONFIG=$KUBECONFIG"; fi
  echo "binaries: $(cache_ok && echo "$BIN" || echo "not built ($0 build)")"
  for c in $COMPONENTS; do
    if p=$(pid_of "$c"); then up=$((up + 1))
      printf '  %-19s running  pid %-7s rss %s MB\n' "$c" "$p" $(( $(awk '/^VmRSS/ {print $2}' "/proc/$p/status") / 1024 ))
    else printf '  %-19s stopped\n' "$c"; fi
  done
  if [ $up -gt 0 ] && [ -f "$OUR_KUBECONFIG" ]; then
    echo "  /readyz: $(kctl get --raw /readyz 2>/dev/null || echo 'no answer')"
    kctl get nodes 2>/dev/null | sed 's/^/  /' || true
    echo "  pod containers: $(docker ps -q --filter name='^/k8s_' 2>/dev/null | wc -l)"
    echo "KUBECONFIG=$OUR_KUBECONFIG"
  fi
  [ "$up" -eq "$(echo "$COMPONENTS" | wc -w)" ] || return 3   # LSB: 3 = not (fully) running
}
do_env() {
  if user_kubeconfig && answers "$KUBECONFIG"; then printf 'export KUBECONFIG=%q\n' "$KUBECONFIG"
  else printf 'export KUBECONFIG=%q\n' "$OUR_KUBECONFIG"; fi
}

case "${1:-}" in
  build) do_build ;;
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  env) do_env ;;
  # kubectl of the same version as the cluster (a much newer kubectl may be on PATH)
  kubectl) shift; eval "$(do_env)"; exec "$BIN/kubectl" "$@" ;;
  *) echo "usage: $0 build|start|stop|status|env|kubectl ARGS..." >&2; exit 2 ;;
esac
