# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Releases on a Docker host: N labelled containers from one digest-pinned image.

Truth lives on the host: a release is whatever containers carry its labels, so
two operators (or two throwaway AWX runs) always see the same thing.
"""
from __future__ import annotations

import ipaddress
import re
import time
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.immutable.deploy.plugins.module_utils import docker_engine as engine
from ansible_collections.immutable.deploy.plugins.module_utils import host_ports
from ansible_collections.immutable.deploy.plugins.module_utils import image_ref
from ansible_collections.immutable.deploy.plugins.module_utils import plan
from ansible_collections.immutable.deploy.plugins.module_utils import release as model
from ansible_collections.immutable.deploy.plugins.module_utils import router_check
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError
from ansible_collections.immutable.deploy.plugins.module_utils.images import registry_for

try:
    from docker.errors import APIError, DockerException, NotFound
except ImportError:  # module_runner reports the missing SDK before any of this runs
    APIError = DockerException = NotFound = Exception

_IMAGE_ID_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
LOG_TAIL = 20
STOP_TIMEOUT = 10
# Without a health check a container counts as healthy once it has stayed up this long.
SETTLE_SECONDS = 1.5


# -- reading ----------------------------------------------------------------------
def _load(client, app: str, release_id: Optional[str] = None) -> List[Dict[str, Any]]:
    labels = ["%s=%s" % (model.LABEL_APP, app)]
    if release_id is not None:
        labels.append("%s=%s" % (model.LABEL_RELEASE, release_id))
    found = []
    for summary in client.containers(all=True, filters={"label": labels}):
        try:
            found.append(client.inspect_container(summary["Id"]))
        except NotFound:  # removed between list and inspect
            continue
    return found


def _labels(c: Dict[str, Any]) -> Dict[str, str]:
    return (c.get("Config") or {}).get("Labels") or {}


def _binding(c: Dict[str, Any]) -> Tuple[Optional[str], Optional[int]]:
    """The published host address and port: live ones when running, else the configured ones."""
    live = ((c.get("NetworkSettings") or {}).get("Ports") or {})
    configured = ((c.get("HostConfig") or {}).get("PortBindings") or {})
    for source in (live, configured):
        for bindings in source.values():
            for b in bindings or []:
                port = b.get("HostPort")
                if port:
                    return b.get("HostIp") or "0.0.0.0", int(port)
    return None, None


def _container_view(c: Dict[str, Any]) -> Dict[str, Any]:
    state = c.get("State") or {}
    status = "restarting" if state.get("Restarting") else state.get("Status", "unknown")
    address, port = _binding(c)
    return {
        "name": c["Name"].lstrip("/"), "id": c["Id"], "replica": int(_labels(c).get(model.LABEL_REPLICA, 0)),
        "address": address, "port": port, "status": status,
        "health": model.container_health(status, (state.get("Health") or {}).get("Status")),
    }


def view(app: str, release_id: str, containers: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The release as its containers' labels and states describe it."""
    containers = sorted(containers, key=lambda c: int(_labels(c).get(model.LABEL_REPLICA, 0)))
    first = _labels(containers[0])
    replicas = int(first.get(model.LABEL_REPLICAS, len(containers)))
    items = [_container_view(c) for c in containers]
    healths = [i["health"] for i in items]
    return {
        "app": app, "id": release_id, "slot": first.get(model.LABEL_SLOT),
        "image": first.get(model.LABEL_IMAGE) or (containers[0].get("Config") or {}).get("Image"),
        "digest": first.get(model.LABEL_DIGEST), "replicas": replicas, "created": first.get(model.LABEL_CREATED),
        "state": model.release_state(replicas, healths), "health": model.overall_health(replicas, healths),
        "containers": items,
        "endpoints": [{"address": i["address"], "port": i["port"]} for i in items
                      if i["status"] == "running" and i["port"]],
        # False for containers published on ephemeral ports, which change when they restart.
        "restart_safe": all(host_ports.is_fixed(c) for c in containers),
    }


