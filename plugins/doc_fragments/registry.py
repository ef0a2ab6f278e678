# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  registry_scheme:
    description:
      - How to reach registries. V(auto) uses plain HTTP for loopback registries (as Docker does) and HTTPS otherwise.
    type: str
    default: auto
    choices: [auto, https, http]
  validate_certs:
    description: Verify the TLS certificates of registries.
    type: bool
    default: true
  moving_tags:
    description:
      - Tags that move and so are never built, promoted or deployed. Names or glob patterns.
    type: list
    elements: str
    default: [latest, stable, edge, nightly, main, master, dev, develop, staging, production, prod, canary, current, head]
"""
    CREDENTIALS = r"""
options:
  registry_username:
    description: User name for the registry. Basic and token (Bearer) authentication are supported.
    type: str
  registry_password:
    description: Password or token for the registry. Never logged.
    type: str
"""
