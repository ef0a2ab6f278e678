#!/usr/bin/env bash
# Create/refresh a venv from requirements files and print its path.
#
# Usage: scripts/venv.sh [VENV_DIR [REQUIREMENTS_FILE...]]
#   default: <repo>/.venv from tests/requirements.txt (development and test pins; the
#   collection's runtime dependencies, lower bounds only, are in the root requirements.txt).
#   scripts/test_oldest.sh: scripts/venv.sh .venv-core216 tests/requirements-oldest.txt
# Idempotent: reinstalls only when the hash over every requirements file it installs from
# differs from the stamp.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$ROOT/.venv}"
[[ $# -gt 0 ]] && shift
REQS=("$@")
[[ ${#REQS[@]} -gt 0 ]] || REQS=("$ROOT/tests/requirements.txt")
STAMP="$VENV/.requirements.sha256"
# Python 3.11 is the supported controller version (ansible-core 2.19 line).
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"

# One hash over the names and contents of all files, so adding, dropping or editing any
# of them triggers a reinstall.
want="$(for req in "${REQS[@]}"; do printf '%s\n' "$(basename "$req")"; cat "$req"; done \
  | sha256sum | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"

# A venv whose interpreter vanished (e.g. pyenv rebuilt) is useless: recreate it.
if [[ -d "$VENV" && ! -x "$VENV/bin/python" ]]; then
  rm -rf "$VENV"
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  "$PY" -m venv "$VENV" >&2
  have=""
fi

if [[ "$want" != "$have" ]]; then
  # Progress to stderr so stdout stays just the path (usable as $(scripts/venv.sh)).
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  args=()
  for req in "${REQS[@]}"; do args+=(-r "$req"); done
  "$VENV/bin/python" -m pip install -q "${args[@]}" >&2
  # Write the stamp only after a successful install, so a failure retries next time.
  echo "$want" > "$STAMP"
fi

echo "$VENV"