def _summary(v: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    if not v:
        return {"state": "absent"}
    return {"state": v["state"], "slot": v["slot"], "digest": v["digest"], "replicas": v["replicas"]}


# -- image --------------------------------------------------------------------------
def resolve_image(client, p: Dict[str, Any]) -> Tuple[str, str]:
    """(reference to create containers from, digest that pins it). Tags are resolved first."""
    text = p["image"]
    if _IMAGE_ID_RE.match(text or ""):
        # A local image ID (what image_build returns for an image never pushed) is content-addressed too.
        if engine.inspect_image(client, text) is None:
            raise DeployError("Option 'image': no local image has ID %s." % text, option="image")
        return text, text
    ref = image_ref.parse(text, "image")
    if ref.digest:
        return ref._replace(tag=None).pinned, ref.digest
    image_ref.require_version_tag(ref, "image", p.get("moving_tags") or image_ref.DEFAULT_MOVING_TAGS)
    local = engine.inspect_image(client, ref.tagged)
    if local:
        digests = [d.split("@", 1)[1] for d in local.get("RepoDigests") or [] if d.startswith(ref.name + "@")]
        if digests:
            return ref._replace(tag=None).with_digest(digests[0]).pinned, digests[0]
        # Built here and never pushed or pulled: its ID is the only content address it has.
        return local["Id"], local["Id"]
    manifest = registry_for(ref, p).get_manifest(ref.repository, ref.tag)
    if manifest is None:
        raise DeployError("Option 'image': %s was found neither in the local engine nor in registry %s."
                          % (ref.tagged, ref.registry), option="image")
    return ref._replace(tag=None).with_digest(manifest.digest).pinned, manifest.digest


def _ensure_image(client, image: str, p: Dict[str, Any]) -> None:
    if engine.inspect_image(client, image) is not None:
        return
    if _IMAGE_ID_RE.match(image):
        raise DeployError("Option 'image': local image %s is gone." % image, option="image")
    auth = None
    if p.get("registry_username"):
        auth = {"username": p["registry_username"], "password": p.get("registry_password") or ""}
    try:
        stream = client.pull(image, auth_config=auth, stream=True, decode=True)
        engine.stream_errors(stream, "Pull of %s" % image)
    except DockerException as exc:
        raise DeployError("Pull of %s failed: %s" % (image, exc), option="image")


# -- checks before anything is created ---------------------------------------------------
def _engine_is_local(p: Dict[str, Any]) -> bool:
    host = p.get("docker_host") or ""
    return not host or host.startswith("unix://") or "127.0.0.1" in host or "localhost" in host


def _check_ports(p: Dict[str, Any], spec: Dict[str, Any], replicas: List[int]) -> None:
    if not spec["published_ports"] or not _engine_is_local(p):
        return  # a remote engine reports a clash itself; _create cleans up then
    busy = [spec["published_ports"][n - 1] for n in replicas
            if host_ports.port_in_use(spec["bind_address"], spec["published_ports"][n - 1])]
    if busy:
        raise DeployError("Option 'published_ports': host port(s) %s on %s already in use; nothing was created. "
                          "Choose free ports or omit published_ports to have free ones chosen."
                          % (", ".join(map(str, busy)), spec["bind_address"]),
                          option="published_ports", ports_in_use=busy)


def _check_names(client, app: str, release_id: str, replicas: List[int]) -> None:
    for n in replicas:
        name = model.container_name(app, release_id, n)
        try:
            other = client.inspect_container(name)
        except NotFound:
            continue
        labels = _labels(other)
        raise DeployError("Container %s already exists but belongs to %s; rename or remove it."
                          % (name, "app %r release %r" % (labels.get(model.LABEL_APP), labels.get(model.LABEL_RELEASE))
                             if model.LABEL_APP in labels else "nothing managed by immutable.deploy"),
                          container=name)


def _check_same_spec(app: str, release_id: str, existing: List[Dict[str, Any]], spec: Dict[str, Any]) -> None:
    wanted = model.spec_hash(spec)
    for c in existing:
        labels = _labels(c)
        if labels.get(model.LABEL_SPEC) == wanted:
            continue
        fields = model.differing_fields(labels.get(model.LABEL_SPEC_FIELDS), spec) or ["unknown (spec scheme)"]
        existing_summary = (labels.get(model.LABEL_SLOT), labels.get(model.LABEL_DIGEST), labels.get(model.LABEL_REPLICAS))
        raise DeployError(
            "Release %r of app %r already exists with another spec (differs in: %s; existing slot %s, digest %s, "
            "replicas %s). A release is immutable: deploy the change under a new release id, or remove this one "
            "first (state: absent)." % ((release_id, app, ", ".join(fields)) + existing_summary),
            differs=fields, container=c["Name"].lstrip("/"))


# -- changes ------------------------------------------------------------------------------
def _taken_ports(client) -> List[int]:
    """Host ports other containers hold now or will take when they start again."""
    taken = [int(port["PublicPort"]) for summary in client.containers(all=True)
             for port in summary.get("Ports") or [] if port.get("PublicPort")]
    for c in _load_all(client):
        taken.extend(host_ports.bound_ports(c))
    return taken


def _load_all(client) -> List[Dict[str, Any]]:
    """Every container of every app managed here (stopped ones included)."""
    found = []
    for summary in client.containers(all=True, filters={"label": [model.LABEL_APP]}):
        inspected = engine.inspect_container(client, summary["Id"])
        if inspected is not None:
            found.append(inspected)
    return found


def _host_ports(client, p: Dict[str, Any], spec: Dict[str, Any], replicas: List[int],
                avoid: List[int]) -> Dict[int, int]:
    """replica -> host port: the given published_ports, else free ones fixed for the container's life."""
    if not spec["container_port"]:
        return {}
    if spec["published_ports"]:
        return {n: spec["published_ports"][n - 1] for n in replicas}
    bounds = host_ports.parse_range(p.get("host_port_range"))
    local = _engine_is_local(p)
    chosen = host_ports.choose(
        len(replicas), bounds, _taken_ports(client) + avoid,
        lambda port: not local or not host_ports.port_in_use(spec["bind_address"], port))
    return dict(zip(replicas, chosen))


def _create(client, app: str, release_id: str, spec: Dict[str, Any], image: str, created: str,
            replica: int, secret_env: Dict[str, str], host_port: Optional[int]) -> str:
    port = spec["container_port"]
    bindings = None
    if port:
        bindings = {port: (spec["bind_address"], host_port) if host_port else (spec["bind_address"],)}
    policy = {"Name": spec["restart_policy"]}
    if spec["restart_policy"] == "on-failure":
        policy["MaximumRetryCount"] = 0
    host_config = client.create_host_config(
        port_bindings=bindings, restart_policy=policy, mem_limit=spec["memory"],
        nano_cpus=int(spec["cpus"] * 1e9) if spec["cpus"] else None)
    hc = spec["healthcheck"]
    healthcheck = None
    if hc:
        healthcheck = {"test": hc["test"], "interval": hc["interval"] * 10 ** 9, "timeout": hc["timeout"] * 10 ** 9,
                       "retries": hc["retries"], "start_period": hc["start_period"] * 10 ** 9}
    env = dict(spec["env"])
    env.update(secret_env)
    out = client.create_container(
        image, name=model.container_name(app, release_id, replica), command=spec["command"],
        environment=env, labels=model.labels_for(app, release_id, spec, image, created, replica),
        ports=[port] if port else None, host_config=host_config, healthcheck=healthcheck, detach=True)
    return out["Id"]


def _remove(client, ids: List[str]) -> None:
    for cid in ids:
        try:
            client.remove_container(cid, force=True, v=True)
        except NotFound:
            pass


def _text(data: Any) -> str:
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data or "")


