# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Canary traffic at the edge: an ingress-nginx canary Ingress, or Gateway API HTTPRoute weights.

The split lives only in the objects the router reads (annotations, backendRef
weights), so any operator reads the same truth from the cluster. Every input is
checked before the first write; check mode is a server-side dry run of the same call.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError, invalid_option
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.client import Client
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.naming import LABEL_APP, LABEL_MANAGED, MANAGED_BY

NGINX = "nginx.ingress.kubernetes.io/"
ANN_CANARY = NGINX + "canary"
ANN_WEIGHT = NGINX + "canary-weight"
ANN_HEADER = NGINX + "canary-by-header"
ANN_HEADER_VALUE = NGINX + "canary-by-header-value"
ANN_COOKIE = NGINX + "canary-by-cookie"
ANN_CLASS = "kubernetes.io/ingress.class"  # pre-ingressClassName way to pick a controller
GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_VERSIONS = ("v1", "v1beta1")
HTTPROUTES = "httproutes"
DEFAULT_PATH = {"type": "PathPrefix", "value": "/"}

_TOKEN_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,256}$")  # RFC 7230 token
_VALUE_RE = re.compile(r"^[\x20-\x7e]{1,4096}$")
_DNS1035_RE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")  # Service names
_SUBDOMAIN_RE = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Split:
    """Validated routing request."""
    app: str
    namespace: str
    timeout: int
    service: str
    canary: str
    weight: int
    header: Optional[str]
    header_value: Optional[str]
    cookie: Optional[str]
    present: bool

    def weights(self) -> Dict[str, int]:
        share = self.weight if self.present else 0
        return {self.service: 100 - share, self.canary: share}


def validate(p: Dict[str, Any], strategy: str) -> Split:
    """Every input check, before any call to the cluster."""
    state = p.get("state") or "present"
    if state not in ("present", "absent"):
        raise invalid_option("state", state, "present or absent")
    app = p.get("app")
    if not isinstance(app, str) or not _LABEL_VALUE_RE.match(app):
        raise invalid_option("app", app, "a label value (letters, digits, '-', '_', '.', at most 63 characters)")
    service = p.get("service") or app
    canary = p.get("canary_service")
    for option, value in (("service", service), ("canary_service", canary)):
        if not isinstance(value, str) or not _DNS1035_RE.match(value):
            raise invalid_option(option, value, "the name of a Service in the namespace (a DNS-1035 label)")
    if canary == service:
        raise invalid_option("canary_service", canary, "a Service other than the stable one (%r)" % service)
    weight = p.get("weight")
    if weight is not None and (isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100):
        raise invalid_option("weight", weight, "an integer percentage from 0 to 100")
    header, value, cookie = p.get("header"), p.get("header_value"), p.get("cookie")
    if value is not None and header is None:
        raise invalid_option("header_value", value, "a value only together with option 'header'")
    if header is not None and (not isinstance(header, str) or not _TOKEN_RE.match(header)):
        raise invalid_option("header", header, "an HTTP header name (letters, digits and !#$%&'*+.^_`|~-)")
    if value is not None and (not isinstance(value, str) or not _VALUE_RE.match(value)):
        raise invalid_option("header_value", value, "1 to 4096 printable ASCII characters")
    if cookie is not None:
        if strategy == "gateway":
            raise invalid_option("cookie", cookie, "no cookie with strategy gateway (HTTPRoute has no cookie "
                                 "match); use header and header_value")
        if not isinstance(cookie, str) or not _TOKEN_RE.match(cookie):
            raise invalid_option("cookie", cookie, "a cookie name (letters, digits and !#$%&'*+.^_`|~-)")
    if state == "present" and weight is None and header is None and cookie is None:
        raise invalid_option("weight", weight, "a percentage from 0 to 100 (required unless header or cookie "
                             "routes requests to the canary)")
    return Split(app=app, namespace=p.get("namespace") or "default", timeout=p.get("request_timeout") or 30,
                 service=service, canary=canary, weight=weight or 0, header=header, header_value=value,
                 cookie=cookie, present=state == "present")


def _object_name(p: Dict[str, Any], option: str, strategy: str, suffix: str = "") -> str:
    name = p.get(option)
    if not isinstance(name, str) or not _SUBDOMAIN_RE.match(name + suffix):
        raise invalid_option(option, name, "the name of an existing object in the namespace (required with strategy "
                             "%s; a DNS subdomain of at most %d characters)" % (strategy, 253 - len(suffix)))
    return name


