#!/usr/bin/env bash
# Create/refresh <repo>/.venv from requirements.txt and print its path.
# Idempotent: reinstalls only when requirements.txt's hash differs from the stamp.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
REQ="$ROOT/requirements.txt"
STAMP="$VENV/.requirements.sha256"
# Python 3.11 is the supported controller version (ansible-core 2.19 line).
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
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
  "$VENV/bin/python" -m pip install -q -r "$REQ" >&2
  # Write the stamp only after a successful install, so a failure retries next time.
  echo "$want" > "$STAMP"
fi

echo "$VENV"
