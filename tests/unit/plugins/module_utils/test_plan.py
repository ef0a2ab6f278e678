"""blue_green_plan with three router slots: the live and the warm release are never displaced."""
from __future__ import annotations

import pytest

from ansible_collections.immutable.deploy.plugins.module_utils import plan
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError

THREE = ["blue", "green", "amber"]
TWO = ["blue", "green"]


def rel(rid, slot, live=False, weight=0, state="running", created="2026"):
    return {"id": rid, "slot": slot, "live": live, "weight": weight, "state": state, "created": created}


def warm_and_live():
    """1.0.0 warm in blue, 2.0.0 live in green (newest first, as docker_release_info lists them)."""
    return [rel("2.0.0", "green", live=True, weight=100, created="2026-02"),
            rel("1.0.0", "blue", created="2026-01")]


def test_new_release_takes_the_third_slot_and_the_warm_one_goes_only_after_the_switch():
    planned = plan.blue_green_plan(warm_and_live(), "3.0.0", 2, THREE)
    assert planned["slot"] == "amber" and planned["retire_first"] == [] and planned["warning"] is None
    assert planned["previous"]["id"] == "2.0.0"
    assert planned["retire_after"] == ["1.0.0"] and planned["clear_after"] == ["blue"]


def test_keep_one_retires_and_clears_both_after_the_switch():
    planned = plan.blue_green_plan(warm_and_live(), "3.0.0", 1, THREE)
    assert planned["slot"] == "amber" and planned["retire_first"] == []
    assert planned["retire_after"] == ["2.0.0", "1.0.0"] and planned["clear_after"] == ["green", "blue"]


def test_a_sequence_cycles_through_the_slots_and_never_touches_live_or_warm():
    releases = []
    for n, version in enumerate(["1", "2", "3", "4", "5"]):
        planned = plan.blue_green_plan(releases, version, 2, THREE)
        live = planned["live"]
        warm = next((r for r in releases if not r["live"]), None)
        assert planned["retire_first"] == []
        assert live is None or planned["slot"] != live["slot"]
        assert warm is None or planned["slot"] != warm["slot"]
        # the switch: the new release live, the previous one warm, retire_after gone
        releases = [rel(version, planned["slot"], live=True, weight=100, created="2026-%02d" % n)] + [
            dict(r, live=False, weight=0) for r in releases if r["id"] not in planned["retire_after"]]
    assert [r["id"] for r in releases] == ["5", "4"]
    assert len({r["slot"] for r in releases}) == 2


def test_first_deploy_and_second_deploy_use_free_slots_in_router_order():
    assert plan.blue_green_plan([], "1", 2, THREE)["slot"] == "blue"
    assert plan.blue_green_plan([], "1", 2, ["green", "amber", "blue"])["slot"] == "green"
    planned = plan.blue_green_plan([rel("1", "blue", live=True, weight=100)], "2", 2, THREE)
    assert planned["slot"] == "green" and planned["retire_after"] == [] and planned["clear_after"] == []


def test_with_three_occupied_slots_the_oldest_spare_release_makes_room():
    releases = [rel("3", "amber", live=True, weight=100, created="2026-03"), rel("2", "green", created="2026-02"),
                rel("1", "blue", created="2026-01")]
    planned = plan.blue_green_plan(releases, "4", 2, THREE)
    assert planned["slot"] == "blue" and planned["retire_first"] == ["1"] and planned["warning"] is None
    assert planned["retire_after"] == ["2"]  # after the switch: 4 live, 3 warm


def test_a_router_with_two_slots_falls_back_and_warns():
    planned = plan.blue_green_plan(warm_and_live(), "3.0.0", 2, TWO)
    assert planned["slot"] == "blue" and planned["retire_first"] == ["1.0.0"]
    assert "1.0.0 makes room in slot blue" in planned["warning"]
    assert "add slot amber (router_slots)" in planned["warning"]


def test_without_slots_the_plan_keeps_the_classic_two_and_never_warns():
    """Canary and Kubernetes call the plan without slots: the behaviour they were written for."""
    planned = plan.blue_green_plan(warm_and_live(), "3.0.0")
    assert planned["slot"] == "blue" and planned["retire_first"] == ["1.0.0"] and planned["warning"] is None


def test_classic_slots_work_around_a_live_release_in_the_third_slot():
    releases = [rel("3", "amber", live=True, weight=100, created="2026-03"), rel("2", "green", created="2026-02")]
    planned = plan.blue_green_plan(releases, "4")
    assert planned["slot"] == "blue" and planned["retire_first"] == []


def test_redeploying_the_warm_release_reuses_its_slot_in_any_slot():
    releases = [rel("3", "amber", live=True, weight=100, created="2026-03"), rel("2", "green", created="2026-02")]
    planned = plan.blue_green_plan(releases, "2", 2, THREE)
    assert planned["reuse"] and planned["slot"] == "green" and planned["retire_first"] == []
    assert planned["retire_after"] == [] and planned["clear_after"] == []


def test_a_router_with_one_slot_is_refused():
    with pytest.raises(DeployError, match="no slot for a new release beside the live release 1"):
        plan.blue_green_plan([rel("1", "blue", live=True, weight=100)], "2", 2, ["blue"])
    with pytest.raises(DeployError, match=r"no slot for a new release \(router slots: none\)"):
        plan.blue_green_plan([], "1", 2, [])


def test_router_slots_from_haproxy_servers_or_nginx():
    servers = [{"name": n} for n in ("blue1", "blue2", "green1", "green2", "amber1", "amber2", "other1")]
    assert plan.router_slots("haproxy", servers) == THREE
    assert plan.router_slots("haproxy", [{"name": "blue1"}, {"name": "green1"}]) == TWO
    assert plan.router_slots("haproxy", None) is None
    assert plan.router_slots("nginx", None) == THREE
