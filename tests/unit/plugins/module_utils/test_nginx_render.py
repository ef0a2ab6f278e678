from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.immutable.deploy.plugins.module_utils.routers import nginx
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError


def _params(tmp_path, servers, **kw):
    p = dict(name="shop", path=str(tmp_path / "shop.conf"), servers=servers, allow_empty=False,
             nginx_conf=str(tmp_path / "nginx.conf"), nginx_binary="nginx", pid_file=None,
             validate=True, reload=True, reload_timeout=2.0)
    p.update(kw)
    return p


def _fake_nginx(tmp_path, rc, output="nginx: [emerg] fake failure"):
    """A stand-in nginx: `-t` exits rc; `-V` names a pid path under tmp_path."""
    script = tmp_path / "fake-nginx"
    script.write_text("#!/bin/sh\ncase \"$1\" in -V) echo '--pid-path=%s' >&2;; *) echo '%s' >&2; exit %d;; esac\n"
                      % (tmp_path / "none.pid", output, rc))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "nginx.conf").write_text("events {}\n")
    return str(script)


def test_render_is_sorted_and_deterministic():
    a = nginx.parse_servers([{"address": "10.0.0.2", "port": 80}, {"address": "10.0.0.1", "port": 81, "weight": 5}])
    b = nginx.parse_servers([{"address": "10.0.0.1", "port": 81, "weight": 5}, {"address": "10.0.0.2", "port": 80}])
    assert nginx.render("shop", a) == nginx.render("shop", b)
    assert nginx.render("shop", a).endswith(
        "upstream shop {\n    server 10.0.0.1:81 weight=5;\n    server 10.0.0.2:80 weight=1;\n}\n")


def test_flags_and_ipv6():
    servers = nginx.parse_servers([{"address": "[::1]", "port": 8080, "backup": True, "down": True},
                                   {"address": "App.Example", "port": 80, "weight": None}])
    assert [s.line() for s in servers] == ["server [::1]:8080 weight=1 backup down;",
                                           "server app.example:80 weight=1;"]


@pytest.mark.parametrize("server, option, value", [
    ({"address": "127.0.0.1", "port": 0}, "servers[0].port", "0"),
    ({"address": "127.0.0.1", "port": 65536}, "servers[0].port", "65536"),
    ({"address": "127.0.0.1", "port": 80, "weight": 0}, "servers[0].weight", "0"),
    ({"address": "127.0.0.1", "port": 80, "weight": 1001}, "servers[0].weight", "1001"),
    ({"address": "127.0.0.1; include /etc/passwd", "port": 80}, "servers[0].address", "include"),
    ({"address": "", "port": 80}, "servers[0].address", "''"),
])
def test_bad_server_names_option_and_value(server, option, value):
    with pytest.raises(DeployError) as err:
        nginx.parse_servers([server])
    assert "'%s'" % option in err.value.msg and value in err.value.msg and "Accepted" in err.value.msg


def test_empty_refused_unless_allowed():
    with pytest.raises(DeployError, match="allow_empty"):
        nginx.parse_servers([])
    text = nginx.render("shop_preview", nginx.parse_servers([], allow_empty=True))
    assert "server 127.0.0.1:9 down;" in text


def test_backup_only_and_duplicates_refused():
    with pytest.raises(DeployError, match="backup=false"):
        nginx.parse_servers([{"address": "127.0.0.1", "port": 80, "backup": True}])
    with pytest.raises(DeployError, match="listed twice"):
        nginx.parse_servers([{"address": "127.0.0.1", "port": 80}, {"address": "127.0.0.1", "port": 80}])


def test_bad_name():
    with pytest.raises(DeployError, match="'name'"):
        nginx.render("shop {", [])


def test_missing_binary(tmp_path):
    with pytest.raises(DeployError, match="'nginx_binary'.*no-such-nginx"):
        nginx.apply(_params(tmp_path, [{"address": "127.0.0.1", "port": 80}], nginx_binary="no-such-nginx"),
                    False, False)


def test_check_mode_writes_nothing_and_diffs(tmp_path):
    binary = _fake_nginx(tmp_path, 0)
    res = nginx.apply(_params(tmp_path, [{"address": "127.0.0.1", "port": 80}], nginx_binary=binary), True, True)
    assert res["changed"] and not os.path.exists(tmp_path / "shop.conf")
    assert "server 127.0.0.1:80" in res["diff"]["after"] and res["diff"]["before"] == ""


def test_apply_then_idempotent(tmp_path):
    binary = _fake_nginx(tmp_path, 0)
    params = _params(tmp_path, [{"address": "127.0.0.1", "port": 80}], nginx_binary=binary)
    first = nginx.apply(params, False, False)
    assert first["changed"] and first["validated"] and not first["running"] and not first["reloaded"]
    assert not nginx.apply(params, False, False)["changed"]


def test_rejected_new_file_is_removed(tmp_path):
    binary = _fake_nginx(tmp_path, 1)
    with pytest.raises(DeployError) as err:
        nginx.apply(_params(tmp_path, [{"address": "127.0.0.1", "port": 80}], nginx_binary=binary), False, False)
    assert "fake failure" in err.value.msg and err.value.details["rolled_back"]
    assert not os.path.exists(tmp_path / "shop.conf")


