# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the collection names and labels what it puts in a cluster.

Truth lives in the cluster: a release is a Deployment labelled with app, release and
slot; its digest, spec hash and creation time are annotations. Nothing is kept on the
controller.
"""
from __future__ import annotations

import json
import re
from typing import Any, Dict, Optional

# Label keys must be DNS-prefixed names with a single '/': ours differ from the Docker labels.
PREFIX = "immutable-deploy.io/"
LABEL_APP = PREFIX + "app"
LABEL_RELEASE = PREFIX + "release"
LABEL_SLOT = PREFIX + "slot"
LABEL_MANAGED = "app.kubernetes.io/managed-by"
LABEL_NAME = "app.kubernetes.io/name"
MANAGED_BY = "immutable.deploy"
ANN_DIGEST = PREFIX + "digest"
ANN_IMAGE = PREFIX + "image"
ANN_CREATED = PREFIX + "created"
ANN_SPEC = PREFIX + "spec"
ANN_SPEC_FIELDS = PREFIX + "spec-fields"
ANN_REPLICAS = PREFIX + "replicas"  # the release's full size, kept while a canary scales it
ANN_CANARY = PREFIX + "canary"  # a canary's progress (JSON), on the canary's Deployment (canary.py)
ANN_SCALE_DOWN_AT = PREFIX + "scale-down-at"  # end of a warm window after a promote (warm.py)


def object_name(app: str, release: str) -> str:
    """DNS-1123 name of a release's objects: '1.4.2_rc' -> 'web-1-4-2-rc'.

    Two release ids may map to one name ('1.4.2' and '1-4-2'); the release label
    on the object tells them apart and k8s_release refuses the second one.
    """
    return "%s-%s" % (app, re.sub(r"[^a-z0-9-]", "-", release.lower()).strip("-"))


def selector_for(app: str, release: Optional[str] = None) -> Dict[str, str]:
    sel = {LABEL_APP: app}
    if release is not None:
        sel[LABEL_RELEASE] = release
    return sel


def label_selector(labels: Dict[str, str]) -> str:
    return ",".join("%s=%s" % kv for kv in sorted(labels.items()))


def as_int(value: object, default: int = 0) -> int:
    """A count read from an object (replicas, an annotation); default when absent or not a number."""
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return default


def canary_record(raw: Optional[str]) -> Optional[Dict[str, Any]]:
    """The JSON record of ANN_CANARY; None when absent, state 'unreadable' when it is not JSON."""
    if not raw:
        return None
    try:
        rec = json.loads(raw)
    except ValueError:
        rec = None
    return rec if isinstance(rec, dict) else {"state": "unreadable", "raw": str(raw)[:200]}
