#!/usr/bin/python
# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: nginx_upstream
short_description: Render an nginx upstream file, validate it with nginx -t and reload nginx gracefully
version_added: 0.1.0
description:
  - Renders C(upstream NAME { server ...; }) into O(path), a file that the nginx main configuration
    O(nginx_conf) includes. Servers are sorted by address and port, so the same set always gives the same bytes.
  - When the content is unchanged nothing is done. Otherwise the file is replaced atomically, the whole
    configuration is tested with C(nginx -t -c nginx_conf) and nginx is reloaded with C(SIGHUP) to the master
    whose pid is in O(pid_file). Old workers finish their in-flight requests, so a reload drops no request.
  - The reload is verified, the master must start new workers within O(reload_timeout) seconds.
  - When nginx rejects the configuration, at the test or at the reload, the previous file is restored (or the
    new one removed when there was none) and the module fails with nginx's own error output.
  - When nginx is not running the file is written and tested but nothing is reloaded (RV(reloaded=false),
    RV(running=false)); nginx reads it when it starts.
  - Check mode renders and compares only; it neither writes nor runs C(nginx -t).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - immutable.deploy.lock
attributes:
  action_group:
    description:
      - C(group/immutable.deploy.lock) in C(module_defaults) sets O(lock) for all modules of the group.
    support: full
    membership:
      - immutable.deploy.lock
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  name:
    description: Upstream name, as used in C(proxy_pass http://NAME).
    type: str
    required: true
  path:
    description: The upstream file to render. Its directory must exist.
    type: path
    required: true
  servers:
    description:
      - The servers of the upstream. At least one is required unless O(allow_empty=true), and at least one must
        not be a backup.
    type: list
    elements: dict
    required: true
    suboptions:
      address:
        description: IPv4 or IPv6 address, or DNS hostname (resolved by nginx when it loads the configuration).
        type: str
        required: true
      port:
        description: TCP port, 1 to 65535.
        type: int
        required: true
      weight:
        description: Round-robin weight, 1 to 1000.
        type: int
        default: 1
      backup:
        description: Receive traffic only when every non-backup server is unavailable.
        type: bool
        default: false
      down:
        description: Listed but receives no traffic.
        type: bool
        default: false
  allow_empty:
    description:
      - Accept an empty O(servers). The upstream then lists a single placeholder server marked C(down), so nginx
        accepts the configuration and answers every request with 502 at once (for example a preview upstream
        before the first preview release). Off by default, because an empty upstream fails every request.
    type: bool
    default: false
  nginx_conf:
    description: The main configuration that nginx runs with and that includes O(path); tested with C(nginx -t -c).
    type: path
    required: true
  nginx_binary:
    description: The nginx executable, a name looked up on E(PATH) and the sbin directories, or a full path.
    type: str
    default: nginx
  pid_file:
    description:
      - The pid file of the running nginx master. Defaults to the absolute path of the C(pid) directive of
        O(nginx_conf), else the default compiled into nginx.
    type: path
  validate:
    description: Test the configuration with C(nginx -t) after writing, and roll back when it fails.
    type: bool
    default: true
  reload:
    description: Reload a running nginx gracefully after a change, and verify that it took the new configuration.
    type: bool
    default: true
  reload_timeout:
    description: Seconds to wait for the new workers after the reload signal.
    type: float
    default: 10
notes:
  - The reload is verified through C(/proc), so it needs Linux on the target.
author:
  - immutable.deploy developers (@immutable-deploy)
"""

EXAMPLES = r"""
- name: Send the live traffic of shop to release 42 (two containers)
  immutable.deploy.nginx_upstream:
    name: shop
    path: /var/lib/immutable-deploy/router/nginx-shop/upstreams/shop.conf
    nginx_conf: /var/lib/immutable-deploy/router/nginx-shop/nginx.conf
    servers:
      - {address: 127.0.0.1, port: 32768}
      - {address: 127.0.0.1, port: 32769}
      - {address: 127.0.0.1, port: 32770, backup: true}

- name: No preview release yet
  immutable.deploy.nginx_upstream:
    name: shop_preview
    path: /var/lib/immutable-deploy/router/nginx-shop/upstreams/shop_preview.conf
    nginx_conf: /var/lib/immutable-deploy/router/nginx-shop/nginx.conf
    servers: []
    allow_empty: true
"""

RETURN = r"""
name: {description: Upstream name., returned: always, type: str}
path: {description: The upstream file., returned: always, type: str}
servers:
  description: The servers as rendered, normalised and sorted by address and port.
  returned: always
  type: list
  elements: dict
  sample: [{address: 127.0.0.1, port: 32768, weight: 1, backup: false, down: false}]
validated: {description: Whether C(nginx -t) ran and accepted the new file., returned: always, type: bool}
reloaded: {description: Whether nginx was reloaded and started new workers., returned: always, type: bool}
running: {description: Whether an nginx master was found through the pid file., returned: always, type: bool}
master_pid: {description: 'Pid of the nginx master, null when not running.', returned: always, type: int}
workers: {description: Pids of the workers started by the reload., returned: always, type: list, elements: int}
nginx_output: {description: Output of C(nginx -t) (also on failure)., returned: when validated or rejected, type: str}
rolled_back: {description: True when the file was restored after nginx rejected it., returned: failure, type: bool}
"""

from ansible_collections.immutable.deploy.plugins.module_utils.lock import LOCK_OPTION, guarded
from ansible_collections.immutable.deploy.plugins.module_utils.module_runner import run_module
from ansible_collections.immutable.deploy.plugins.module_utils.routers.nginx import apply


def main() -> None:
    argument_spec = dict(
        name=dict(type="str", required=True),
        path=dict(type="path", required=True),
        servers=dict(type="list", elements="dict", required=True, options=dict(
            address=dict(type="str", required=True),
            port=dict(type="int", required=True),
            weight=dict(type="int", default=1),
            backup=dict(type="bool", default=False),
            down=dict(type="bool", default=False),
        )),
        allow_empty=dict(type="bool", default=False),
        nginx_conf=dict(type="path", required=True),
        nginx_binary=dict(type="str", default="nginx"),
        pid_file=dict(type="path"),
        validate=dict(type="bool", default=True),
        reload=dict(type="bool", default=True),
        reload_timeout=dict(type="float", default=10),
        lock=LOCK_OPTION,
    )
    run_module(lambda m: guarded(m.params["lock"], m.check_mode,
                                 lambda: apply(m.params, m.check_mode, m._diff)),  # pylint: disable=protected-access
               argument_spec=argument_spec)


if __name__ == "__main__":
    main()
