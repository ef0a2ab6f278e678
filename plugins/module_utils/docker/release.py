# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Changing one release on a Docker host: N labelled containers from one digest-pinned image.

Every input is checked and the image resolved to a digest before the first container
exists; a release that does not get healthy is undone (removed, or stopped again), and
another spec under an existing release id is refused: a release is never modified.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Tuple, cast

from ansible_collections.immutable.deploy.plugins.module_utils import release as model
from ansible_collections.immutable.deploy.plugins.module_utils.docker import ports as host_ports
from ansible_collections.immutable.deploy.plugins.module_utils.docker import releases as reading
from ansible_collections.immutable.deploy.plugins.module_utils.docker import spec as dspec
from ansible_collections.immutable.deploy.plugins.module_utils.docker.engine import Engine
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError
from ansible_collections.immutable.deploy.plugins.module_utils.images.build import registry_auth
from ansible_collections.immutable.deploy.plugins.module_utils.images import reference as image_ref
from ansible_collections.immutable.deploy.plugins.module_utils.images.resolve import resolve_image
from ansible_collections.immutable.deploy.plugins.module_utils.waiting import utc_now, wait_until

LOG_TAIL = 20
STOP_TIMEOUT = 10
POLL_SECONDS = 0.5
# Without a health check a container counts as healthy once it has stayed up this long.
SETTLE_SECONDS = 1.5
# A concurrent deploy may take a chosen port between the choice and the start.
PORT_ATTEMPTS = 3
Container = Dict[str, Any]


# -- checks before anything is created ---------------------------------------------------
def _check_ports(client: Engine, spec: Dict[str, Any], replicas: List[int]) -> None:
    if not spec["published_ports"] or not client.local:
        return  # a remote engine reports a clash itself; _create_missing cleans up then
    busy = [spec["published_ports"][n - 1] for n in replicas
            if host_ports.port_in_use(spec["bind_address"], spec["published_ports"][n - 1])]
    if busy:
        raise DeployError("Option 'published_ports': host port(s) %s on %s already in use; nothing was created. "
                          "Choose free ports or omit published_ports to have free ones chosen."
                          % (", ".join(map(str, busy)), spec["bind_address"]),
                          option="published_ports", ports_in_use=busy)


def _check_names(client: Engine, app: str, release_id: str, replicas: List[int]) -> None:
    for n in replicas:
        name = dspec.container_name(app, release_id, n)
        other = client.inspect_container(name)
        if other is None:
            continue
        labels = reading.labels_of(other)
        raise DeployError("Container %s already exists but belongs to %s; rename or remove it."
                          % (name, "app %r release %r" % (labels.get(dspec.LABEL_APP), labels.get(dspec.LABEL_RELEASE))
                             if dspec.LABEL_APP in labels else "nothing managed by immutable.deploy"),
                          container=name)


def _check_same_spec(app: str, release_id: str, existing: List[Container], spec: Dict[str, Any]) -> None:
    wanted = model.spec_hash(spec)
    for c in existing:
        labels = reading.labels_of(c)
        if labels.get(dspec.LABEL_SPEC) == wanted:
            continue
        fields = model.differing_fields(labels.get(dspec.LABEL_SPEC_FIELDS), spec, dspec.SPEC_FIELDS) \
            or ["unknown (spec scheme)"]
        existing_summary = (labels.get(dspec.LABEL_SLOT), labels.get(dspec.LABEL_DIGEST),
                            labels.get(dspec.LABEL_REPLICAS))
        raise DeployError(
            "Release %r of app %r already exists with another spec (differs in: %s; existing slot %s, digest %s, "
            "replicas %s). A release is immutable: deploy the change under a new release id, or remove this one "
            "first (state: absent)." % ((release_id, app, ", ".join(fields)) + existing_summary),
            differs=fields, container=c["Name"].lstrip("/"))


def _ensure_image(client: Engine, image: str, p: Dict[str, Any]) -> None:
    if client.inspect_image(image) is not None:
        return
    if image_ref.is_digest(image):  # an image ID: built here, never pushed, nothing to pull
        raise DeployError("Option 'image': local image %s is gone." % image, option="image")
    try:
        client.pull(image, registry_auth(p))
    except DeployError as exc:
        raise DeployError(exc.msg, option="image")


# -- host ports ---------------------------------------------------------------------------
def _taken_ports(client: Engine) -> List[int]:
    """Host ports other containers hold now or will take when they start again."""
    taken = [int(port["PublicPort"]) for summary in client.containers()
             for port in summary.get("Ports") or [] if port.get("PublicPort")]
    for c in reading.load_all(client):
        taken.extend(host_ports.bound_ports(c))
    return taken


