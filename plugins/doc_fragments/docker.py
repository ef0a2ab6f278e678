# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - URL of the Docker engine API, for example C(unix:///var/run/docker.sock) or C(tcp://127.0.0.1:2375).
      - Defaults to the E(DOCKER_HOST) environment variable, then the local socket.
    type: str
    aliases: [docker_url]
  docker_timeout:
    description: Seconds to wait for a Docker API call.
    type: int
    default: 120
requirements:
  - docker (Python SDK) >= 7.1.0 (older releases fail with requests >= 2.32 and urllib3 2)
"""
