#!/usr/bin/env bash
# The oldest supported stack: ansible-core 2.16 (the floor in galaxy.yml and meta/runtime.yml)
# with the runtime dependencies at their lower bounds (tests/requirements-oldest.txt), in its
# own venv .venv-core216. Runs the unit tests and one real deploy story through the shipped
# playbooks (tests/integration/test_deploy_story.py: build, blue-green to two releases,
# rollback); the conftest takes ansible-playbook and the module interpreter from the venv of
# the pytest that runs it. Needs the local stack (`make stack link`); `make test` runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
VENV="$(scripts/venv.sh "$PWD/.venv-core216" "$PWD/tests/requirements-oldest.txt")"
version="$("$VENV/bin/ansible" --version | head -1)"
case "$version" in
  *"core 2.16."*) ;;
  *) echo "expected ansible-core 2.16 in $VENV, got: $version" >&2; exit 1 ;;
esac
export ANSIBLE_COLLECTIONS_PATH="$PWD/.build/collections" ANSIBLE_PYTHON_INTERPRETER="$VENV/bin/python"
"$VENV/bin/pytest" -q -p no:cacheprovider tests/unit
"$VENV/bin/pytest" -q -p no:cacheprovider tests/integration/test_deploy_story.py
echo "oldest supported stack ($version): passed in $(( $(date +%s) - start )) s"
