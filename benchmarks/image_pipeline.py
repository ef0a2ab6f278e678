"""Image pipeline timings beside the raw docker CLI, in one run; JSON on stdout.

Ours is measured twice: the module's work in-process (what image_build does
once Ansible has shipped it) and a whole `ansible` ad-hoc run (Ansible start-up
included). Raw is `docker build` / `docker push` / `docker pull+tag+push`.
Goal (issue 2): a no-op rebuild costs at most 1.5x a warm-cache `docker build`.
Run: .venv/bin/python benchmarks/image_pipeline.py [--repeat N]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")
sys.path.insert(0, COLLECTIONS)
REGISTRY = os.environ.get("IMMUTABLE_DEPLOY_REGISTRY", "127.0.0.1:5000")


def link_collection() -> None:
    link = os.path.join(COLLECTIONS, "ansible_collections", "immutable", "deploy")
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(ROOT, link)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def build_params(name: str, version: str, context: str):
    from ansible_collections.immutable.deploy.plugins.module_utils.images.reference import DEFAULT_MOVING_TAGS
    return dict(name=name, version=version, path=context, dockerfile="Dockerfile", build_args={},
                target=None, labels={}, revision=None, source=None, pull=False, push=True,
                docker_host=None, docker_timeout=120, registry_username=None, registry_password=None,
                registry_scheme="auto", validate_certs=True, moving_tags=list(DEFAULT_MOVING_TAGS))


def adhoc(module: str, args: dict) -> None:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible"), "localhost", "-c", "local",
                    "-i", "localhost,", "-m", module, "-a", json.dumps(args)],
                   check=True, env=env, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="repetitions of the no-op measurements")
    opts = parser.parse_args()
    link_collection()
    from ansible_collections.immutable.deploy.plugins.module_utils.images.build import build
    from ansible_collections.immutable.deploy.plugins.module_utils.images.promote import promote

    uid = uuid.uuid4().hex[:8]
    ours, raw = "%s/bench-%s/ours" % (REGISTRY, uid), "%s/bench-%s/raw" % (REGISTRY, uid)
    with tempfile.TemporaryDirectory() as tmp:
        context = os.path.join(tmp, "ctx")
        sh(os.path.join(ROOT, "scripts", "sample_app.sh"), context, "1.0.0")
        figures = {}
        try:
            figures["first_build_push_s"] = {
                "ours": timed(lambda: build(build_params(ours, "1.0.0", context), False)),
                "raw_docker_build_push": timed(lambda: (sh("docker", "build", "-q", "--no-cache", "-t", raw + ":1.0.0", context),
                                                        sh("docker", "push", "-q", raw + ":1.0.0"))),
            }
            noop = [timed(lambda: build(build_params(ours, "1.0.0", context), False)) for dummy in range(opts.repeat)]
            noop_adhoc = [timed(lambda: adhoc("immutable.deploy.image_build", build_params(ours, "1.0.0", context)))
                          for dummy in range(max(1, opts.repeat // 2))]
            warm = [timed(lambda: sh("docker", "build", "-q", "-t", raw + ":1.0.0", context)) for dummy in range(opts.repeat)]
            figures["noop_rebuild_s"] = {
                "ours_module_work_median": statistics.median(noop),
                "ours_ansible_adhoc_median": statistics.median(noop_adhoc),
                "raw_docker_build_warm_cache_median": statistics.median(warm),
            }
            figures["noop_rebuild_ratio"] = figures["noop_rebuild_s"]["ours_module_work_median"] / statistics.median(warm)
            figures["noop_rebuild_goal_met"] = figures["noop_rebuild_ratio"] <= 1.5
            src = build(build_params(ours, "1.0.0", context), False)["image"]["ref"]
            promote_params = dict(source=src, target=ours + "-prod:1.0.0", source_username=None, source_password=None,
                                  target_username=None, target_password=None, registry_scheme="auto",
                                  validate_certs=True, moving_tags=["latest"])
            raw_src = raw + ":1.0.0"
            figures["promote_s"] = {
                "ours": timed(lambda: promote(promote_params, False)),
                "ours_noop": timed(lambda: promote(promote_params, False)),
                "raw_docker_pull_tag_push": timed(lambda: (sh("docker", "pull", "-q", raw_src),
                                                           sh("docker", "tag", raw_src, raw + "-prod:1.0.0"),
                                                           sh("docker", "push", "-q", raw + "-prod:1.0.0"))),
            }
            figures["repeat"] = opts.repeat
        finally:
            for name in (ours, raw, ours + "-prod", raw + "-prod"):
                subprocess.run("docker images -q %s | sort -u | xargs -r docker rmi -f" % name, shell=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    json.dump({k: (round(v, 4) if isinstance(v, float) else
                   {ik: round(iv, 4) for ik, iv in v.items()} if isinstance(v, dict) else v)
               for k, v in figures.items()}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
