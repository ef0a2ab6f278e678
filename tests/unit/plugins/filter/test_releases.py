from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.immutable.deploy.plugins.filter.releases import (
    blue_green_plan, canary_servers, canary_steps, release_id, rollback_plan, slot_servers)


def rel(rid, slot, live=False, weight=0, state="running", created="2026"):
    return {"id": rid, "slot": slot, "live": live, "weight": weight, "state": state, "created": created}


def test_first_deploy_goes_to_blue():
    plan = blue_green_plan([], "1.0.0")
    assert plan["slot"] == "blue" and plan["live"] is None and not plan["reuse"] and not plan["noop"]


def test_next_release_takes_the_free_slot_and_retires_its_occupant():
    releases = [rel("2", "green", live=True, weight=100), rel("1", "blue")]
    plan = blue_green_plan(releases, "3")
    assert plan["slot"] == "blue" and plan["retire_first"] == ["1"] and plan["previous"]["id"] == "2"
    assert plan["retire_after"] == []
    assert blue_green_plan(releases, "3", keep=1)["retire_after"] == ["2"]


def test_live_release_again_is_a_noop():
    plan = blue_green_plan([rel("2", "green", live=True, weight=100), rel("1", "blue")], "2")
    assert plan["noop"] and plan["slot"] == "green" and plan["retire_first"] == []


def test_warm_previous_release_is_reused_not_recreated():
    plan = blue_green_plan([rel("2", "green", live=True, weight=100), rel("1", "blue")], "1")
    assert plan["reuse"] and not plan["noop"] and plan["slot"] == "blue" and plan["previous"]["id"] == "2"


def test_half_switched_state_picks_heavier_live_release():
    releases = [rel("2", "green", live=True, weight=100), rel("1", "blue", live=True, weight=50)]
    plan = blue_green_plan(releases, "2")
    assert plan["live"]["id"] == "2" and not plan["noop"]  # "1" still takes traffic: finish the switch


def test_killed_mid_switch_the_other_live_release_is_drained_not_retired():
    releases = [rel("2", "green", live=True, weight=100), rel("1", "blue", live=True, weight=100, created="2025")]
    plan = blue_green_plan(releases, "2")
    assert plan["previous"]["id"] == "1" and plan["retire_after"] == [] and not plan["noop"]


def test_keep_below_one_is_refused():
    with pytest.raises(AnsibleFilterError, match="keep must be at least 1"):
        blue_green_plan([], "1", keep=0)


def test_slot_servers_fill_and_clear_the_slot():
    servers = slot_servers([{"address": "127.0.0.1", "port": 3000}], "green", 100, "ready", 3)
    assert servers[0] == {"name": "green1", "address": "127.0.0.1", "port": 3000, "weight": 100, "state": "ready"}
    assert [s["state"] for s in servers[1:]] == ["maint", "maint"]
    with pytest.raises(AnsibleFilterError, match="router_max_replicas"):
        slot_servers([{"address": "a", "port": 1}] * 2, "blue", 1, "ready", 1)


def test_release_id_from_tag_or_digest():
    digest = "sha256:" + "0123456789ab" + "f" * 52
    assert release_id("127.0.0.1:5000/shop/web:1.4.2") == "1.4.2"
    assert release_id("127.0.0.1:5000/shop/web:1.4.2@" + digest) == "1.4.2"
    assert release_id("127.0.0.1:5000/shop/web@" + digest) == "d0123456789ab"
    with pytest.raises(AnsibleFilterError, match="neither a version tag nor a digest"):
        release_id("127.0.0.1:5000/shop/web")


def test_rollback_to_previous_named_or_digest():
    releases = [rel("3", "blue", live=True, weight=100), rel("2", "green")]
    releases[1]["digest"] = "sha256:" + "2" * 64
    plan = rollback_plan(releases)
    assert plan["target"]["id"] == "2" and plan["live"]["id"] == "3" and not plan["noop"]
    assert rollback_plan(releases, "sha256:" + "2" * 64)["target"]["id"] == "2"
    assert rollback_plan(releases, "3")["noop"]
    with pytest.raises(AnsibleFilterError, match="no release '9' on this host; releases here: 3, 2"):
        rollback_plan(releases, "9")
    with pytest.raises(AnsibleFilterError, match="no previous release"):
        rollback_plan([rel("3", "blue", live=True, weight=100)])


@pytest.mark.parametrize("steps,fragment", [
    ([], "non-empty list"),
    ([{"weight": 50}, {"weight": 25}], "canary_steps[1].weight: 25 after 50; weights must increase"),
    ([{"weight": -1}], "canary_steps[0].weight: -1; accepted: an integer from 0 to 100"),
    ([{"weight": 101}], "accepted: an integer from 0 to 100"),
    ([{"weight": 0}, {"weight": 0}], "canary_steps[1].weight: 0 after 0"),
    ([{"weight": 5, "pause": "later"}], "canary_steps[0].pause: 'later'"),
    ([{"weight": 5, "speed": 1}], "accepted keys"),
])
def test_canary_steps_refused(steps, fragment):
    with pytest.raises(AnsibleFilterError) as err:
        canary_steps(steps)
    assert fragment in str(err.value)


def test_canary_steps_normalised():
    steps = canary_steps([{"weight": 5, "pause": 10}, {"weight": 50, "pause": "manual", "analysis": False}, {"weight": 100}])
    assert steps[1] == {"index": 1, "weight": 50, "pause": "manual", "analysis": False}
    assert steps[2]["pause"] == 0 and steps[2]["analysis"] is True


def test_canary_servers_share():
    ep = [{"address": "127.0.0.1", "port": p} for p in (1, 2)]
    servers = canary_servers({"slot": "green", "endpoints": ep[:1]}, {"slot": "blue", "endpoints": ep}, 5, 2)
    weights = {s["name"]: s["weight"] for s in servers}
    assert weights == {"green1": 10, "green2": 0, "blue1": 95, "blue2": 95}
    total = sum(weights.values())
    assert abs(weights["green1"] / total - 0.05) < 0.001
    full = {s["name"]: s["weight"] for s in canary_servers({"slot": "green", "endpoints": ep[:1]},
                                                           {"slot": "blue", "endpoints": ep}, 100, 2)}
    assert full["blue1"] == full["blue2"] == 0 and full["green1"] == 200
