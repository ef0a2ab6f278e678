# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A release on Kubernetes: one Deployment per release id, digest-pinned, never patched.

Reading an app's releases (and what its Services send them), creating, scaling and
removing one release with its ConfigMaps and Secret, and waiting for its rollout.
What a release is made of is decided in spec.py; rollout rules in rollout.py. Only
the size of a release may change (scaling is not content).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from ansible_collections.immutable.deploy.plugins.module_utils import release as model
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError
from ansible_collections.immutable.deploy.plugins.module_utils.images.resolve import resolve_image
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import endpoints as ke
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import lease
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import naming as kn
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import rollout
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import spec as ks
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.client import Client
from ansible_collections.immutable.deploy.plugins.module_utils.waiting import utc_now

MAX_REPLICAS = 100


# -- views (pure) -----------------------------------------------------------------------------------
def _facts(dep: Dict[str, Any]) -> Dict[str, Any]:
    """What every view of a release says: identity, content, size."""
    meta = dep.get("metadata") or {}
    labels, ann = meta.get("labels") or {}, meta.get("annotations") or {}
    spec = dep.get("spec") or {}
    replicas = kn.as_int(spec.get("replicas"), 1)
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or [{}]
    return {"id": labels.get(kn.LABEL_RELEASE), "name": meta.get("name"), "slot": labels.get(kn.LABEL_SLOT),
            "digest": ann.get(kn.ANN_DIGEST), "image": ann.get(kn.ANN_IMAGE) or containers[0].get("image"),
            "replicas": replicas, "full_replicas": kn.as_int(ann.get(kn.ANN_REPLICAS), replicas),
            "ready_replicas": kn.as_int((dep.get("status") or {}).get("readyReplicas")),
            "created": ann.get(kn.ANN_CREATED) or meta.get("creationTimestamp")}


def release_view(deployment: Dict[str, Any], pods: List[Dict[str, Any]]) -> Dict[str, Any]:
    """A release as k8s_release_info lists it: running (all wanted replicas ready), partial or stopped."""
    out = _facts(deployment)
    if out["replicas"] == 0:
        out["state"] = "stopped"
    else:
        out["state"] = "running" if out["ready_replicas"] == out["replicas"] else "partial"
    out["health"] = rollout.health(deployment, pods)
    ann = (deployment.get("metadata") or {}).get("annotations") or {}
    # A canary in progress (its record) and the end of a warm window after a promote.
    out["canary"] = kn.canary_record(ann.get(kn.ANN_CANARY))
    out["scale_down_at"] = ann.get(kn.ANN_SCALE_DOWN_AT)
    return out


