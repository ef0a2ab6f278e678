from __future__ import annotations

import json

import pytest

from ansible_collections.immutable.deploy.plugins.module_utils import release as model
from ansible_collections.immutable.deploy.plugins.module_utils.docker import releases as reading
from ansible_collections.immutable.deploy.plugins.module_utils.docker import spec as dspec
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError

DIGEST = "sha256:" + "b" * 64


def params(**overrides):
    p = {"slot": "blue", "replicas": 2, "container_port": 8080, "published_ports": None,
         "bind_address": "127.0.0.1", "env": {"A": "1"}, "secret_env": {"TOKEN": "hunter2"}, "command": None,
         "restart_policy": "unless-stopped", "memory": None, "cpus": None, "labels": {}, "healthcheck": None}
    p.update(overrides)
    return p


@pytest.mark.parametrize("app", ["web", "shop-web", "a1", "x" * 40])
def test_valid_apps(app):
    assert model.validate_app(app) == app


@pytest.mark.parametrize("app", ["", "w", "Web", "web_", "-web", "web-", "1web", "we--b", "x" * 41, None, "web.x"])
def test_invalid_apps_name_the_option(app):
    with pytest.raises(DeployError) as err:
        model.validate_app(app)
    assert "'app'" in err.value.msg and repr(app) in err.value.msg


@pytest.mark.parametrize("rid", ["1.4.2", "2026.11.26-abc1234", "v1", "1_0"])
def test_valid_releases(rid):
    assert model.validate_release(rid) == rid


@pytest.mark.parametrize("rid", ["", ".1", "-1", "1.0+build", "a/b", "x" * 64, "1 0"])
def test_invalid_releases(rid):
    with pytest.raises(DeployError, match="'release'"):
        model.validate_release(rid)


def test_slots():
    assert model.validate_slot("green") == "green" and model.validate_slot("amber") == "amber"
    with pytest.raises(DeployError, match="blue, green or amber"):
        model.validate_slot("purple")


def test_container_name():
    assert dspec.container_name("web", "1.4.2", 3) == "web-1.4.2-3"


@pytest.mark.parametrize("text,expected", [("256m", 256 * 1024 ** 2), ("1g", 1024 ** 3), ("512K", 512 * 1024),
                                           ("1000", 1000), (None, None)])
def test_parse_memory(text, expected):
    assert dspec.parse_memory(text) == expected


@pytest.mark.parametrize("text", ["0", "12x", "-1m", "1.5g"])
def test_parse_memory_rejects(text):
    with pytest.raises(DeployError, match="'memory'"):
        dspec.parse_memory(text)


def test_spec_is_normalized_and_stable():
    a = dspec.normalize_spec(params(env={"B": 2, "A": True}), DIGEST)
    b = dspec.normalize_spec(params(env={"A": "true", "B": "2"}), DIGEST)
    assert a["env"] == {"A": "true", "B": "2"}
    assert model.spec_hash(a) == model.spec_hash(b)
    assert a["restart_policy"] == "unless-stopped" and a["published_ports"] is None


def test_secret_values_never_in_spec_or_labels():
    spec = dspec.normalize_spec(params(), DIGEST)
    labels = dspec.labels_for("web", "1.0", spec, "img@" + DIGEST, "2026-01-01T00:00:00.000000Z", 1)
    assert "hunter2" not in json.dumps(spec) and "hunter2" not in json.dumps(labels)
    other = dspec.normalize_spec(params(secret_env={"TOKEN": "other"}), DIGEST)
    assert model.spec_hash(spec) != model.spec_hash(other)
    assert model.differing_fields(labels[dspec.LABEL_SPEC_FIELDS], other, dspec.SPEC_FIELDS) == ["secret_env"]


def test_labels():
    spec = dspec.normalize_spec(params(labels={"team": "shop"}), DIGEST)
    labels = dspec.labels_for("web", "1.0", spec, "img@" + DIGEST, "2026-01-01T00:00:00.000000Z", 2)
    assert labels["team"] == "shop"
    assert labels[dspec.LABEL_APP] == "web" and labels[dspec.LABEL_RELEASE] == "1.0"
    assert labels[dspec.LABEL_SLOT] == "blue" and labels[dspec.LABEL_DIGEST] == DIGEST
    assert labels[dspec.LABEL_REPLICA] == "2" and labels[dspec.LABEL_REPLICAS] == "2"
    assert labels[dspec.LABEL_SPEC] == model.spec_hash(spec)
    assert all(k.startswith("io.immutable-deploy.") for k in labels if k != "team")


