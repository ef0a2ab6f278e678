# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host ports of releases: chosen once, when a container is created, and kept for its life.

Docker re-picks an ephemeral host port (``127.0.0.1::8080``) every time a container
starts, also when the engine restarts or the host reboots, while the router keeps the
old numbers and then sends traffic to whichever container got them. A port written into
the container's HostConfig is the container's until it is removed, so the router's
addresses stay true across restarts without any Ansible run.
"""
from __future__ import annotations

import errno
import random
import socket
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple

from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError, invalid_option

# Below the kernel's ephemeral range (32768+), which Docker and outgoing connections use.
DEFAULT_RANGE = "27000-29999"


def parse_range(value: Optional[str], option: str = "host_port_range") -> Tuple[int, int]:
    text = str(value or DEFAULT_RANGE).strip()
    low, sep, high = text.partition("-")
    try:
        bounds = (int(low), int(high if sep else low))
    except ValueError:
        bounds = (0, -1)
    if not 1024 <= bounds[0] <= bounds[1] <= 65535:
        raise invalid_option(option, value, "'<low>-<high>' with 1024 <= low <= high <= 65535, e.g. %r"
                             % DEFAULT_RANGE)
    return bounds


def bound_ports(container: Dict[str, Any]) -> List[int]:
    """Host ports a container holds: configured fixed ports, and live ones while it runs."""
    found: List[int] = []
    for source in (((container.get("HostConfig") or {}).get("PortBindings") or {}),
                   ((container.get("NetworkSettings") or {}).get("Ports") or {})):
        for bindings in source.values():
            found.extend(int(b["HostPort"]) for b in bindings or [] if b.get("HostPort"))
    return found


def is_fixed(container: Dict[str, Any]) -> bool:
    """True when every published port has a configured host port (survives restarts)."""
    bindings = (container.get("HostConfig") or {}).get("PortBindings") or {}
    return all(b.get("HostPort") for values in bindings.values() for b in values or [])


def port_in_use(address: str, port: int) -> bool:
    """True when something on this host listens on address:port (or we may not bind it)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # SO_REUSEADDR: a port in TIME_WAIT is free for a listener; only a live bind counts.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        return False
    except OSError as exc:
        return exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL)
    finally:
        sock.close()


def choose(count: int, bounds: Tuple[int, int], taken: Iterable[int],
           is_free: Callable[[int], bool] = lambda port: True,
           rng: Optional[random.Random] = None) -> List[int]:
    """`count` distinct ports in bounds, none taken and each free by `is_free`.

    The scan starts at a random point so that two concurrent deploys rarely pick the
    same port; the engine refuses the second one and the caller picks again.
    """
    low, high = bounds
    span = high - low + 1
    skip: Set[int] = set(taken)
    start = (rng or random).randrange(span)
    chosen: List[int] = []
    for i in range(span):
        port = low + (start + i) % span
        if port in skip or not is_free(port):
            continue
        chosen.append(port)
        if len(chosen) == count:
            return chosen
    raise DeployError("Option 'host_port_range': only %d of the %d free host ports needed are left in %d-%d "
                      "(taken by containers or other processes). Widen host_port_range or set published_ports."
                      % (len(chosen), count, low, high), option="host_port_range")