def view(app: str, release_id: str, namespace: str, dep: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """A release as k8s_release returns it: its full size, config objects and rollout (absent when none)."""
    name = kn.object_name(app, release_id)
    if not dep:
        return {"app": app, "id": release_id, "name": name, "namespace": namespace, "slot": None, "digest": None,
                "image": None, "replicas": 0, "ready_replicas": 0, "created": None, "spec_hash": None,
                "configmaps": [], "secrets": [], "state": "absent"}
    facts = _facts(dep)
    maps, secrets = ks.config_names(dep)
    done = rollout.rollout(dep)[0] if dep.get("status") is not None else False
    ann = (dep.get("metadata") or {}).get("annotations") or {}
    return {"app": app, "id": release_id, "name": name, "namespace": namespace, "slot": facts["slot"],
            "digest": facts["digest"], "image": ann.get(kn.ANN_IMAGE), "replicas": facts["full_replicas"],
            "ready_replicas": facts["ready_replicas"], "created": ann.get(kn.ANN_CREATED),
            "spec_hash": ann.get(kn.ANN_SPEC), "configmaps": maps, "secrets": secrets,
            "state": "ready" if done else "progressing"}


def summary(v: Dict[str, Any]) -> Dict[str, Any]:
    """What diff mode shows: identity and content hashes, never a value."""
    if v["state"] == "absent":
        return {"state": "absent"}
    keys = ("name", "slot", "digest", "image", "replicas", "spec_hash", "configmaps", "secrets")
    return dict({k: v[k] for k in keys}, state="present")


def validate_names(p: Dict[str, Any], *options: str) -> None:
    model.validate_app(p["app"])
    for option in options:
        if p.get(option) is not None:
            try:
                model.validate_release(p[option])
            except DeployError as exc:
                raise DeployError(exc.msg.replace("option 'release'", "option '%s'" % option), option=option)


# -- reading the cluster -------------------------------------------------------------------------------
class Releases:
    """The releases of apps in one namespace, read through the one client."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.ns = client.ns

    def deployments(self, app: str) -> List[Dict[str, Any]]:
        return self.client.list("Deployment", kn.label_selector({kn.LABEL_APP: app}))

    def pods(self, app: str, release: Optional[str] = None) -> List[Dict[str, Any]]:
        return self.client.list("Pod", kn.label_selector(kn.selector_for(app, release)))

    def events(self, pod: str) -> List[Dict[str, Any]]:
        return self.client.list("Event", field_selector="involvedObject.name=%s" % pod)

    def deployment(self, app: str, release: str) -> Optional[Dict[str, Any]]:
        """The release's Deployment, None when absent (or when the name belongs to another release)."""
        dep = self.client.get("Deployment", kn.object_name(app, release))
        labels = ((dep or {}).get("metadata") or {}).get("labels") or {}
        if dep is None or labels.get(kn.LABEL_APP) != app or labels.get(kn.LABEL_RELEASE) != release:
            return None
        return dep

    def existing(self, app: str, release: str, option: str = "release") -> Dict[str, Any]:
        """The Deployment of a release that must exist, else an error listing the releases there."""
        dep = self.deployment(app, release)
        if dep is None:
            ids = sorted(((d.get("metadata") or {}).get("labels") or {}).get(kn.LABEL_RELEASE, "?")
                         for d in self.deployments(app))
            raise DeployError("Option '%s': release %r of app %r does not exist in namespace %s (no Deployment %s "
                              "labelled with it). Releases there: %s."
                              % (option, release, app, self.ns, kn.object_name(app, release), ", ".join(ids) or "none"),
                              option=option)
        return dep

    def service(self, name: str) -> Optional[Dict[str, Any]]:
        return self.client.get("Service", name)

    def endpoints(self, name: str) -> Optional[Dict[str, Any]]:
        return self.client.get("Endpoints", name)


def info(p: Dict[str, Any]) -> Dict[str, Any]:
    validate_names(p, "release")
    app = p["app"]
    service_name = p.get("service") or app
    preview_name = p.get("preview_service") or "%s-preview" % app
    client = Client(p)
    client.require_namespace()
    cluster = Releases(client)
    deployments = [d for d in cluster.deployments(app)
                   if kn.LABEL_RELEASE in ((d.get("metadata") or {}).get("labels") or {})]
    pods = cluster.pods(app)
    pods_by_release: Dict[str, List[Dict[str, Any]]] = {}
    for pod in pods:
        rel = ((pod.get("metadata") or {}).get("labels") or {}).get(kn.LABEL_RELEASE, "")
        pods_by_release.setdefault(rel, []).append(pod)
    releases = [release_view(dep, pods_by_release.get(dep["metadata"]["labels"][kn.LABEL_RELEASE], []))
                for dep in deployments]
    releases.sort(key=lambda r: (r["created"] or "", r["name"] or ""), reverse=True)

    service = cluster.service(service_name)
    mode, selected = ke.service_mode(service, app)
    ready_by_release: Dict[str, int] = {}
    if mode == "app":
        endpoints = cluster.endpoints(service_name)
        if endpoints is not None:
            ready_by_release = ke.classify_endpoints(endpoints, ke.pod_releases(pods))["by_release"]
        else:  # the endpoints controller has not written it yet: ready pods are what it will list
            for rel, group in pods_by_release.items():
                ready_by_release[rel] = sum(1 for pod in group if rollout.pod_ready(pod))
    weights = ke.traffic([r["id"] for r in releases], mode, selected, ready_by_release)
    preview = cluster.service(preview_name)
    preview_mode, preview_release = ke.service_mode(preview, app)
    for rel in releases:
        rel.update(weights[rel["id"]])
        rel["preview"] = preview_mode == "release" and preview_release == rel["id"]
    if p.get("release") is not None:
        releases = [r for r in releases if r["id"] == p["release"]]
    return {"changed": False, "releases": releases, "service": ke.service_view(service_name, service, app),
            "preview_service": ke.service_view(preview_name, preview, app)}


# -- changing one release --------------------------------------------------------------------------------
def _create_config(client: Client, obj: Dict[str, Any], app: str, release_id: str, dry: bool) -> bool:
    """Create one ConfigMap/Secret; False when it already exists with this very content (a rerun)."""
    kind = obj["body"]["kind"]
    if client.create(kind, obj["body"], dry_run=dry, exists_ok=True) is not None:
        return True
    found = client.get(kind, obj["name"], missing_ok=False) or {}
    labels = (found.get("metadata") or {}).get("labels") or {}
    if labels.get(kn.LABEL_APP) == app and labels.get(kn.LABEL_RELEASE) == release_id \
            and (found.get("data") or {}) == obj["body"]["data"]:
        return False
    raise DeployError("%s %s already exists with other content or for another release; it is named by the hash of "
                      "its content, so remove the stray object. Nothing was changed." % (kind, obj["name"]),
                      option="app")


def _create(client: Client, app: str, release_id: str, spec: Dict[str, Any], image: str, replicas: int,
            configs: List[Dict[str, Any]], p: Dict[str, Any], dry: bool) -> Dict[str, Any]:
    created: List[Dict[str, Any]] = []
    try:
        for obj in configs:
            if _create_config(client, obj, app, release_id, dry):
                created.append(obj)
        body = ks.deployment_body(app, release_id, spec, image, replicas, utc_now(), configs,
                                  ks.option_int("progress_deadline_seconds", p.get("progress_deadline_seconds", 120), 1))
        return client.create("Deployment", body, dry_run=dry) or {}
    except DeployError as exc:
        if dry or not created:
            raise
        for obj in created:  # best effort: the objects of a release that was never created
            try:
                client.delete(obj["body"]["kind"], obj["name"])
            except DeployError:
                pass
        raise DeployError(exc.msg + " The ConfigMaps/Secret created for it were removed again.", **exc.details)


def _scale(client: Client, dep: Dict[str, Any], spec: Dict[str, Any], replicas: int, dry: bool) -> Dict[str, Any]:
    """Change only the size (and the recorded size); the test op refuses a Deployment replaced meanwhile."""
    name = dep["metadata"]["name"]
    patch = [{"op": "test", "path": "/metadata/annotations/" + kn.ANN_SPEC.replace("/", "~1"),
              "value": model.spec_hash(spec)},
             {"op": "replace", "path": "/spec/replicas", "value": replicas},
             {"op": "add", "path": "/metadata/annotations/" + kn.ANN_REPLICAS.replace("/", "~1"),
              "value": str(replicas)}]
    return client.patch("Deployment", name, patch, dry_run=dry, what="Scaling Deployment %s" % name)


def _wait(cluster: Releases, app: str, release_id: str, p: Dict[str, Any]) -> Dict[str, Any]:
    name = kn.object_name(app, release_id)

    def read() -> Dict[str, Any]:
        return cluster.client.get("Deployment", name) or {}
    report = rollout.wait_rollout(read, lambda: cluster.pods(app, release_id), cluster.events,
                                  p.get("wait_timeout", 120))
    dep = read()
    if report is None:
        return dep
    how = "failed" if report["why"] == "failed" else "did not become ready within wait_timeout %ss" % p["wait_timeout"]
    raise DeployError(
        "Release %r of app %r (Deployment %s in namespace %s) %s (%s): %s. The Deployment was left in place with its "
        "ConfigMaps/Secret for inspection; the strategy decides whether to retire it (state: absent)."
        % (release_id, app, name, cluster.ns, how, report["summary"], rollout.failure_text(report)),
        pods=report["pods"], why=report["why"], release=view(app, release_id, cluster.ns, dep or None))


def _remove(cluster: Releases, app: str, release_id: str, dep: Optional[Dict[str, Any]], p: Dict[str, Any],
            check_mode: bool) -> Dict[str, Any]:
    client = cluster.client
    labels = ((dep or {}).get("metadata") or {}).get("labels") or {}
    if dep and labels.get(kn.LABEL_MANAGED) == kn.MANAGED_BY and labels.get(kn.LABEL_APP) == app \
            and labels.get(kn.LABEL_RELEASE) != release_id:
        dep = None  # the name holds another release (a clash of ids): this one is not there
    ks.check_owner(dep, app, release_id)
    name = kn.object_name(app, release_id)
    selector = kn.label_selector(dict(kn.selector_for(app, release_id), **{kn.LABEL_MANAGED: kn.MANAGED_BY}))
    # Also the leftovers of a release whose Deployment is already gone.
    maps = [m["metadata"]["name"] for m in client.list("ConfigMap", selector)]
    secrets = [s["metadata"]["name"] for s in client.list("Secret", selector)]
    before = summary(view(app, release_id, cluster.ns, dep))
    if maps or secrets:
        before.update(configmaps=sorted(maps), secrets=sorted(secrets))
    if dep:
        client.delete("Deployment", name, dry_run=check_mode, background=True)
    for kind, names in (("ConfigMap", maps), ("Secret", secrets)):
        for obj in names:
            client.delete(kind, obj, dry_run=check_mode)
    if dep and p.get("wait", True) and not check_mode:
        left = rollout.wait_gone(lambda: cluster.pods(app, release_id), p.get("wait_timeout", 120))
        if left:
            raise DeployError("Deployment %s was deleted but %d pod(s) are still terminating after wait_timeout %ss: "
                              "%s." % (name, len(left), p["wait_timeout"], ", ".join(left)), pods=left)
    return {"changed": bool(dep or maps or secrets), "release": view(app, release_id, cluster.ns, None),
            "diff": {"before": before, "after": {"state": "absent"}}}


def ensure(p: Dict[str, Any], check_mode: bool) -> Dict[str, Any]:
    app = model.validate_app(p["app"])
    release_id = ks.validate_release_id(p["release"])
    present = p.get("state", "present") == "present"
    replicas = 0
    if present:
        for option in ("slot", "image"):
            if not p.get(option):
                raise DeployError("Option '%s' is required with state=present." % option, option=option)
        # Every input is checked before connecting, and so before any write.
        ks.normalize_spec(p, ks.check_image_syntax(p))
        replicas = ks.option_int("replicas", p.get("replicas", 1), 0, MAX_REPLICAS)
        ks.option_int("progress_deadline_seconds", p.get("progress_deadline_seconds", 120), 1)
    ks.option_int("wait_timeout", p.get("wait_timeout", 120), 0)
    client = Client(p)
    client.require_namespace()
    # The deploy lock (when given) is held, and renewed from a thread, through the wait for readiness.
    with lease.holding(p, p.get("lock"), check_mode, client):
        return _ensure(client, p, app, release_id, present, replicas, check_mode)


def _ensure(client: Client, p: Dict[str, Any], app: str, release_id: str, present: bool, replicas: int,
            check_mode: bool) -> Dict[str, Any]:
    cluster = Releases(client)
    dep = client.get("Deployment", kn.object_name(app, release_id))
    if not present:
        return _remove(cluster, app, release_id, dep, p, check_mode)

    ks.check_owner(dep, app, release_id)
    image, digest = resolve_image(p)
    spec = ks.normalize_spec(p, digest)
    before = view(app, release_id, client.ns, dep)
    if dep:
        ks.check_same_spec(dep, app, release_id, spec)
        # Compared with the recorded size, so a Deployment a canary scaled is left as the canary set it.
        changed = before["replicas"] != replicas
        if changed:
            dep = _scale(client, dep, spec, replicas, check_mode)
    else:
        changed = True
        configs = ks.config_objects(app, release_id, spec, ks.secret_values(p))
        dep = _create(client, app, release_id, spec, image, replicas, configs, p, check_mode)
    if p.get("wait", True) and not check_mode:
        dep = _wait(cluster, app, release_id, p)
    after = view(app, release_id, client.ns, dep)
    return {"changed": changed, "release": after, "diff": {"before": summary(before), "after": summary(after)}}
