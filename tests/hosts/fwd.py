"""Publish ports of a test host on 127.0.0.1 of this machine.

fwd.py NETNS PORTS_FILE LISTEN:TARGET [LISTEN:TARGET ...]

Listening sockets are made on 127.0.0.1 in this machine's namespace (LISTEN 0: a free port
below the ephemeral range); then the process enters NETNS (a persistent /run/netns/<name>),
so every connect() goes to 127.0.0.1:TARGET inside the host. The namespace outlives the
host's reboots, so one forwarder serves every boot; while the host is down a connection is
accepted and closed at once. PORTS_FILE gets one "TARGET LISTEN" line per pair, then "ready".
Runs with the machine's /usr/bin/python3 (stdlib only).
"""
from __future__ import annotations

import ctypes
import os
import random
import selectors
import socket
import sys
import threading
from typing import List, Tuple

CLONE_NEWNET = 0x40000000


def pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        # half-close so the other direction can finish (HTTP/1.0 clients, SSH EOF)
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def handle(conn: socket.socket, port: int) -> None:
    try:
        upstream = socket.create_connection(("127.0.0.1", port), timeout=5)
        upstream.settimeout(None)
    except OSError:
        conn.close()
        return
    threads = [threading.Thread(target=pump, args=pair, daemon=True)
               for pair in ((conn, upstream), (upstream, conn))]
    for thread in threads:
        thread.start()

    def close() -> None:
        for thread in threads:
            thread.join()
        conn.close()
        upstream.close()
    threading.Thread(target=close, daemon=True).start()


def listener(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:PORT; PORT 0 draws a free one below the kernel's ephemeral
    range (as tests/integration/net.free_port does): Docker allocates published ports from that range."""
    low, high = 20000, 26999
    with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as handle:
        high = min(high, int(handle.read().split()[0]) - 1)
    candidates = [port] if port else [random.randint(low, high) for dummy in range(200)]
    for candidate in candidates:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", candidate))
        except OSError:
            sock.close()
            if port:
                raise
            continue
        sock.listen(128)
        return sock
    raise OSError("no free port in %d-%d on 127.0.0.1" % (low, high))


def main(argv: List[str]) -> None:
    netns, ports_file, pairs = argv[1], argv[2], argv[3:]
    sel = selectors.DefaultSelector()
    bound: List[Tuple[int, int]] = []
    for pair in pairs:
        listen, target = (int(x) for x in pair.split(":"))
        sock = listener(listen)
        sel.register(sock, selectors.EVENT_READ, target)
        bound.append((target, sock.getsockname()[1]))
    fd = os.open(netns, os.O_RDONLY)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns %s failed" % netns)
    os.close(fd)
    tmp = ports_file + ".tmp"
    with open(tmp, "w", encoding="ascii") as out:
        out.write("".join("%d %d\n" % item for item in bound) + "ready\n")
    os.replace(tmp, ports_file)
    while True:
        for key, _events in sel.select():
            try:
                conn, _addr = key.fileobj.accept()
            except OSError:
                continue
            handle(conn, key.data)


if __name__ == "__main__":
    main(sys.argv)
