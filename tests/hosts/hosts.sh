#!/usr/bin/env bash
# Test hosts: systemd-nspawn machines booted from a versioned, cached Debian 12 image.
#
# Image: a root tree made by mmdebstrap from Debian packages only (systemd, sshd, sudo,
# python3, haproxy, nginx, busybox), customised by image-hook.sh. Its version is a hash of
# the package list, the suite and the hook, and it is cached under
# ${IMMUTABLE_DEPLOY_CACHE:-~/.cache/immutable-deploy}/hosts-<suite>-<version>: a changed
# hook or package list is a new image, never an edit of a cached one.
#
# Machine: the image tree is the read-only lower layer of an overlay; the machine's writes go
# to its own upper directory, which survives the machine's reboots (like a VM disk made from
# an image) and is deleted with the machine. Each machine has a persistent network namespace
# (/run/netns/<name>) with only "lo"; fwd.py publishes chosen ports on 127.0.0.1 of this
# machine. The namespace and the forwarder outlive reboots, so the ports never change.
# A reboot inside (systemctl reboot) makes systemd-nspawn exit 133: the supervisor boots it again.
#
#   hosts.sh deps                  install systemd-container and mmdebstrap (root; upgrades systemd)
#   hosts.sh build                 build the image unless cached; prints its directory
#   hosts.sh start N               machines $HOSTS_PREFIX-1..N (default prefix "idh"), each
#                                  publishing $HOSTS_PORTS (default "22 80 8080 8081")
#   hosts.sh wait NAME [SECONDS]   until NAME answers SSH
#   hosts.sh ssh NAME CMD...       as user deploy (sudo without password)
#   hosts.sh port NAME PORT        the 127.0.0.1 port publishing PORT of NAME
#   hosts.sh inventory             Ansible inventory (ini, group test_hosts) of the $HOSTS_PREFIX machines
#   hosts.sh halt NAME | boot NAME power off keeping its disk | boot it again
#   hosts.sh reboot NAME           halt + boot (a cold reboot from outside)
#   hosts.sh stop [NAME...]        power off and delete machines (default: all of $HOSTS_PREFIX)
#   hosts.sh stop-all              power off and delete every machine (any prefix)
#   hosts.sh status                machines, state, boots, ports
# State: ${IMMUTABLE_DEPLOY_STATE:-/var/tmp/immutable-deploy}/hosts (machines/<name>, SSH key).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SUITE=bookworm
PACKAGES=systemd-sysv,libnss-myhostname,openssh-server,sudo,python3,haproxy,nginx,iproute2,busybox-static,socat,procps
CACHE_ROOT=${IMMUTABLE_DEPLOY_CACHE:-$HOME/.cache/immutable-deploy}
IMAGE_VERSION=$( { echo "$SUITE $PACKAGES"; cat "$HERE/image-hook.sh"; } | sha256sum | cut -c1-10)
IMAGE=$CACHE_ROOT/hosts-$SUITE-$IMAGE_VERSION
STATE=${IMMUTABLE_DEPLOY_STATE:-/var/tmp/immutable-deploy}/hosts
MACHINES=$STATE/machines
KEY=$STATE/id_ed25519
PREFIX=${HOSTS_PREFIX:-idh}
PORTS=${HOSTS_PORTS:-22 80 8080 8081}
SSH_OPTS=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes
          -o LogLevel=ERROR -o ConnectTimeout=5 -o BatchMode=yes)

log() { printf '[hosts] %s\n' "$*" >&2; }
die() { printf '[hosts] ERROR: %s\n' "$*" >&2; exit 1; }
alive() { local st; st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [ "$st" != Z ]; }

