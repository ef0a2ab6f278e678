#!/usr/bin/env bash
# Let `ansible-test ... --venv` bootstrap pip without internet beyond PyPI.
#
# ansible-test (2.19) seeds each new venv by running get-pip.py, downloaded from
# ci-files.testing.ansible.com (unreachable here) and cached as
#   ~/.ansible/test/cache/get_pip_<pip version with . -> _>.py   (e.g. get_pip_24_2.py)
# see ansible_test/_util/target/setup/requirements.py:bootstrap(). It runs that
# file in-process (runpy, quiet_pip.py) with argv:
#   --disable-pip-version-check pip==<version> --no-setuptools --no-wheel
# Our stand-in does the same job: `python -m ensurepip` (pip bundled with the
# interpreter), then `python -m pip install <args>` from PyPI.
#
# Usage: scripts/ansible_test_offline.sh [python-with-ansible-test]   (default: .venv)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${1:-$ROOT/.venv/bin/python}"
CACHE="$HOME/.ansible/test/cache"
MARKER="immutable.deploy offline get-pip stand-in"

AT_DIR="$("$PY" -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')"
REQ_PY="$AT_DIR/_internal/python_requirements.py"
# The pip version(s) ansible-test pins: `pip='24.2'` in get_venv_packages(),
# plus any per-Python overrides in the same function.
mapfile -t versions < <(grep -oE "pip='[0-9][0-9.]*'" "$REQ_PY" | grep -oE "[0-9][0-9.]*" | sort -u)
((${#versions[@]})) || { echo "no pip version found in $REQ_PY; ansible-test layout changed?" >&2; exit 1; }
# Fail loudly if the cache naming scheme we rely on changed.
grep -q "get_pip_%s.py" "$AT_DIR/_util/target/setup/requirements.py" \
  || { echo "ansible-test no longer uses get_pip_<ver>.py; update $0" >&2; exit 1; }

mkdir -p "$CACHE"
for v in "${versions[@]}"; do
  f="$CACHE/get_pip_${v//./_}.py"
  # Never replace a real get-pip.py that an online machine cached.
  if [[ -e $f ]] && ! grep -qF "$MARKER" "$f"; then
    echo "keeping real $f"
    continue
  fi
  tmp="$f.tmp.$$"
  cat >"$tmp" <<EOF
"""$MARKER (written by scripts/ansible_test_offline.sh).

Replaces get-pip.py $v: seed pip from the interpreter's bundled ensurepip,
then let pip install the requested packages (pip==$v) from the package index.
"""
import subprocess
import sys

# get-pip.py options that are not pip-install options.
OWN = {'--no-setuptools', '--no-wheel', '--no-pip'}
args = [a for a in sys.argv[1:] if a not in OWN]
subprocess.run([sys.executable, '-m', 'ensurepip', '--default-pip'],
               check=True, stdout=subprocess.DEVNULL)
sys.exit(subprocess.call([sys.executable, '-m', 'pip', 'install', *args]))
EOF
  # Rewrite only on change (idempotent; atomic via rename).
  if cmp -s "$tmp" "$f"; then rm -f "$tmp"; else mv "$tmp" "$f"; fi
  echo "$f"
done