def test_rejected_change_restores_previous(tmp_path):
    (tmp_path / "shop.conf").write_text("previous\n")
    binary = _fake_nginx(tmp_path, 1)
    with pytest.raises(DeployError):
        nginx.apply(_params(tmp_path, [{"address": "127.0.0.1", "port": 80}], nginx_binary=binary), False, False)
    assert (tmp_path / "shop.conf").read_text() == "previous\n"
    assert [f for f in os.listdir(tmp_path) if f.startswith(".shop.conf")] == []


def test_pid_file_from_conf(tmp_path):
    conf = tmp_path / "nginx.conf"
    conf.write_text("# pid /nope.pid;\nworker_processes 1;\npid /run/x/nginx.pid;\nevents {}\n")
    assert nginx.pid_file_for("nginx", str(conf)) == "/run/x/nginx.pid"
    conf.write_text("pid logs/nginx.pid;\n")
    assert nginx.pid_file_for("nginx", str(conf)) is None


def test_stale_pid_is_not_running(tmp_path):
    pid_file = tmp_path / "nginx.pid"
    pid_file.write_text("%d\n" % os.getpid())  # a live process, but not an nginx master
    assert nginx.master_pid(str(pid_file)) is None
    assert nginx.master_pid(str(tmp_path / "absent.pid")) is None


# -- reading the upstream file back (docker_release_info tells the live release from it) --
def test_parse_upstream_round_trips_render():
    servers = nginx.parse_servers([{"address": "127.0.0.1", "port": 32768, "weight": 100},
                                   {"address": "::1", "port": 8080, "backup": True},
                                   {"address": "app.example", "port": 80, "down": True}])
    assert nginx.parse_upstream(nginx.render("shop", servers)) == ("shop", servers)


def test_parse_upstream_placeholder_is_no_server():
    assert nginx.parse_upstream(nginx.render("shop_preview", [])) == ("shop_preview", [])


def test_parse_upstream_tolerates_hand_edits_that_do_not_route():
    text = ("# edited\nupstream shop {  # trailing comment\n    zone shop 64k;\n    keepalive 8;\n"
            "    server 127.0.0.1:81 max_fails=3 fail_timeout=5s;\n    server [::1]:82 weight=7 down;\n}\n")
    name, servers = nginx.parse_upstream(text)
    assert name == "shop"
    assert [s.as_dict() for s in servers] == [
        {"address": "127.0.0.1", "port": 81, "weight": 1, "backup": False, "down": False},
        {"address": "::1", "port": 82, "weight": 7, "backup": False, "down": True}]


@pytest.mark.parametrize("text, fragment", [
    ("", "no complete"),
    ("upstream shop {\n    server 127.0.0.1:81;\n", "no complete"),
    ("server 127.0.0.1:81;\n", "line 1"),
    ("upstream shop {\n    server 127.0.0.1;\n}\n", "cannot read the server at line 2"),
    ("upstream shop {\n    server 127.0.0.1:81 weight=x;\n}\n", "bad weight"),
    ("upstream shop {\n    server 127.0.0.1:81 sometimes;\n}\n", "unknown server parameter 'sometimes'"),
    ("upstream shop {\n    server 127.0.0.1:81;\n}\nupstream other {\n}\n", "line 4"),
    ("upstream shop {\n    server bad_host!:81;\n}\n", "router_upstream_file"),
])
def test_parse_upstream_refuses_what_it_cannot_read(text, fragment):
    with pytest.raises(DeployError) as err:
        nginx.parse_upstream(text, "router_upstream_file")
    assert fragment in err.value.msg and "router_upstream_file" in err.value.msg


def test_read_upstream_names_the_option_when_missing(tmp_path):
    with pytest.raises(DeployError, match="'router_upstream_file': cannot read the upstream file"):
        nginx.read_upstream(str(tmp_path / "none.conf"), "router_upstream_file")


def test_active_weights_skip_down_and_backup():
    servers = nginx.parse_servers([{"address": "127.0.0.1", "port": 1, "weight": 5},
                                   {"address": "127.0.0.1", "port": 2, "backup": True},
                                   {"address": "127.0.0.1", "port": 3, "down": True}])
    assert nginx.active_weights(servers) == {("127.0.0.1", 1): 5}


def test_nginx_router_reads_weights_from_the_upstream_file(tmp_path):
    from ansible_collections.immutable.deploy.plugins.module_utils.routers.base import RouterRef, endpoint_key, router_for
    path = tmp_path / "shop.conf"
    path.write_text(nginx.render("shop", nginx.parse_servers([
        {"address": "127.0.0.1", "port": 1, "weight": 100}, {"address": "::1", "port": 2, "weight": 3},
        {"address": "127.0.0.1", "port": 3, "down": True}])))
    ref = RouterRef.from_params({"app": "shop", "router_kind": "nginx", "router_upstream_file": str(path)})
    router = router_for(ref)
    assert router.servers() is None
    assert router.weights(None) == {("127.0.0.1", 1): 100, ("::1", 2): 3}
    assert endpoint_key("0:0::1", 2) == ("::1", 2)
    with pytest.raises(DeployError, match="'router_socket' does not apply to router_kind=nginx"):
        RouterRef.from_params({"router_kind": "nginx", "router_socket": "/x.sock"})
    with pytest.raises(DeployError, match="'router_upstream_file' does not apply to router_kind=haproxy"):
        RouterRef.from_params({"router_kind": "haproxy", "router_upstream_file": str(path)})