def _host_ports(client: Engine, p: Dict[str, Any], spec: Dict[str, Any], replicas: List[int],
                avoid: List[int]) -> Dict[int, int]:
    """replica -> host port: the given published_ports, else free ones fixed for the container's life."""
    if not spec["container_port"]:
        return {}
    if spec["published_ports"]:
        return {n: spec["published_ports"][n - 1] for n in replicas}
    bounds = host_ports.parse_range(p.get("host_port_range"))
    chosen = host_ports.choose(
        len(replicas), bounds, _taken_ports(client) + avoid,
        lambda port: not client.local or not host_ports.port_in_use(spec["bind_address"], port))
    return dict(zip(replicas, chosen))


# -- containers ---------------------------------------------------------------------------
def _create(client: Engine, app: str, release_id: str, spec: Dict[str, Any], image: str, created: str,
            replica: int, secret_env: Dict[str, str], host_port: Optional[int]) -> str:
    port = spec["container_port"]
    bindings = None
    if port:
        bindings = {port: (spec["bind_address"], host_port) if host_port else (spec["bind_address"],)}
    policy: Dict[str, Any] = {"Name": spec["restart_policy"]}
    if spec["restart_policy"] == "on-failure":
        policy["MaximumRetryCount"] = 0
    host_config = dict(port_bindings=bindings, restart_policy=policy, mem_limit=spec["memory"],
                       nano_cpus=int(spec["cpus"] * 1e9) if spec["cpus"] else None)
    hc = spec["healthcheck"]
    healthcheck = None
    if hc:
        healthcheck = {"test": hc["test"], "interval": hc["interval"] * 10 ** 9, "timeout": hc["timeout"] * 10 ** 9,
                       "retries": hc["retries"], "start_period": hc["start_period"] * 10 ** 9}
    env = dict(spec["env"])
    env.update(secret_env)
    return client.create_container(
        image, dspec.container_name(app, release_id, replica), host_config, command=spec["command"],
        environment=env, labels=dspec.labels_for(app, release_id, spec, image, created, replica),
        ports=[port] if port else None, healthcheck=healthcheck)


def _remove(client: Engine, ids: List[str]) -> None:
    for cid in ids:
        client.remove(cid)


def _failure(client: Engine, c: Container, why: str) -> Dict[str, Any]:
    state = c.get("State") or {}
    health_log = (state.get("Health") or {}).get("Log") or []
    last = health_log[-1] if health_log else {}
    output = last.get("Output")
    output = output.decode("utf-8", "replace") if isinstance(output, bytes) else str(output or "")
    return {"name": c["Name"].lstrip("/"), "why": why, "status": state.get("Status"),
            "exit_code": state.get("ExitCode"), "restart_count": c.get("RestartCount", 0),
            "health": (state.get("Health") or {}).get("Status"),
            "health_output": output.strip() or None, "health_exit_code": last.get("ExitCode"),
            "log_tail": client.logs(c["Id"], LOG_TAIL)}


def _container_verdict(c: Container, up_since: Dict[str, float], now: float) -> Tuple[str, str]:
    """('failed' | 'pending' | 'healthy', why)."""
    state = c.get("State") or {}
    health = (state.get("Health") or {}).get("Status")
    if state.get("Status") in ("exited", "dead") or state.get("Restarting") or c.get("RestartCount"):
        return "failed", "exited (code %s)" % state.get("ExitCode")
    if health == "unhealthy":
        return "failed", "unhealthy"
    if not state.get("Running"):
        return "pending", "not running (%s)" % state.get("Status")
    if health is None:
        # No health check: require it to stay up a moment, so a crash on start is caught.
        if now - up_since.setdefault(c["Id"], now) < SETTLE_SECONDS:
            return "pending", "running for less than %ss" % SETTLE_SECONDS
        return "healthy", ""
    return ("healthy", "") if health == "healthy" else ("pending", health)


