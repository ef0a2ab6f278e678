# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release model every target shares: names, slots, and spec hashing.

A release is one immutable unit: an app, a release id, a slot and a normalized spec
(each target says what is in it: docker/spec.py, k8s/spec.py). The spec is hashed
into a label or annotation so a later run can tell "the same release again" (no-op)
from "other content under an existing release id" (an error), and a per-field hash
map names what differs without storing any value, secret or not.
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Dict, List, Optional, Sequence

from ansible_collections.immutable.deploy.plugins.module_utils.errors import invalid_option

# Router slots a release can occupy; the third lets a deploy start beside both the live and
# the warm release, so a failed deploy never costs the way back.
SLOTS = ("blue", "green", "amber")
SPEC_SCHEME = "v1"

# DNS-label-like so the name is usable as a container name, hostname and router backend.
_APP_RE = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$")
# Version-like and valid inside a Docker container name ('+' is not), no leading separator.
_RELEASE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def validate_app(app: Any) -> str:
    if not isinstance(app, str) or not _APP_RE.match(app) or "--" in app:
        raise invalid_option("app", app, "2 to 40 characters: lowercase letters, digits and single '-', "
                                         "starting with a letter and not ending with '-'")
    return app


def validate_release(release: Any) -> str:
    if not isinstance(release, str) or not _RELEASE_RE.match(release):
        raise invalid_option("release", release, "1 to 63 characters: letters, digits, '.', '_', '-', "
                                                 "starting with a letter or digit, for example '1.4.2'")
    return release


def validate_slot(slot: Any) -> str:
    if not isinstance(slot, str) or slot not in SLOTS:
        raise invalid_option("slot", slot, "%s or %s" % (", ".join(SLOTS[:-1]), SLOTS[-1]))
    return slot


def str_map(option: str, value: Optional[Dict[str, Any]], key_re: Optional["re.Pattern[str]"] = None,
            accepted_keys: str = "") -> Dict[str, str]:
    """A map of options as strings; YAML booleans become 'true'/'false', what a program reads."""
    out = {}
    for key, val in (value or {}).items():
        if not isinstance(key, str) or not key or (key_re is not None and not key_re.match(key)):
            raise invalid_option(option, key, accepted_keys or "non-empty string keys")
        if isinstance(val, (dict, list)) or val is None:
            raise invalid_option("%s.%s" % (option, key), "<%s>" % type(val).__name__ if val is not None else None,
                                 "a string, number or boolean")
        out[key] = str(val).lower() if isinstance(val, bool) else str(val)
    return out


def content_hash(value: Any) -> str:
    """sha256 of the canonical JSON of a value."""
    return "sha256:" + hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def spec_hash(spec: Dict[str, Any]) -> str:
    return content_hash([SPEC_SCHEME, spec])


def spec_fields(spec: Dict[str, Any], fields: Sequence[str]) -> str:
    """Label value: field -> short hash, enough to name what differs, revealing no value."""
    return json.dumps({k: content_hash(spec.get(k))[7:19] for k in fields}, sort_keys=True, separators=(",", ":"))


def differing_fields(existing_fields_label: Optional[str], spec: Dict[str, Any],
                     fields: Sequence[str]) -> List[str]:
    try:
        existing = json.loads(existing_fields_label or "")
    except ValueError:
        existing = {}
    if not isinstance(existing, dict) or not existing:
        return list(fields)  # unknown scheme: everything is suspect
    wanted = json.loads(spec_fields(spec, fields))
    return [k for k in fields if existing.get(k) != wanted[k]]