def _failure(client, c: Dict[str, Any], why: str) -> Dict[str, Any]:
    state = c.get("State") or {}
    health_log = (state.get("Health") or {}).get("Log") or []
    try:
        logs = _text(client.logs(c["Id"], tail=LOG_TAIL, stdout=True, stderr=True)).splitlines()
    except DockerException:
        logs = []
    last = health_log[-1] if health_log else {}
    return {"name": c["Name"].lstrip("/"), "why": why, "status": state.get("Status"),
            "exit_code": state.get("ExitCode"), "restart_count": c.get("RestartCount", 0),
            "health": (state.get("Health") or {}).get("Status"),
            "health_output": _text(last.get("Output")).strip() or None, "health_exit_code": last.get("ExitCode"),
            "log_tail": logs}


def _wait_healthy(client, ids: List[str], timeout: int) -> List[Dict[str, Any]]:
    """Wait until every container is healthy; return failure reports (empty when all are healthy)."""
    deadline = time.monotonic() + timeout
    up_since: Dict[str, float] = {}
    while True:
        inspected = [client.inspect_container(cid) for cid in ids]
        failed, pending = [], []
        for c in inspected:
            state = c.get("State") or {}
            health = (state.get("Health") or {}).get("Status")
            if state.get("Status") in ("exited", "dead") or state.get("Restarting") or c.get("RestartCount"):
                failed.append((c, "exited (code %s)" % state.get("ExitCode")))
            elif health == "unhealthy":
                failed.append((c, "unhealthy"))
            elif not state.get("Running"):
                pending.append((c, "not running (%s)" % state.get("Status")))
            elif health is None:
                # No health check: require it to stay up a moment, so a crash on start is caught.
                first = up_since.setdefault(c["Id"], time.monotonic())
                if time.monotonic() - first < SETTLE_SECONDS:
                    pending.append((c, "running for less than %ss" % SETTLE_SECONDS))
            elif health != "healthy":
                pending.append((c, health))
        if failed:
            return [_failure(client, c, why) for c, why in failed]
        if not pending:
            return []
        if time.monotonic() > deadline:
            return [_failure(client, c, "still %s after %ss" % (why, timeout)) for c, why in pending]
        time.sleep(0.5)