# Install missing Debian packages (a fresh machine has neither tool).
need_cmds() {  # need_cmds cmd:package ...
  local miss=() c
  for c in "$@"; do command -v "${c%%:*}" >/dev/null 2>&1 || miss+=("${c#*:}"); done
  [ ${#miss[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "missing packages: ${miss[*]} (install them, or run as root)"
  log "installing ${miss[*]} (this also upgrades the machine's systemd packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${miss[@]}" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${miss[@]}" >/dev/null; }
}

cmd_deps() {
  need_cmds systemd-nspawn:systemd-container mmdebstrap:mmdebstrap ssh:openssh-client ip:iproute2
  [ -x /usr/bin/python3 ] || need_cmds no-such-cmd:python3   # fwd.py runs with the machine's own Python
}

image_ok() { [ -f "$IMAGE/manifest" ] && [ -x "$IMAGE/rootfs/lib/systemd/systemd" ]; }

cmd_build() {
  cmd_deps
  mkdir -p "$CACHE_ROOT"
  exec 9>"$CACHE_ROOT/.hosts-build.lock"; flock 9   # one build at a time
  if image_ok; then echo "$IMAGE"; return 0; fi
  local t0=$SECONDS tmp sources
  tmp=$(mktemp -d "$CACHE_ROOT/.hosts-build.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT
  # The machine's own apt sources (with security updates), else Debian's mirror.
  sources=/etc/apt/sources.list.d/debian.sources
  [ -f "$sources" ] || sources=http://deb.debian.org/debian
  log "building image $IMAGE_VERSION ($SUITE: $PACKAGES)"
  SOURCE_DATE_EPOCH=1700000000 mmdebstrap --quiet --variant=apt --components=main \
    --aptopt='APT::Install-Recommends "false"' --include="$PACKAGES" \
    --customize-hook="sh '$HERE/image-hook.sh' \"\$1\"" \
    "$SUITE" "$tmp/rootfs" "$sources" >"$tmp/build.log" 2>&1 \
    || { tail -20 "$tmp/build.log" >&2; die "mmdebstrap failed"; }
  { printf 'version=%s\nsuite=%s\npackages=%s\nbuilt=%s\nbuild_seconds=%s\n' "$IMAGE_VERSION" "$SUITE" \
      "$PACKAGES" "$(date -u +%FT%TZ)" "$((SECONDS - t0))"
    # shellcheck disable=SC2016  # dpkg-query's own format, not shell expansions
    chroot "$tmp/rootfs" dpkg-query -W -f '${Package}=${Version}\n'; } >"$tmp/manifest"
  rm -f "$tmp/build.log"
  rm -rf "$IMAGE"; mv "$tmp" "$IMAGE"; chmod 0755 "$IMAGE"
  trap - EXIT
  log "built $IMAGE in $((SECONDS - t0)) s"
  local old
  for old in "$CACHE_ROOT"/hosts-*; do   # older versions, unless a machine still runs on one
    if [ ! -d "$old" ] || [ "$old" = "$IMAGE" ]; then continue; fi
    cat "$MACHINES"/*/image 2>/dev/null | grep -qxF "$old" && continue
    rm -rf "$old" && log "removed the older image $(basename "$old")"
  done
  echo "$IMAGE"
}

mdir() { echo "$MACHINES/${1:?NAME}"; }
netns() { echo "idh-$(basename "$(mdir "$1")")"; }

mount_root() {  # the image read-only below, the machine's own disk above
  local d; d=$(mdir "$1")
  mountpoint -q "$d/root" && return 0
  mount -t overlay overlay -o "lowerdir=$(cat "$d/image")/rootfs,upperdir=$d/upper,workdir=$d/work" "$d/root"
}

# Runs detached for the machine's lifetime: boots it again after a reboot from inside.
cmd_supervise() {
  local name=$1 d rc; d=$(mdir "$name")
  while :; do
    date +%s.%N >>"$d/boots"
    systemd-nspawn --quiet --register=no --keep-unit --boot --console=passive \
      --network-namespace-path="/run/netns/$(netns "$name")" --machine="$name" -D "$d/root" \
      --bind-ro="$KEY.pub:/etc/ssh/authorized_keys/deploy" --timezone=off --resolv-conf=off \
      >>"$d/console.log" 2>&1 </dev/null &
    echo $! >"$d/nspawn.pid"
    rc=0; wait $! || rc=$?
    echo "exit $rc $(date +%s.%N)" >>"$d/console.log"
    if [ "$rc" != 133 ] || [ -e "$d/halt" ]; then break; fi   # 133: the machine asked for a reboot
  done
  rm -f "$d/nspawn.pid"
}

boot() {
  local name=$1 d; d=$(mdir "$name")
  [ -e "$d/supervisor.pid" ] && alive "$(cat "$d/supervisor.pid")" && return 0
  rm -f "$d/halt"
  mount_root "$name"
  setsid "$HERE/hosts.sh" _supervise "$name" </dev/null >/dev/null 2>&1 &
  echo $! >"$d/supervisor.pid"
}

start_one() {
  local name=$1 d ns p pairs=() i
  [[ $name =~ ^[a-z0-9][a-z0-9-]{0,30}$ ]] || die "bad name $name (a-z, 0-9, '-'; no dots: Ansible cuts host names there)"
  d=$(mdir "$name"); ns=$(netns "$name")
  [ -e "$d" ] && die "machine $name exists (hosts.sh stop $name first)"
  mkdir -p "$d/upper" "$d/work" "$d/root"
  echo "$IMAGE" >"$d/image"
  ip netns add "$ns" && ip -n "$ns" link set lo up
  for p in $PORTS; do pairs+=("0:$p"); done
  setsid /usr/bin/python3 "$HERE/fwd.py" "/run/netns/$ns" "$d/ports" "${pairs[@]}" \
    </dev/null >"$d/fwd.log" 2>&1 &
  echo $! >"$d/fwd.pid"
  for i in $(seq 100); do
    grep -qx ready "$d/ports" 2>/dev/null && break
    alive "$(cat "$d/fwd.pid")" || { cat "$d/fwd.log" >&2; die "$name: port forwarder failed"; }
    sleep 0.05
  done
  boot "$name"
  log "started $name: ssh 127.0.0.1:$(cmd_port "$name" 22)"
}

cmd_start() {
  local n=${1:?N} i
  [ "$(id -u)" = 0 ] || die "machines need root (systemd-nspawn, mounts, network namespaces)"
  image_ok || cmd_build >/dev/null
  mkdir -p "$MACHINES"
  [ -f "$KEY" ] || ssh-keygen -q -t ed25519 -N '' -C immutable-deploy-test-hosts -f "$KEY"
  for ((i = 1; i <= n; i++)); do start_one "$PREFIX-$i"; done
  for ((i = 1; i <= n; i++)); do cmd_wait "$PREFIX-$i"; done
}

cmd_port() {
  local d; d=$(mdir "$1")
  awk -v p="${2:?PORT}" '$1 == p {print $2; f=1} END {exit !f}' "$d/ports" || die "$1 does not publish port $2"
}

cmd_ssh() {
  local name=${1:?NAME}; shift
  ssh -i "$KEY" -p "$(cmd_port "$name" 22)" "${SSH_OPTS[@]}" deploy@127.0.0.1 "$@"
}

cmd_wait() {
  local name=${1:?NAME} t=${2:-60} end
  end=$((SECONDS + t))
  until cmd_ssh "$name" true 2>/dev/null; do
    [ $SECONDS -lt $end ] || die "$name: no SSH within ${t}s (see $(mdir "$name")/console.log)"
    sleep 0.2
  done
}

cmd_inventory() {
  local d name
  echo "[test_hosts]"
  for d in "$MACHINES/$PREFIX"-*/; do
    [ -f "$d/ports" ] || continue
    name=$(basename "$d")
    echo "$name ansible_host=127.0.0.1 ansible_port=$(cmd_port "$name" 22) ansible_user=deploy" \
         "ansible_ssh_private_key_file=$KEY ansible_python_interpreter=/usr/bin/python3" \
         "ansible_ssh_common_args='${SSH_OPTS[*]:0:6}'"
  done
}

cmd_halt() {
  local name=${1:?NAME} d pid i; d=$(mdir "$name")
  [ -d "$d" ] || return 0
  touch "$d/halt"
  pid=$(cat "$d/nspawn.pid" 2>/dev/null || true)
  # SIGTERM: systemd-nspawn asks the machine's systemd to power off cleanly
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; fi
  for i in $(seq 300); do
    alive "$(cat "$d/supervisor.pid" 2>/dev/null || echo 0)" || break
    if [ "$i" = 200 ]; then   # no clean power-off within 20 s: pull the plug
      pid=$(cat "$d/nspawn.pid" 2>/dev/null || true)
      if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    sleep 0.1
  done
  rm -f "$d/supervisor.pid"
  if mountpoint -q "$d/root"; then umount "$d/root" 2>/dev/null || umount -l "$d/root"; fi
}

cmd_boot() { local d; d=$(mdir "${1:?NAME}"); [ -d "$d" ] || die "no machine $1"; boot "$1"; }

cmd_reboot() { cmd_halt "${1:?NAME}"; cmd_boot "$1"; }

destroy() {
  local name=$1 d pid; d=$(mdir "$name")
  [ -d "$d" ] || return 0
  cmd_halt "$name"
  pid=$(cat "$d/fwd.pid" 2>/dev/null || true)
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  ip netns del "$(netns "$name")" 2>/dev/null || true
  rm -rf "$d"
  log "stopped and deleted $name"
}

cmd_stop() {
  local names=("$@") d
  if [ ${#names[@]} -eq 0 ]; then
    for d in "$MACHINES/$PREFIX"-*/; do [ -d "$d" ] && names+=("$(basename "$d")"); done
  fi
  for d in "${names[@]}"; do destroy "$d" & done   # a clean power-off takes ~1-2 s each
  wait
}

cmd_stop_all() {   # every machine of every prefix (e.g. left by a test run that was killed)
  local d names=()
  for d in "$MACHINES"/*/; do [ -d "$d" ] && names+=("$(basename "$d")"); done
  [ ${#names[@]} -eq 0 ] || cmd_stop "${names[@]}"
}

cmd_status() {
  local d name state
  for d in "$MACHINES"/*/; do
    [ -d "$d" ] || continue
    name=$(basename "$d"); state=halted
    alive "$(cat "$d/nspawn.pid" 2>/dev/null || echo 0)" && state=running
    printf '%-16s %-8s boots=%s image=%s ports=%s\n' "$name" "$state" "$(wc -l <"$d/boots" 2>/dev/null || echo 0)" \
      "$(basename "$(cat "$d/image")")" "$(grep -v ready "$d/ports" 2>/dev/null | awk '{printf "%s->%s ", $2, $1}')"
  done
}

c=${1:-}; shift || true
case $c in
  deps | build | start | wait | ssh | port | inventory | halt | boot | reboot | stop | status | _supervise)
    "cmd_${c#_}" "$@" ;;
  stop-all) cmd_stop_all ;;
  *) awk 'NR > 1 && !/^#/ {exit} NR > 1' "$0"; exit 2 ;;
esac