@pytest.mark.parametrize("change,fields", [
    ({"slot": "green"}, ["slot"]),
    ({"replicas": 3}, ["replicas"]),
    ({"env": {"A": "2"}, "memory": "64m"}, ["env", "memory"]),
    ({}, []),
])
def test_differing_fields_names_what_differs(change, fields):
    spec = dspec.normalize_spec(params(), DIGEST)
    label = model.spec_fields(spec, dspec.SPEC_FIELDS)
    assert model.differing_fields(label, dspec.normalize_spec(params(**change), DIGEST), dspec.SPEC_FIELDS) == fields


def test_differing_fields_digest_and_unknown_label():
    spec = dspec.normalize_spec(params(), DIGEST)
    other = dspec.normalize_spec(params(), "sha256:" + "c" * 64)
    assert model.differing_fields(model.spec_fields(spec, dspec.SPEC_FIELDS), other, dspec.SPEC_FIELDS) == ["digest"]
    assert model.differing_fields("not json", spec, dspec.SPEC_FIELDS) == list(dspec.SPEC_FIELDS)


@pytest.mark.parametrize("overrides,fragment", [
    ({"replicas": 0}, "'replicas'"),
    ({"container_port": 70000}, "'container_port'"),
    ({"published_ports": [8001]}, "'published_ports'"),
    ({"published_ports": [8001, 8001]}, "'published_ports'"),
    ({"published_ports": [8001, 8002], "container_port": None}, "needs container_port"),
    ({"labels": {"io.immutable-deploy.app": "x"}}, "'labels'"),
    ({"env": {"TOKEN": "x"}}, "'env'"),
    ({"env": {"A": {"nested": 1}}}, "'env.A'"),
    ({"cpus": 0}, "'cpus'"),
    ({"slot": "red"}, "'slot'"),
    ({"healthcheck": {"type": "cmd"}}, "healthcheck.command"),
    ({"healthcheck": {"type": "http", "path": "health"}}, "'healthcheck.path'"),
    ({"healthcheck": {"type": "http"}, "container_port": None}, "healthcheck.port"),
    ({"healthcheck": {"type": "http", "interval": 0}}, "'healthcheck.interval'"),
])
def test_spec_errors_name_the_option(overrides, fragment):
    with pytest.raises(DeployError) as err:
        dspec.normalize_spec(params(**overrides), DIGEST)
    assert fragment in err.value.msg


def test_healthcheck_http_uses_busybox_wget():
    hc = dspec.normalize_healthcheck({"type": "http", "path": "/health", "interval": 2}, 8080)
    assert hc["test"] == ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]
    assert (hc["interval"], hc["timeout"], hc["retries"], hc["start_period"]) == (2, 3, 3, 0)
    cmd = dspec.normalize_healthcheck({"type": "cmd", "command": ["/bin/check", 1]}, None)
    assert cmd["test"] == ["CMD", "/bin/check", "1"]
    assert dspec.normalize_healthcheck(None, 8080) is None


@pytest.mark.parametrize("status,health,expected", [
    ("running", None, "healthy"), ("running", "starting", "starting"), ("running", "unhealthy", "unhealthy"),
    ("exited", "healthy", "stopped"), ("created", None, "stopped"), ("restarting", None, "unhealthy"),
])
def test_container_health(status, health, expected):
    assert reading.container_health(status, health) == expected


@pytest.mark.parametrize("replicas,healths,state,overall", [
    (2, ["healthy", "healthy"], "running", "healthy"),
    (2, ["healthy", "starting"], "running", "starting"),
    (2, ["healthy", "unhealthy"], "running", "unhealthy"),
    (2, ["stopped", "stopped"], "stopped", "stopped"),
    (2, ["healthy", "stopped"], "partial", "unhealthy"),
    (2, ["healthy"], "partial", "unhealthy"),
    (2, ["stopped"], "partial", "unhealthy"),
])
def test_release_state_and_overall_health(replicas, healths, state, overall):
    assert reading.release_state(replicas, healths) == state
    assert reading.overall_health(replicas, healths) == overall
