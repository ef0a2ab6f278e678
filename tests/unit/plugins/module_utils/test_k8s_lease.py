"""The app's Lease lock (k8s/lease.py) over a fake API that keeps one Lease with resourceVersions."""
from __future__ import annotations

import copy

import pytest

from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import lease as kl


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeLeases:
    """get / create / patch of Leases as the API server does them: a merge patch carrying a
    resourceVersion is refused with 409 when it is stale; a JSON patch test op fails with 422."""

    def __init__(self) -> None:
        self.ns, self.timeout, self.objects, self.version, self.writes = "ns", 5, {}, 0, []

    def _store(self, obj):
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.objects[obj["metadata"]["name"]] = obj
        return copy.deepcopy(obj)

    def get(self, kind, name, missing_ok=True):
        return copy.deepcopy(self.objects.get(name))

    def create(self, kind, body, dry_run=False, exists_ok=False):
        if body["metadata"]["name"] in self.objects:
            return None
        self.writes.append(("create", body["spec"].get("holderIdentity")))
        return self._store(copy.deepcopy(body))

    def patch(self, kind, name, body, dry_run=False, what=None, merge=False):
        obj = copy.deepcopy(self.objects[name])
        if merge:
            wanted = (body.get("metadata") or {}).get("resourceVersion")
            if wanted and wanted != obj["metadata"]["resourceVersion"]:
                raise DeployError("conflict", status=409)
            obj["metadata"].setdefault("annotations", {}).update((body.get("metadata") or {}).get("annotations") or {})
            for key, value in (body.get("spec") or {}).items():
                if value is None:
                    obj["spec"].pop(key, None)
                else:
                    obj["spec"][key] = value
        else:
            for op in body:
                key = op["path"].rsplit("/", 1)[1]
                if op["op"] == "test" and obj["spec"].get(key) != op["value"]:
                    raise DeployError("test failed", status=422)
                if op["op"] in ("add", "replace"):
                    obj["spec"][key] = op["value"]
                if op["op"] == "remove":
                    del obj["spec"][key]
        if dry_run:
            return obj
        self.writes.append(("patch", obj["spec"].get("holderIdentity")))
        return self._store(obj)


def lock(api, owner, clock, seconds=10):
    return kl.LeaseLock(api, "web", owner, "deploy of %s" % owner, seconds, clock=clock)


def test_second_owner_is_told_who_holds_it_and_until_when():
    api, clock = FakeLeases(), Clock()
    got = lock(api, "run-a", clock).acquire()
    assert got["taken"] and got["lock"]["owner"] == "run-a" and got["lease"] == "ns/web-deploy-lock"
    clock.now += 4
    with pytest.raises(DeployError) as err:
        lock(api, "run-b", clock).acquire()
    assert "is locked by run-a" in err.value.msg and "(deploy of run-a)" in err.value.msg
    assert "expires in 6 s" in err.value.msg and err.value.details["lock"]["owner"] == "run-a"
    assert api.objects["web-deploy-lock"]["spec"]["holderIdentity"] == "run-a"


def test_own_lock_is_renewed_not_retaken_and_an_expired_one_is_taken_over_without_break_lock():
    api, clock = FakeLeases(), Clock()
    a = lock(api, "run-a", clock)
    a.acquire()
    clock.now += 8
    again = a.acquire()
    assert not again["changed"] and not again["taken"] and again["lock"]["expires_in"] == 10.0
    clock.now += 10.5  # run-a died: nobody renewed it
    b = lock(api, "run-b", clock).acquire()
    assert b["taken"] and b["expired_holder"]["owner"] == "run-a" and b["broken"] is None
    assert api.objects["web-deploy-lock"]["spec"]["leaseTransitions"] == 1
    with pytest.raises(DeployError) as err:  # run-a comes back: it lost the lock and must stop
        a.renew()
    assert err.value.details["lost"] and "now held by run-b" in err.value.msg


def test_break_lock_takes_a_live_lock_and_release_is_for_the_holder_only():
    api, clock = FakeLeases(), Clock()
    lock(api, "run-a", clock).acquire()
    b = lock(api, "run-b", clock)
    got = b.acquire(break_lock=True)
    assert got["broken"]["owner"] == "run-a"
    with pytest.raises(DeployError, match="held by run-b, not run-a"):
        lock(api, "run-a", clock).release()
    assert b.release()["changed"] and kl.holder(api.objects["web-deploy-lock"], clock()) is None
    assert not b.release()["changed"]


def test_a_race_lost_between_read_and_write_is_read_again():
    api, clock = FakeLeases(), Clock()
    lock(api, "run-a", clock).acquire()
    lock(api, "run-a", clock).release()
    b = lock(api, "run-b", clock)
    real_get = api.get

    def get_then_someone_else_takes_it(kind, name, missing_ok=True):
        found = real_get(kind, name)
        if not api.writes or api.writes[-1][1] != "run-c":
            spec = api.objects[name]["spec"]
            spec.update(holderIdentity="run-c", renewTime=kl.format_time(clock()), acquireTime=kl.format_time(clock()))
            api._store(api.objects[name])  # pylint: disable=protected-access
            api.writes.append(("patch", "run-c"))
        return found

    api.get = get_then_someone_else_takes_it
    with pytest.raises(DeployError, match="is locked by run-c"):
        b.acquire()


def test_check_mode_writes_nothing_and_names_are_checked():
    api, clock = FakeLeases(), Clock()
    assert lock(api, "run-a", clock).acquire(check_mode=True)["taken"] and api.objects == {}
    with pytest.raises(DeployError, match="not a valid lock name"):
        kl.LeaseLock(api, "Web_1", "x")
    with pytest.raises(DeployError, match="at least 3"):
        kl.LeaseLock(api, "web", "x", seconds=1)


def test_times_round_trip_and_holder_view():
    stamp = kl.format_time(1_700_000_000.25)
    assert stamp == "2023-11-14T22:13:20.250000Z" and kl.parse_time(stamp) == 1_700_000_000.25
    assert kl.parse_time("2023-11-14T22:13:20+00:00") == 1_700_000_000.0 and kl.parse_time("nonsense") is None
    view = kl.holder({"spec": {"holderIdentity": "a", "leaseDurationSeconds": 10, "renewTime": stamp,
                               "acquireTime": stamp}}, 1_700_000_012.25)
    assert view["expired"] and view["expires_in"] == 0.0 and view["age"] == 12.0


def test_orphan_detection_follows_the_parent_chain(monkeypatch):
    parents = {100: 90, 90: 80, 80: 70}
    monkeypatch.setattr(kl, "_parent_of", parents.get)
    chain = [(100, 90), (90, 80), (80, 70)]
    assert not kl.orphaned(chain)
    parents[80] = 1  # ansible-playbook died: its worker was re-parented
    assert kl.orphaned(chain)