def _result(changed: bool, before: Dict[str, Any], after: Dict[str, Any], split: Split, **extra: Any) -> Dict[str, Any]:
    return dict(changed=changed, before=before, after=after, weights=split.weights(), **extra)


# -- ingress-nginx ---------------------------------------------------------------------------------
def canary_ingress(main: Dict[str, Any], split: Split, name: str) -> Dict[str, Any]:
    """The canary Ingress for `main`: its hosts/paths to the stable Service, sent to the canary."""
    spec = main.get("spec") or {}
    rules: List[Dict[str, Any]] = []
    for rule in spec.get("rules") or []:
        paths = []
        for path in (rule.get("http") or {}).get("paths") or []:
            backend = (path.get("backend") or {}).get("service") or {}
            if backend.get("name") != split.service:
                continue  # ingress-nginx matches host+path: other services' paths stay stable-only
            new = copy.deepcopy(path)
            new["backend"] = {"service": {"name": split.canary, "port": copy.deepcopy(backend.get("port") or {})}}
            paths.append(new)
        if paths:
            rules.append(dict({"host": rule["host"]} if rule.get("host") else {}, http={"paths": paths}))
    if not rules:
        raise invalid_option("service", split.service, "a Service that a path of Ingress %r routes to"
                             % main["metadata"]["name"])
    annotations = {ANN_CANARY: "true", ANN_WEIGHT: str(split.weight)}
    if split.header is not None:
        annotations[ANN_HEADER] = split.header
    if split.header_value is not None:
        annotations[ANN_HEADER_VALUE] = split.header_value
    if split.cookie is not None:
        annotations[ANN_COOKIE] = split.cookie
    main_class = (main["metadata"].get("annotations") or {}).get(ANN_CLASS)
    if main_class is not None:
        annotations[ANN_CLASS] = main_class
    canary_spec: Dict[str, Any] = {"rules": rules}
    if spec.get("ingressClassName"):
        canary_spec["ingressClassName"] = spec["ingressClassName"]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": split.namespace, "annotations": annotations,
                         "labels": {LABEL_APP: split.app, LABEL_MANAGED: MANAGED_BY}},
            "spec": canary_spec}


def _ours(key: str) -> bool:
    return key.startswith(NGINX + "canary") or key == ANN_CLASS