def _unhealthy_error(app, release_id, failures, timeout, cleanup: str) -> DeployError:
    parts = []
    for f in failures:
        text = "%s %s" % (f["name"], f["why"])
        if f["health_output"]:
            text += "; health check (exit %s): %s" % (f["health_exit_code"], f["health_output"][-500:])
        text += "; last log lines: %s" % (" | ".join(f["log_tail"][-5:]) or "(none)")
        parts.append(text)
    return DeployError("Release %r of app %r did not become healthy (wait_timeout %ss): %s. %s"
                       % (release_id, app, timeout, " ;; ".join(parts), cleanup), unhealthy=failures)


def _start(client, app, release_id, ids: List[str], p: Dict[str, Any], on_failure: str) -> None:
    """Start containers and wait for health; on failure undo ('remove' or 'stop') and raise."""
    started = []
    try:
        for cid in ids:
            client.start(cid)
            started.append(cid)
    except APIError as exc:
        _undo(client, ids if on_failure == "remove" else started, on_failure, p)
        text = _text(getattr(exc, "explanation", None) or exc)
        clash = "already allocated" in text or "address already in use" in text
        details = {"option": "published_ports", "port_clash": True} if clash else {}
        raise DeployError("Starting release %r of app %r failed: %s.%s %s"
                          % (release_id, app, text, " A published port is in use." if clash else "",
                             _undo_text(on_failure, len(ids), p)), **details)
    failures = _wait_healthy(client, ids, p["wait_timeout"])
    if failures:
        _undo(client, ids, on_failure, p)
        raise _unhealthy_error(app, release_id, failures, p["wait_timeout"], _undo_text(on_failure, len(ids), p))


def _undo(client, ids, how, p) -> None:
    if how == "remove" and p.get("keep_failed"):
        return
    if how == "remove":
        _remove(client, ids)
        return
    for cid in ids:
        try:
            client.stop(cid, timeout=STOP_TIMEOUT)
        except NotFound:
            pass


def _undo_text(how: str, count: int, p: Dict[str, Any]) -> str:
    if how == "remove" and p.get("keep_failed"):
        return "The %d container(s) just created were kept for inspection (keep_failed: true)." % count
    if how == "remove":
        return "The %d container(s) just created were removed (set keep_failed: true to keep them)." % count
    return "The container(s) started were stopped again."


# -- the service ----------------------------------------------------------------------------
def ensure(p: Dict[str, Any], check_mode: bool) -> Dict[str, Any]:
    app = model.validate_app(p["app"])
    release_id = model.validate_release(p["release"])
    if p.get("slot") is not None:
        model.validate_slot(p["slot"])
    host_ports.parse_range(p.get("host_port_range"))
    state = p["state"]
    client = engine.connect(p["docker_host"], p["docker_timeout"])
    existing = _load(client, app, release_id)
    before = view(app, release_id, existing) if existing else None

    spec, image = None, None
    # Removal goes by identity alone: a release whose image is gone from the registry can still be removed.
    if p.get("image") and state != "absent":
        image, digest = resolve_image(client, p)
        spec = model.normalize_spec(p, digest)
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

    have = {int(_labels(c).get(model.LABEL_REPLICA, 0)) for c in existing}
    missing = [n for n in range(1, spec["replicas"] + 1) if n not in have] if spec else []
    to_start = [c["Id"] for c in existing if not (c.get("State") or {}).get("Running")] if state == "started" else []
    to_stop = [c["Id"] for c in existing if (c.get("State") or {}).get("Running")] if state == "stopped" else []
    changed = bool(missing or to_start or to_stop)

    if missing:
        _check_names(client, app, release_id, missing)
        _check_ports(p, spec, missing)
    if check_mode or not changed:
        predicted = _predict(app, release_id, spec, image, existing, missing, state) if changed else before
        return _result(changed, predicted, before, predicted)

    if missing:
        _ensure_image(client, image, p)
        _create_missing(client, app, release_id, spec, image, p, existing, missing, state)
    if to_start:
        _start(client, app, release_id, to_start, p, "stop")
    for cid in to_stop:
        client.stop(cid, timeout=STOP_TIMEOUT)
    after = view(app, release_id, _load(client, app, release_id))
    return _result(True, after, before, after)


