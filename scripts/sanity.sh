#!/usr/bin/env bash
# Run `ansible-test sanity` on a copy of the collection laid out the way
# ansible-test requires: <build>/ansible_collections/<namespace>/<name>.
#
# Usage: scripts/sanity.sh [SOURCE_DIR] [extra ansible-test sanity args...]
#   SOURCE_DIR defaults to the repo root; e.g. scripts/sanity.sh . --test pep8
# Env:  SANITY_PYTHON (default 3.11), SANITY_BUILD (default <repo>/.build)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT"
if [[ $# -gt 0 && $1 != -* ]]; then SRC="$(cd "$1" && pwd)"; shift; fi
PYVER="${SANITY_PYTHON:-3.11}"
BUILD="${SANITY_BUILD:-$ROOT/.build}"

VENV="$("$ROOT/scripts/venv.sh")"
"$ROOT/scripts/ansible_test_offline.sh" "$VENV/bin/python" >/dev/null

# namespace/name from galaxy.yml (ansible-test derives them from the path).
read -r NS NAME < <("$VENV/bin/python" - "$SRC/galaxy.yml" <<'EOF'
import sys, yaml
try:
    with open(sys.argv[1]) as f:
        g = yaml.safe_load(f) or {}
except FileNotFoundError:
    g = {}
print(g.get('namespace') or 'immutable', g.get('name') or 'deploy')
EOF
)
DEST="$BUILD/ansible_collections/$NS/$NAME"
mkdir -p "$DEST"

# File list: what git would commit (tracked + untracked-but-not-ignored), or
# every file when SOURCE_DIR is not a git work tree. Never .git/.venv/.build.
list="$(mktemp)"; trap 'rm -f "$list" "$list.dest"' EXIT
if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git -C "$SRC" ls-files -z --cached --others --exclude-standard
else
  (cd "$SRC" && find . \( -name .git -o -name .venv -o -name .build -o -name __pycache__ \
      -o -path ./tests/output \) -prune -o \( -type f -o -type l \) -printf '%P\0')
fi | grep -zvE '^(\.git|\.venv|\.build)(/|$)' | sort -zu >"$list"

# --ignore-missing-args: files deleted in the work tree but still in the index.
rsync -a --from0 --files-from="$list" --ignore-missing-args "$SRC/" "$DEST/"

# rsync --delete does not apply with --files-from: prune what is no longer listed
# (keeping the copy's .git and ansible-test's tests/output).
(cd "$DEST" && find . \( -path ./.git -o -path ./tests/output \) -prune -o \
    \( -type f -o -type l \) -printf '%P\0' | sort -z) >"$list.dest"
comm -z -23 "$list.dest" "$list" | (cd "$DEST" && xargs -0r rm -f --)
find "$DEST" -mindepth 1 -depth -type d -empty -not -path "$DEST/.git*" -delete

# The copy lies under the repo's ignored .build/, so ansible-test's walk-up would
# find the outer repo's git and list no files at all. A git repo of its own at
# the collection root (no commit needed: ansible-test uses `git ls-files
# --cached --others --exclude-standard`) makes it list exactly the copied files.
if [[ ! -d $DEST/.git ]]; then
  git -C "$DEST" init -q
fi
grep -qxF '/tests/output/' "$DEST/.git/info/exclude" 2>/dev/null \
  || echo '/tests/output/' >>"$DEST/.git/info/exclude"

cd "$DEST"
# --venv: per-test virtualenvs from PyPI (no container images to pull);
# --python: only the controller's Python, others are not installed here.
exec "$VENV/bin/ansible-test" sanity --venv --python "$PYVER" --color no "$@"
