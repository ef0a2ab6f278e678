# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  lock:
    description:
      - Hold the app's deploy lock (the one of M(immutable.deploy.deploy_lock)) for the duration of this change;
        it is taken before anything is read or written and released at the end of the same module run.
      - When another run holds it, the module fails at once and changes nothing.
      - A lock already held by the same O(lock.owner) is used as is and not released.
    type: dict
    suboptions:
      name:
        description: Lock name, usually the app name.
        type: str
        required: true
      owner:
        description: Token of this run.
        type: str
        required: true
      directory:
        description: Directory of the lock files on the target.
        type: path
        default: /var/lib/immutable-deploy/locks
      purpose:
        description: Recorded in the lock, shown to a run that finds it taken.
        type: str
        default: router change
      break_lock:
        description: Take the lock even when another owner holds it (a run that died).
        type: bool
        default: false
"""