def wait_healthy(client: Engine, ids: List[str], timeout: float,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> List[Dict[str, Any]]:
    """Wait until every container is healthy; return failure reports (empty when all are healthy)."""
    up_since: Dict[str, float] = {}

    def check() -> Tuple[bool, Dict[str, List[Tuple[Container, str]]]]:
        now = clock()
        seen: Dict[str, List[Tuple[Container, str]]] = {"failed": [], "pending": [], "healthy": []}
        for cid in ids:
            c = client.inspect_container(cid) or {"Id": cid, "Name": cid, "State": {"Status": "removed"}}
            verdict, why = _container_verdict(c, up_since, now)
            seen[verdict].append((c, why))
        return bool(seen["failed"]) or not seen["pending"], seen

    dummy, seen = wait_until(check, timeout, POLL_SECONDS, clock, sleep)
    if seen["failed"]:
        return [_failure(client, c, why) for c, why in seen["failed"]]
    return [_failure(client, c, "still %s after %ss" % (why, timeout)) for c, why in seen["pending"]]


def _unhealthy_error(app: str, release_id: str, failures: List[Dict[str, Any]], timeout: float,
                     cleanup: str) -> DeployError:
    parts = []
    for f in failures:
        text = "%s %s" % (f["name"], f["why"])
        if f["health_output"]:
            text += "; health check (exit %s): %s" % (f["health_exit_code"], f["health_output"][-500:])
        text += "; last log lines: %s" % (" | ".join(f["log_tail"][-5:]) or "(none)")
        parts.append(text)
    return DeployError("Release %r of app %r did not become healthy (wait_timeout %ss): %s. %s"
                       % (release_id, app, timeout, " ;; ".join(parts), cleanup), unhealthy=failures)


def _start(client: Engine, app: str, release_id: str, ids: List[str], p: Dict[str, Any], on_failure: str) -> None:
    """Start containers and wait for health; on failure undo ('remove' or 'stop') and raise."""
    started: List[str] = []
    try:
        for cid in ids:
            client.start(cid)
            started.append(cid)
    except DeployError as exc:
        _undo(client, ids if on_failure == "remove" else started, on_failure, p)
        text = exc.details.get("explanation") or exc.msg
        clash = "already allocated" in text or "address already in use" in text
        details = {"option": "published_ports", "port_clash": True} if clash else {}
        raise DeployError("Starting release %r of app %r failed: %s.%s %s"
                          % (release_id, app, text, " A published port is in use." if clash else "",
                             _undo_text(on_failure, len(ids), p)), **details)
    failures = wait_healthy(client, ids, p["wait_timeout"])
    if failures:
        _undo(client, ids, on_failure, p)
        raise _unhealthy_error(app, release_id, failures, p["wait_timeout"], _undo_text(on_failure, len(ids), p))


def _undo(client: Engine, ids: List[str], how: str, p: Dict[str, Any]) -> None:
    if how == "remove" and p.get("keep_failed"):
        return
    if how == "remove":
        _remove(client, ids)
        return
    for cid in ids:
        client.stop(cid, STOP_TIMEOUT)


def _undo_text(how: str, count: int, p: Dict[str, Any]) -> str:
    if how == "remove" and p.get("keep_failed"):
        return "The %d container(s) just created were kept for inspection (keep_failed: true)." % count
    if how == "remove":
        return "The %d container(s) just created were removed (set keep_failed: true to keep them)." % count
    return "The container(s) started were stopped again."


def _create_missing(client: Engine, app: str, release_id: str, spec: Dict[str, Any], image: str,
                    p: Dict[str, Any], existing: List[Container], missing: List[int], state: str) -> None:
    # Replicas this module created carry the label: a new replica keeps its release's creation time.
    created = cast(str, reading.labels_of(existing[0]).get(dspec.LABEL_CREATED)) if existing else utc_now()
    secret_env = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in (p.get("secret_env") or {}).items()}
    avoid: List[int] = []
    for attempt in range(1, PORT_ATTEMPTS + 1):
        ports = _host_ports(client, p, spec, missing, avoid)
        new_ids: List[str] = []
        try:
            for n in missing:
                new_ids.append(_create(client, app, release_id, spec, image, created, n, secret_env, ports.get(n)))
        except DeployError as exc:
            _remove(client, new_ids)
            raise DeployError("Creating release %r of app %r failed: %s. Nothing was left behind."
                              % (release_id, app, exc.details.get("explanation") or exc.msg))
        if state == "stopped":
            return
        try:
            _start(client, app, release_id, new_ids, p, "remove")
            return
        except DeployError as exc:
            if not exc.details.get("port_clash") or spec["published_ports"] or attempt == PORT_ATTEMPTS:
                raise
            if p.get("keep_failed"):  # _start kept them for inspection; a taken port is not worth it
                _remove(client, new_ids)
            avoid.extend(ports.values())


# -- results ------------------------------------------------------------------------------
def _absent(app: str, release_id: str) -> Dict[str, Any]:
    return {"app": app, "id": release_id, "slot": None, "image": None, "digest": None, "replicas": 0,
            "created": None, "state": "absent", "health": None, "containers": [], "endpoints": []}


