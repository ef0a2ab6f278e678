#!/usr/bin/env bash
# Proves the local cluster end to end: start, a 2-replica Deployment of a FROM-scratch busybox
# image becomes Available, its Service's Endpoints list 2 ready addresses (read through the API:
# pod/ClusterIP addresses are never connected to, only 127.0.0.1 is), logs/exec work, delete, stop.
# Prints timings. Leaves the cluster as it found it (stops it only if it started it).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
C=$HERE/cluster.sh
IMAGE=immutable-deploy/busybox:test
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}'; }
say() { printf '[smoke] %s\n' "$*"; }

was_running=0; "$C" status >/dev/null 2>&1 && was_running=1
t=$(now); "$C" start; say "start: $(since "$t")s"
eval "$("$C" env)"
k() { "$C" kubectl "$@"; }

# app image: Debian's busybox-static in an empty image, so nothing is pulled
if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  # a static busybox (ldd fails on it): the image has no libc
  if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then
    apt-get install -y -q --no-install-recommends busybox-static >/dev/null
  fi
  d=$(mktemp -d); cp /bin/busybox "$d/"
  printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nCMD ["/bin/sh"]\n' >"$d/Dockerfile"
  docker build -q -t "$IMAGE" "$d" >"$d/log" 2>&1 || { cat "$d/log"; exit 1; }; rm -rf "$d"
fi

t=$(now)
k apply -f - <"$HERE/smoke-objects.yaml.tmpl" >/dev/null
k rollout status deploy/smoke --timeout=120s >/dev/null
k wait --for=condition=Available deploy/smoke --timeout=60s >/dev/null
say "deployment Available: $(since "$t")s after apply"
# Endpoints: ready addresses as the API reports them (the endpoints controller may lag a moment)
for _ in $(seq 40); do
  ready=$(k get endpoints smoke -o jsonpath='{range .subsets[*].addresses[*]}{.ip}{" "}{end}')
  notready=$(k get endpoints smoke -o jsonpath='{range .subsets[*].notReadyAddresses[*]}{.ip}{" "}{end}')
  [ "$(echo "$ready" | wc -w)" = 2 ] && [ -z "$notready" ] && break
  sleep 0.25
done
[ "$(echo "$ready" | wc -w)" = 2 ] || { say "FAIL: endpoints ready='$ready' notReady='$notready'"; exit 1; }
say "service endpoints ready: $ready"
pod=$(k get pods -l app=smoke -o jsonpath='{.items[0].metadata.name}')
[ "$(k exec "$pod" -- echo exec-ok)" = exec-ok ] || { say "FAIL: exec"; exit 1; }
k logs "$pod" | grep -q started || { say "FAIL: logs"; exit 1; }
say "exec and logs ok (apiserver -> kubelet on 127.0.0.1)"

rss=0
for p in "${IMMUTABLE_DEPLOY_STATE:-/var/tmp/immutable-deploy}"/k8s/run/*.pid; do
  [ -f "$p" ] && rss=$((rss + $(awk '/^VmRSS/ {print $2}' "/proc/$(cat "$p")/status" 2>/dev/null || echo 0)))
done
say "RSS of etcd+control plane+kubelet: $((rss / 1024)) MB"

t=$(now)
k delete -f - --wait=true <"$HERE/smoke-objects.yaml.tmpl" >/dev/null
k wait --for=delete pod -l app=smoke --timeout=60s >/dev/null 2>&1 || true
say "delete: $(since "$t")s"
if [ $was_running = 0 ]; then t=$(now); "$C" stop; say "stop: $(since "$t")s"; fi
say PASS
