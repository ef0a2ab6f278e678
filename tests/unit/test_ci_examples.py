"""examples/ci: the GitLab CI and GitHub Actions pipelines validate against their published JSON schemas
(check-jsonschema's bundled copies, no network), and every pipeline, Jenkins included, runs playbooks
that exist with variables some argument spec or survey declares, and reads the handover the way the
deploy report writes it."""
from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CI = os.path.join(ROOT, "examples", "ci")
CHECK = os.path.join(os.path.dirname(sys.executable), "check-jsonschema")
SCHEMAS = {"gitlab-ci.yml": "vendor.gitlab-ci", "github-actions.yml": "vendor.github-workflows"}
PIPELINES = sorted(os.listdir(CI))


def read(name: str) -> str:
    with open(os.path.join(CI, name), encoding="utf-8") as handle:
        return handle.read()


def declared_variables() -> set:
    names = set()
    for spec in glob.glob(os.path.join(ROOT, "roles", "*", "meta", "argument_specs.yml")):
        with open(spec, encoding="utf-8") as handle:
            for entry in yaml.safe_load(handle)["argument_specs"].values():
                names.update(entry.get("options") or {})
    for survey in glob.glob(os.path.join(ROOT, "examples", "awx", "surveys", "*.json")):
        with open(survey, encoding="utf-8") as handle:
            names.update(q["variable"] for q in json.load(handle)["spec"])
    return names


# scripts/test_oldest.sh runs the unit tests in a venv of runtime dependencies only
@pytest.mark.skipif(not os.path.exists(CHECK), reason="check-jsonschema is not installed in this venv")
@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_pipeline_validates_against_its_published_schema(name):
    proc = subprocess.run([CHECK, "--builtin-schema", SCHEMAS[name], os.path.join(CI, name)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("name", PIPELINES)
def test_pipeline_runs_existing_playbooks_with_declared_variables(name):
    text = read(name)
    playbooks = set(re.findall(r"immutable\.deploy\.(\w+)", text)) - {"deploy_report"}
    assert {"build", "promote", "canary"} <= playbooks, playbooks
    for playbook in playbooks:
        assert os.path.exists(os.path.join(ROOT, "playbooks", playbook + ".yml")), playbook
    variables = set(re.findall(r"-e \"?(\w+)=", text))
    assert variables and variables <= declared_variables(), variables - declared_variables()
    for stage in ("ansible.builtin.junit", "immutable.deploy.deploy_report", "JUNIT_OUTPUT_DIR",
                  "IMMUTABLE_DEPLOY_REPORT_DIR"):
        assert stage in text, stage
    assert text.count("immutable.deploy.promote") == 1 and "promote_source=$BUILT_IMAGE" in text.replace("${env.BUILT_IMAGE}", "$BUILT_IMAGE")


@pytest.mark.parametrize("name", PIPELINES)
def test_handover_command_reads_the_deploy_report(name, tmp_path):
    """The one-liner each pipeline uses to pass the pinned image on works on a report as the callback writes it."""
    text = read(name)
    (snippet,) = set(re.findall(r"import json, sys; print\(json\.load\(open\(sys\.argv\[1\]\)\)\['handover'\]\['deploy_image'\]\)", text))
    report = tmp_path / "build.json"
    report.write_text(json.dumps({"handover": {"deploy_image": "r/web:1.0.1-abc@sha256:" + "0" * 64}}), encoding="utf-8")
    out = subprocess.run([sys.executable, "-c", snippet, str(report)], stdout=subprocess.PIPE, text=True, check=True)
    assert out.stdout.strip() == "r/web:1.0.1-abc@sha256:" + "0" * 64