def _predict(app: str, release_id: str, spec: Optional[Dict[str, Any]], image: Optional[str],
             existing: List[Container], missing: List[int], state: str) -> Dict[str, Any]:
    """What the release will look like; IDs and chosen ports are unknown until it is created."""
    current = reading.view(app, release_id, existing) if existing else None
    items = {c["replica"]: c for c in (current or {}).get("containers", [])}
    running = state in ("present", "started")
    for n in missing:
        if spec is None:
            raise AssertionError("missing replicas are only computed from a spec")
        port = spec["published_ports"][n - 1] if spec["published_ports"] else None
        items[n] = {"name": dspec.container_name(app, release_id, n), "id": None, "replica": n,
                    "address": spec["bind_address"] if spec["container_port"] else None, "port": port,
                    "status": "running" if running else "created", "health": "starting" if running else "stopped"}
    for c in items.values():
        if state == "started" and c["status"] != "running":
            c.update(status="running", health="starting")
        if state == "stopped" and c["status"] == "running":
            c.update(status="exited", health="stopped")
    ordered = [items[k] for k in sorted(items)]
    replicas = spec["replicas"] if spec else (current or {})["replicas"]
    healths = [c["health"] for c in ordered]
    base = current or {"app": app, "id": release_id, "slot": (spec or {}).get("slot"), "image": image,
                       "digest": (spec or {}).get("digest"), "created": None}
    return dict(base, replicas=replicas, containers=ordered, state=reading.release_state(replicas, healths),
                health=reading.overall_health(replicas, healths),
                endpoints=[{"address": c["address"], "port": c["port"]} for c in ordered
                           if c["status"] == "running" and c["port"]])


def _result(changed: bool, release_view: Dict[str, Any], before: Optional[Dict[str, Any]],
            after: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    gone = not after or after.get("state") == "absent"
    return {"changed": changed, "release": release_view,
            "diff": {"before": reading.summary(before), "after": reading.summary(None if gone else after)}}


# -- the service ----------------------------------------------------------------------------
def start(client: Engine, app: str, release_id: str, wait_timeout: float) -> Dict[str, Any]:
    """Start a release that was kept stopped and wait until it is healthy (a cold rollback); its view."""
    containers = reading.load(client, app, release_id)
    if not containers:
        raise DeployError("Release %r of app %r does not exist on this host." % (release_id, app), option="to")
    stopped = [c["Id"] for c in containers if not (c.get("State") or {}).get("Running")]
    if stopped:
        _start(client, app, release_id, stopped, {"wait_timeout": wait_timeout}, "stop")
    return reading.view(app, release_id, reading.load(client, app, release_id))


def ensure(p: Dict[str, Any], check_mode: bool, client: Optional[Engine] = None) -> Dict[str, Any]:
    app = model.validate_app(p["app"])
    release_id = model.validate_release(p["release"])
    if p.get("slot") is not None:
        model.validate_slot(p["slot"])
    host_ports.parse_range(p.get("host_port_range"))
    state = p["state"]
    client = client or Engine(p.get("docker_host"), p.get("docker_timeout") or 120)
    existing = reading.load(client, app, release_id)
    before = reading.view(app, release_id, existing) if existing else None

    spec, image = None, None
    # Removal goes by identity alone: a release whose image is gone from the registry can still be removed.
    if p.get("image") and state != "absent":
        image, digest = resolve_image(p, client)
        spec = dspec.normalize_spec(p, digest)
        _check_same_spec(app, release_id, existing, spec)
    elif not existing and state in ("present", "started", "stopped"):
        raise DeployError("Release %r of app %r does not exist on this host; options 'image' and 'slot' are "
                          "required to create it." % (release_id, app), option="image")

    if state == "absent":
        changed = bool(existing)
        if changed and not check_mode:
            _remove(client, [c["Id"] for c in existing])
        after_view = dict(before, state="absent", containers=[], endpoints=[]) if before else None
        return _result(changed, after_view or _absent(app, release_id), before, None)

    have = {int(reading.labels_of(c).get(dspec.LABEL_REPLICA, 0)) for c in existing}
    missing = [n for n in range(1, spec["replicas"] + 1) if n not in have] if spec else []
    to_start = [c["Id"] for c in existing if not (c.get("State") or {}).get("Running")] if state == "started" else []
    to_stop = [c["Id"] for c in existing if (c.get("State") or {}).get("Running")] if state == "stopped" else []
    changed = bool(missing or to_start or to_stop)

    if missing:
        if spec is None:
            raise AssertionError("missing replicas are only computed from a spec")
        _check_names(client, app, release_id, missing)
        _check_ports(client, spec, missing)
    if check_mode or not changed:
        predicted = _predict(app, release_id, spec, image, existing, missing, state) if changed else before
        return _result(changed, predicted or _absent(app, release_id), before, predicted)

    if missing:
        if spec is None or image is None:
            raise AssertionError("missing replicas are only computed from a spec and its image")
        _ensure_image(client, image, p)
        _create_missing(client, app, release_id, spec, image, p, existing, missing, state)
    if to_start:
        _start(client, app, release_id, to_start, p, "stop")
    for cid in to_stop:
        client.stop(cid, STOP_TIMEOUT)
    after = reading.view(app, release_id, reading.load(client, app, release_id))
    return _result(True, after, before, after)
