"""Make the checkout importable as ansible_collections.immutable.deploy.

A symlink tree under .build/collections mirrors an installed collection, so
pytest, ansible-playbook and ansible-doc all see the working tree itself.
"""
from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")


def _link_collection() -> None:
    link = os.path.join(COLLECTIONS, "ansible_collections", "immutable", "deploy")
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        try:
            os.symlink(ROOT, link)
        except FileExistsError:  # a parallel worker made it first
            pass


_link_collection()
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", COLLECTIONS)
