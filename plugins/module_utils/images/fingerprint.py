# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fingerprint of a build's inputs: context files, Dockerfile, build args, target.

Stored as an image label, it tells "the same version built from the same inputs"
(a no-op) from "a version re-used for other content" (an error), even after the
local image or the build cache was pruned.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from typing import Dict, List, Optional

FINGERPRINT_LABEL = "io.immutable-deploy.fingerprint"
FINGERPRINT_SCHEME = "v1"


def read_dockerignore(context: str) -> List[str]:
    path = os.path.join(context, ".dockerignore")
    if not os.path.isfile(path):
        return []
    patterns = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith("#"):
                patterns.append(os.path.normpath(line.lstrip("/")))
    return patterns


def _ignored(rel: str, patterns: List[str]) -> bool:
    """Docker's rule: the last matching pattern wins; '!' re-includes; a dir match covers its files."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        parts = rel.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if any(fnmatch.fnmatchcase(p, pat) or fnmatch.fnmatchcase(p, pat.replace("**/", "")) for p in prefixes):
            ignored = not negate
    return ignored


def context_files(context: str) -> List[str]:
    patterns = read_dockerignore(context)
    found = []
    for root, dirs, files in os.walk(context):
        dirs.sort()
        for name in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            rel = os.path.relpath(os.path.join(root, name), context).replace(os.sep, "/")
            if not _ignored(rel, patterns):
                found.append(rel)
    return sorted(found)


def fingerprint(context: str, dockerfile: str, build_args: Optional[Dict[str, str]] = None,
                target: Optional[str] = None, labels: Optional[Dict[str, str]] = None) -> str:
    """sha256 over every input that can change the image, in a stable order.

    Labels we add ourselves (created, version) are left out: they differ per build.
    """
    digest = hashlib.sha256()
    digest.update(FINGERPRINT_SCHEME.encode())
    for rel in context_files(context):
        path = os.path.join(context, rel)
        digest.update(b"\0F" + rel.encode())
        if os.path.islink(path):
            digest.update(b"\0L" + os.readlink(path).encode())
            continue
        digest.update(b"\0M%o" % (os.stat(path).st_mode & 0o7777))
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    with open(dockerfile, "rb") as handle:
        digest.update(b"\0D" + handle.read())
    spec = {"build_args": {k: str(v) for k, v in (build_args or {}).items()},
            "labels": {k: str(v) for k, v in (labels or {}).items()}, "target": target or ""}
    digest.update(b"\0A" + json.dumps(spec, sort_keys=True).encode())
    return "sha256:" + digest.hexdigest()
