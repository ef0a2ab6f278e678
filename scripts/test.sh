#!/usr/bin/env bash
# make test: unit tests, mypy, sanity and integration tests on the real local stack and cluster.
# On a machine without the cached Kubernetes binaries their build (niced, ~13 CPU-minutes)
# runs in the background while the unit and sanity tests run.
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory stack link
mkdir -p .build
build_pid=
if [ -z "${KUBECONFIG:-}" ]; then
  tests/k8s/cluster.sh build >.build/k8s-build.log 2>&1 &
  build_pid=$!
fi
make --no-print-directory unit typecheck sanity
if [ -n "$build_pid" ] && ! wait "$build_pid"; then
  tail -30 .build/k8s-build.log >&2
  echo "Kubernetes build failed (log: .build/k8s-build.log)" >&2
  exit 1
fi
# The oldest supported ansible-core (2.16) with the runtime dependencies at their lower bounds:
# unit tests and one deploy story (about 35 s; 60 s when it first creates .venv-core216).
scripts/test_oldest.sh
make --no-print-directory integration