def ingress_view(obj: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """What diff mode shows: identity, labels, annotations and spec (no status or managedFields)."""
    if not obj:
        return {}
    meta = obj.get("metadata") or {}
    return {"metadata": {k: meta[k] for k in ("name", "namespace", "labels", "annotations") if meta.get(k)},
            "spec": obj.get("spec") or {}}


def _managed(view: Dict[str, Any]) -> Any:
    """The part of a canary Ingress we own; foreign labels/annotations are left as they are."""
    meta = view.get("metadata") or {}
    return ({k: v for k, v in (meta.get("labels") or {}).items() if k in (LABEL_APP, LABEL_MANAGED)},
            {k: v for k, v in (meta.get("annotations") or {}).items() if _ours(k)},
            view.get("spec") or {})


def ingress_patch(current: Dict[str, Any], desired: Dict[str, Any]) -> Dict[str, Any]:
    """A merge patch from current to desired: stale canary annotations and spec fields become null."""
    meta = current.get("metadata") or {}
    annotations: Dict[str, Any] = {k: None for k in meta.get("annotations") or {} if _ours(k)}
    annotations.update(desired["metadata"]["annotations"])
    spec: Dict[str, Any] = {k: None for k in current.get("spec") or {}}
    spec.update(desired["spec"])
    # resourceVersion makes the patch fail (409) if someone changed the object since we read it
    return {"metadata": {"labels": desired["metadata"]["labels"], "annotations": annotations,
                         "resourceVersion": meta.get("resourceVersion")}, "spec": spec}


def apply_ingress_canary(client: Client, p: Dict[str, Any], check_mode: bool) -> Dict[str, Any]:
    """Create, update or (state=absent) delete the ingress-nginx canary Ingress `<ingress>-canary`."""
    split = validate(p, "ingress_nginx")
    main_name = _object_name(p, "ingress", "ingress_nginx", "-canary")
    name = main_name + "-canary"
    ns = split.namespace
    main: Dict[str, Any] = {}
    if split.present:  # an abort must still clean up after the main Ingress is gone
        main = client.get("Ingress", main_name) or {}
        if not main:
            raise DeployError("Option 'ingress': Ingress %r not found in namespace %r. Accepted: the name of the "
                              "existing main (stable) Ingress." % (main_name, ns), option="ingress")
        if (main["metadata"].get("annotations") or {}).get(ANN_CANARY) == "true":
            raise invalid_option("ingress", main_name, "the main Ingress, not a canary one")
    current = client.get("Ingress", name) or {}
    if current and (current["metadata"].get("labels") or {}).get(LABEL_MANAGED) != MANAGED_BY:
        raise DeployError("Ingress %r in namespace %r exists but is not managed by immutable.deploy (label %s); "
                          "refusing to change it. Remove or rename it, or choose another option 'ingress'."
                          % (name, ns, LABEL_MANAGED), option="ingress")
    before = ingress_view(current)
    extra = dict(canary_ingress=name)
    if not split.present:
        if not current:
            return _result(False, {}, {}, split, **extra)
        client.delete("Ingress", name, dry_run=check_mode)
        return _result(True, before, {}, split, **extra)
    desired = canary_ingress(main, split, name)
    if current and _managed(before) == _managed(ingress_view(desired)):
        return _result(False, before, before, split, **extra)
    if current:
        obj = client.patch("Ingress", name, ingress_patch(current, desired), dry_run=check_mode, merge=True,
                           what="Updating Ingress %s/%s" % (ns, name))
    else:
        obj = client.create("Ingress", desired, dry_run=check_mode) or {}
    return _result(True, before, ingress_view(obj), split, **extra)


# -- Gateway API -----------------------------------------------------------------------------------
def _is_service(ref: Dict[str, Any], name: str, namespace: str) -> bool:
    return (ref.get("name") == name and ref.get("group") in (None, "") and ref.get("kind") in (None, "Service")
            and ref.get("namespace") in (None, namespace))


def is_header_rule(rule: Dict[str, Any], split: Split) -> bool:
    """Our header rule: every match tests a header and every backend is the canary Service."""
    refs, matches = rule.get("backendRefs") or [], rule.get("matches") or []
    return (bool(refs) and bool(matches) and all(_is_service(r, split.canary, split.namespace) for r in refs)
            and all(m.get("headers") for m in matches))


def _header_rule(rule: Dict[str, Any], split: Split) -> Dict[str, Any]:
    """A copy of a weighted rule whose matches also require the header, sending only to the canary.

    Gateway API picks the most specific match, not the first rule: the same path plus a
    header always outranks the weighted rule's own match.
    """
    new = {k: copy.deepcopy(v) for k, v in rule.items() if k not in ("backendRefs", "matches", "name")}
    matches = copy.deepcopy(rule.get("matches") or [{"path": dict(DEFAULT_PATH)}])
    for match in matches:
        headers = [h for h in match.get("headers") or [] if str(h.get("name", "")).lower() != split.header.lower()]
        # ingress-nginx routes a bare canary-by-header on the value "always": mirror that
        headers.append({"type": "Exact", "name": split.header, "value": split.header_value or "always"})
        match["headers"] = headers
    new["matches"] = matches
    new["backendRefs"] = [dict(copy.deepcopy(rule["backendRefs"][1]), weight=1)]
    return new


def route_rules(rules: List[Dict[str, Any]], split: Split, route: str) -> List[Dict[str, Any]]:
    """The HTTPRoute rules after the change; rules without our two Services are kept as they are."""
    weighted: List[Dict[str, Any]] = []
    out: List[Dict[str, Any]] = []
    for rule in rules:
        if is_header_rule(rule, split):
            continue  # rebuilt below when still wanted
        refs = rule.get("backendRefs") or []
        stable = [r for r in refs if _is_service(r, split.service, split.namespace)]
        canary = [r for r in refs if _is_service(r, split.canary, split.namespace)]
        if not stable and not canary or not split.present and not canary:
            out.append(rule)  # not ours, or never split: untouched
            continue
        others = sorted({str(r.get("name")) for r in refs if r not in stable and r not in canary})
        if others:
            raise DeployError("HTTPRoute %r: a rule sends traffic to %s besides Services %r/%r; refusing to drop "
                              "those backends. Move them to a rule of their own (option 'httproute')."
                              % (route, ", ".join(others), split.service, split.canary), option="httproute")
        base = (stable or canary)[0]  # the stable ref's port (and namespace) serve both Services
        new = copy.deepcopy(rule)
        if split.present:
            new["backendRefs"] = [dict(copy.deepcopy(base), name=split.service, weight=100 - split.weight),
                                  dict(copy.deepcopy(base), name=split.canary, weight=split.weight)]
            weighted.append(new)
        else:
            new["backendRefs"] = [dict(copy.deepcopy(base), name=split.service, weight=100)]
        out.append(new)
    if split.present and not weighted:
        raise invalid_option("service", split.service, "a Service that a backendRef of HTTPRoute %r names" % route)
    if split.present and split.header is not None:
        out = [_header_rule(rule, split) for rule in weighted] + out
    return out


def _norm_match(match: Dict[str, Any]) -> Dict[str, Any]:
    match = copy.deepcopy(match)
    match["path"] = dict(DEFAULT_PATH, **(match.get("path") or {}))
    for key in ("headers", "queryParams"):
        match[key] = [dict({"type": "Exact"}, **h) for h in match.get(key) or []]
    return match


def normalize_rules(rules: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Rules with the CRD's defaults filled in, so a defaulting server never looks like a change."""
    out = []
    for rule in rules:
        rule = copy.deepcopy(rule)
        rule["matches"] = [_norm_match(m) for m in rule.get("matches") or [{}]]
        rule["backendRefs"] = [dict({"group": "", "kind": "Service", "weight": 1}, **r)
                               for r in rule.get("backendRefs") or []]
        out.append(rule)
    return out


def _route_view(obj: Dict[str, Any]) -> Dict[str, Any]:
    meta = obj.get("metadata") or {}
    return {"apiVersion": obj.get("apiVersion"), "metadata": {"name": meta.get("name"),
            "namespace": meta.get("namespace")}, "spec": obj.get("spec") or {}}


def gateway_version(client: Client) -> str:
    """The served Gateway API version that has httproutes (v1 first), or a clear error."""
    seen = []
    for version in GATEWAY_VERSIONS:
        found = client.served_resources(GATEWAY_GROUP, version)
        if found is not None and HTTPROUTES in found:
            return version
        seen.append("%s/%s %s" % (GATEWAY_GROUP, version, "is not served" if found is None else "has no httproutes"))
    raise DeployError("Gateway API is not installed on this cluster (no %s.%s): %s. Install the Gateway API CRDs "
                      "(HTTPRoute v1 or v1beta1) or choose another option 'strategy'."
                      % (HTTPROUTES, GATEWAY_GROUP, "; ".join(seen)), option="strategy")


def apply_httproute_weights(client: Client, p: Dict[str, Any], check_mode: bool) -> Dict[str, Any]:
    """Set the stable/canary backendRef weights (and the header rule) of an existing HTTPRoute in one patch."""
    split = validate(p, "gateway")
    name = _object_name(p, "httproute", "gateway")
    version = gateway_version(client)
    ns = split.namespace
    route = client.get_custom(GATEWAY_GROUP, version, HTTPROUTES, name)
    if route is None:
        raise DeployError("Option 'httproute': HTTPRoute %r not found in namespace %r. Accepted: the name of an "
                          "existing HTTPRoute that routes to Service %r." % (name, ns, split.service),
                          option="httproute")
    rules = (route.get("spec") or {}).get("rules") or []
    new_rules = route_rules(rules, split, name)
    before = _route_view(route)
    extra = dict(httproute=name, api_version="%s/%s" % (GATEWAY_GROUP, version))
    if normalize_rules(rules) == normalize_rules(new_rules):
        return _result(False, before, before, split, **extra)
    body = {"metadata": {"resourceVersion": route["metadata"].get("resourceVersion")}, "spec": {"rules": new_rules}}
    obj = client.patch_custom(GATEWAY_GROUP, version, HTTPROUTES, name, body, dry_run=check_mode)
    return _result(True, before, _route_view(obj), split, **extra)
