#!/usr/bin/env bash
# mypy over plugins/module_utils (strict; tests/mypy.ini). It runs from .build/collections,
# where `make link` puts the collection under its import name, so the collection's own
# imports (ansible_collections.immutable.deploy...) resolve to this checkout.
#
# Usage: scripts/typecheck.sh [extra mypy args...]   (make typecheck links first)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$("$ROOT/scripts/venv.sh")"
cd "$ROOT/.build/collections"
if [[ ! -d ansible_collections/immutable/deploy/plugins ]]; then
  echo "scripts/typecheck.sh: .build/collections has no immutable.deploy: run 'make link' first" >&2
  exit 1
fi
exec "$VENV/bin/mypy" --config-file "$ROOT/tests/mypy.ini" "$@" ansible_collections/immutable/deploy/plugins/module_utils