# A concurrent deploy may take a chosen port between the choice and the start.
PORT_ATTEMPTS = 3


def _create_missing(client, app: str, release_id: str, spec: Dict[str, Any], image: str, p: Dict[str, Any],
                    existing: List[Dict[str, Any]], missing: List[int], state: str) -> None:
    created = _labels(existing[0]).get(model.LABEL_CREATED) if existing else _now()
    secret_env = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in (p.get("secret_env") or {}).items()}
    avoid: List[int] = []
    for attempt in range(1, PORT_ATTEMPTS + 1):
        ports = _host_ports(client, p, spec, missing, avoid)
        new_ids: List[str] = []
        try:
            for n in missing:
                new_ids.append(_create(client, app, release_id, spec, image, created, n, secret_env, ports.get(n)))
        except APIError as exc:
            _remove(client, new_ids)
            raise DeployError("Creating release %r of app %r failed: %s. Nothing was left behind."
                              % (release_id, app, _text(getattr(exc, "explanation", None) or exc)))
        if state == "stopped":
            return
        try:
            _start(client, app, release_id, new_ids, p, "remove")
            return
        except DeployError as exc:
            if not exc.details.get("port_clash") or spec["published_ports"] or attempt == PORT_ATTEMPTS:
                raise
            _remove(client, new_ids)  # never started: nothing to inspect even with keep_failed
            avoid.extend(ports.values())


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _absent(app: str, release_id: str) -> Dict[str, Any]:
    return {"app": app, "id": release_id, "slot": None, "image": None, "digest": None, "replicas": 0,
            "created": None, "state": "absent", "health": None, "containers": [], "endpoints": []}


def _predict(app, release_id, spec, image, existing, missing, state) -> Dict[str, Any]:
    """What the release will look like; IDs and ephemeral ports are unknown until it runs."""
    current = view(app, release_id, existing) if existing else None
    items = {c["replica"]: c for c in (current or {}).get("containers", [])}
    running = state in ("present", "started")
    for n in missing:
        port = spec["published_ports"][n - 1] if spec["published_ports"] else None
        items[n] = {"name": model.container_name(app, release_id, n), "id": None, "replica": n,
                    "address": spec["bind_address"] if spec["container_port"] else None, "port": port,
                    "status": "running" if running else "created", "health": "starting" if running else "stopped"}
    for c in items.values():
        if state == "started" and c["status"] != "running":
            c.update(status="running", health="starting")
        if state == "stopped" and c["status"] == "running":
            c.update(status="exited", health="stopped")
    ordered = [items[k] for k in sorted(items)]
    replicas = spec["replicas"] if spec else current["replicas"]
    healths = [c["health"] for c in ordered]
    base = current or {"app": app, "id": release_id, "slot": spec["slot"], "image": image, "digest": spec["digest"],
                       "created": None}
    return dict(base, replicas=replicas, containers=ordered, state=model.release_state(replicas, healths),
                health=model.overall_health(replicas, healths),
                endpoints=[{"address": c["address"], "port": c["port"]} for c in ordered
                           if c["status"] == "running" and c["port"]])


def _result(changed: bool, release_view: Dict[str, Any], before, after) -> Dict[str, Any]:
    gone = not after or after.get("state") == "absent"
    return {"changed": changed, "release": release_view,
            "diff": {"before": _summary(before), "after": _summary(None if gone else after)}}


