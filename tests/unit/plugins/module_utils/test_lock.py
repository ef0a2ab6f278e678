from __future__ import annotations

import pytest

from ansible_collections.immutable.deploy.plugins.module_utils import lock
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError


def test_second_owner_fails_fast_and_names_the_holder(tmp_path):
    assert lock.acquire(str(tmp_path), "web", "run-a", "blue-green to 2", False, False)["changed"]
    with pytest.raises(DeployError) as err:
        lock.acquire(str(tmp_path), "web", "run-b", "blue-green to 3", False, False)
    assert "locked by run-a (blue-green to 2)" in err.value.msg and "break_lock=true" in err.value.msg
    assert lock.read(str(tmp_path), "web")["owner"] == "run-a"


def test_same_owner_is_idempotent_and_release_only_by_owner(tmp_path):
    lock.acquire(str(tmp_path), "web", "run-a", "x", False, False)
    assert not lock.acquire(str(tmp_path), "web", "run-a", "x", False, False)["changed"]
    with pytest.raises(DeployError, match="held by run-a"):
        lock.release(str(tmp_path), "web", "run-b", False, False)
    assert lock.release(str(tmp_path), "web", "run-a", False, False)["changed"]
    assert lock.read(str(tmp_path), "web") is None
    assert not lock.release(str(tmp_path), "web", "run-a", False, False)["changed"]


def test_break_stale_lock_on_purpose_and_check_mode_changes_nothing(tmp_path):
    lock.acquire(str(tmp_path), "web", "dead-run", "x", False, False)
    result = lock.acquire(str(tmp_path), "web", "run-b", "y", True, True)
    assert result["changed"] and result["broken"]["owner"] == "dead-run"
    assert lock.read(str(tmp_path), "web")["owner"] == "dead-run"
    result = lock.acquire(str(tmp_path), "web", "run-b", "y", True, False)
    assert result["broken"]["owner"] == "dead-run" and lock.read(str(tmp_path), "web")["owner"] == "run-b"


def test_invalid_name(tmp_path):
    with pytest.raises(DeployError, match="Option 'name': '../etc' is not a valid lock name"):
        lock.acquire(str(tmp_path), "../etc", "a", "x", False, False)