# -- info ------------------------------------------------------------------------------------
def info(p: Dict[str, Any]) -> Dict[str, Any]:
    app = model.validate_app(p["app"])
    if p.get("release") is not None:
        model.validate_release(p["release"])
    _check_router_options(p)
    client = engine.connect(p["docker_host"], p["docker_timeout"])
    groups: Dict[str, List[Dict[str, Any]]] = {}
    for c in _load(client, app, p.get("release")):
        groups.setdefault(_labels(c).get(model.LABEL_RELEASE, ""), []).append(c)
    releases = [view(app, rid, cs) for rid, cs in groups.items()]
    releases.sort(key=lambda r: (r["created"] or "", r["id"]), reverse=True)
    servers = _haproxy_servers(p) if (p.get("router_kind") or "haproxy") == "haproxy" and p.get("router_socket") \
        else None
    weights = _router_weights(p, servers)
    if weights is not None:
        for r in releases:
            r["weight"] = sum(weights.get(_endpoint_key(e["address"], e["port"]), 0) for e in r["endpoints"])
            r["live"] = r["weight"] > 0
    result: Dict[str, Any] = {"changed": False, "releases": releases,
                              "router_slots": plan.router_slots(p.get("router_kind"), servers)}
    if servers is not None:
        # Only for a whole app: a view of one release cannot say what another slot should hold.
        result["router_mismatches"] = [] if p.get("release") else \
            router_check.mismatches(releases, servers, _owners(client), _endpoint_key)
    return result


def _owners(client) -> Dict[Tuple[str, int], Dict[str, Any]]:
    """(address, port) -> the managed container that holds it."""
    owners = {}
    for c in _load_all(client):
        labels = _labels(c)
        owner = {"app": labels.get(model.LABEL_APP), "release": labels.get(model.LABEL_RELEASE),
                 "slot": labels.get(model.LABEL_SLOT), "replica": int(labels.get(model.LABEL_REPLICA, 0)),
                 "container": c["Name"].lstrip("/")}
        address, dummy = _binding(c)
        for port in host_ports.bound_ports(c):
            owners[_endpoint_key(address, port)] = owner
    return owners


def _endpoint_key(address: Any, port: Any) -> Tuple[str, int]:
    """(address, port) with IP literals normalised, so '::1' in the router matches '0:0::1' in Docker."""
    text = str(address)
    try:
        text = str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        text = text.lower()
    return text, int(port)


def _check_router_options(p: Dict[str, Any]) -> None:
    kind = p.get("router_kind") or "haproxy"
    for wrong in ("router_upstream_file",) if kind == "haproxy" else ("router_socket", "router_backend"):
        if p.get(wrong):
            raise DeployError("Option '%s' does not apply to router_kind=%s; accepted: router_socket and "
                              "router_backend for haproxy, router_upstream_file for nginx." % (wrong, kind), option=wrong)


def _router_weights(p: Dict[str, Any],
                   servers: Optional[List[Dict[str, Any]]]) -> Optional[Dict[Tuple[str, int], int]]:
    """(address, port) -> weight of the router servers that take traffic; None without a router."""
    if (p.get("router_kind") or "haproxy") == "nginx":
        from ansible_collections.immutable.deploy.plugins.module_utils.nginx import active_weights, read_upstream
        dummy, upstream = read_upstream(p["router_upstream_file"], "router_upstream_file")
        weights: Dict[Tuple[str, int], int] = {}
        for key, weight in active_weights(upstream).items():
            weights[_endpoint_key(*key)] = weights.get(_endpoint_key(*key), 0) + weight
        return weights
    if servers is None:
        return None
    ready: Dict[Tuple[str, int], int] = {}
    for s in servers:
        if s.get("state") == "ready" and s.get("port") is not None:
            key = _endpoint_key(s.get("address"), s["port"])
            ready[key] = ready.get(key, 0) + int(s.get("weight") or 0)
    return ready


def _haproxy_servers(p: Dict[str, Any]) -> List[Dict[str, Any]]:
    try:
        from ansible_collections.immutable.deploy.plugins.module_utils.haproxy import Runtime
    except ImportError:
        raise DeployError("Option 'router_socket' needs the HAProxy runtime support "
                          "(plugins/module_utils/haproxy.py), which this installation lacks.", option="router_socket")
    try:
        return Runtime(p["router_socket"], p["router_timeout"]).servers(p["router_backend"])
    except DeployError as exc:
        raise DeployError("Reading HAProxy backend %r at router_socket %r failed: %s"
                          % (p["router_backend"], p["router_socket"], exc.msg), option="router_socket")
