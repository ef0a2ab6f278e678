"""examples/awx: every playbook has an AWX survey and a project wrapper, and every survey question
matches the argument spec of the role (or module) that reads its variable, so they cannot drift:
required, type, choices, defaults, and password fields for every no_log option."""
from __future__ import annotations

import functools
import glob
import json
import os
from typing import Any, Dict, Optional

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AWX = os.path.join(ROOT, "examples", "awx")
PLAYBOOKS = sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(ROOT, "playbooks", "*.yml")))
# Variables a workflow node may leave out: the playbook takes deploy_image from the node before.
HANDOVER = {"blue_green": {"blue_green_image"}, "canary": {"canary_image"}, "promote": {"promote_source"}}
# What each survey type can carry, by argument-spec type. Lists and dicts (canary_steps, env, ...) do not
# fit a survey answer: they go into the job template's extra variables.
TYPES = {"str": {"text", "textarea", "password", "multiplechoice"}, "path": {"text"}, "int": {"integer", "multiplechoice"},
         "float": {"float"}, "bool": {"multiplechoice"}, "list": {"textarea"}}
AWX_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}


def load_yaml(*parts: str) -> Any:
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@functools.lru_cache(maxsize=None)
def role_options(role: str) -> Dict[str, Dict[str, Any]]:
    return load_yaml("roles", role, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]


@functools.lru_cache(maxsize=None)
def module_options(module: str) -> Dict[str, Dict[str, Any]]:
    with open(os.path.join(ROOT, "plugins", "modules", module + ".py"), encoding="utf-8") as handle:
        source = handle.read()
    doc = source.split('DOCUMENTATION = r"""', 1)[1].split('"""', 1)[0]
    return yaml.safe_load(doc)["options"]


def playbook_roles(name: str) -> list:
    roles = []
    for play in load_yaml("playbooks", name + ".yml"):
        for entry in play.get("roles") or []:
            roles.append((entry["role"] if isinstance(entry, dict) else entry).rsplit(".", 1)[-1])
    return roles


def spec_for(playbook: str, variable: str) -> Optional[Dict[str, Any]]:
    """The argument spec entry the variable is checked against, or None when nothing declares it."""
    if playbook == "promote":  # no role: the playbook passes promote_<x> to image_promote's <x>
        option = variable[len("promote_"):]
        spec = dict(module_options("image_promote").get("target" if option == "targets" else option) or {})
        if option == "targets" and spec:
            spec["type"] = "list"
        return spec or None
    roles = playbook_roles(playbook)
    if variable.startswith("router_"):  # the playbooks hand router_bind/router_preview_bind to the roles
        roles = ["router"]
    for role in roles:
        options = role_options(role)
        if variable in options:
            return options[variable]
    return None


def placeholder(default: Any) -> bool:
    """Defaults documented as a description (<state dir>/...) or computed ones: the survey leaves them empty."""
    return isinstance(default, str) and ("<" in default or "{{" in default)


def surveys():
    return sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(AWX, "surveys", "*.json")))


def load_survey(name: str) -> Dict[str, Any]:
    with open(os.path.join(AWX, "surveys", name + ".json"), encoding="utf-8") as handle:
        return json.load(handle)


def test_every_playbook_has_a_survey_and_a_project_wrapper():
    assert surveys() == PLAYBOOKS
    for name in PLAYBOOKS:
        wrapper = load_yaml("examples", "awx", "project", name + ".yml")
        assert wrapper == [{"name": "Run immutable.deploy.%s from the installed collection" % name,
                            "ansible.builtin.import_playbook": "immutable.deploy.%s" % name}], wrapper


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_survey_is_valid_awx_spec(name):
    survey = load_survey(name)
    assert set(survey) == {"name", "description", "spec"} and survey["spec"]
    variables = [q["variable"] for q in survey["spec"]]
    assert len(variables) == len(set(variables)), variables
    for question in survey["spec"]:
        assert {"question_name", "question_description", "variable", "type", "required", "default"} <= set(question)
        assert question["type"] in AWX_TYPES and isinstance(question["required"], bool)
        if question["type"] == "multiplechoice":
            assert question["choices"] and question["default"] in question["choices"], question
        if question["type"] == "integer":
            assert isinstance(question["default"], int) and question["min"] <= question["default"] <= question["max"]
        if question["type"] == "password":
            assert question["default"] == "", question  # never a secret in a survey file


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_survey_matches_the_argument_specs(name):
    questions = load_survey(name)["spec"]
    if name == "demo":  # no role spec: each variable is one the playbook reads
        with open(os.path.join(ROOT, "playbooks", "demo.yml"), encoding="utf-8") as handle:
            text = handle.read()
        assert all(q["variable"] in text for q in questions)
        return
    for question in questions:
        var = question["variable"]
        spec = spec_for(name, var)
        assert spec is not None, "%s: %s is declared by no argument spec" % (name, var)
        kind = spec.get("type", "str")
        assert question["type"] in TYPES[kind], (var, kind, question["type"])
        # roles mark secrets no_log; module docs (promote) cannot, and say "Never logged"
        description = " ".join(spec.get("description") if isinstance(spec.get("description"), list)
                               else [spec.get("description") or ""])
        secret = bool(spec.get("no_log")) or "never logged" in description.lower()
        assert (question["type"] == "password") == secret, "%s: password field iff no_log (%s)" % (var, secret)
        required = bool(spec.get("required"))
        if var in HANDOVER.get(name, ()):
            assert not question["required"], var  # the playbook requires it, but a workflow may hand it over
        else:
            assert question["required"] == required, var
        choices = spec.get("choices")
        if kind == "bool":
            assert sorted(question["choices"]) == ["false", "true"], var
        elif choices and question["type"] == "integer":
            assert list(range(question["min"], question["max"] + 1)) == sorted(choices), var
        elif choices:
            assert question["type"] == "multiplechoice" and sorted(question["choices"]) == sorted(map(str, choices)), var
        else:
            assert question["type"] != "multiplechoice", var
        default = spec.get("default")
        if default is None or placeholder(default):
            assert question["default"] in ("", None), var
        elif kind == "bool":
            assert question["default"] == str(default).lower(), var
        else:
            assert question["default"] == default, (var, question["default"], default)


@pytest.mark.parametrize("name", ["build", "blue_green", "canary", "canary_promote", "canary_abort", "rollback"])
def test_every_required_option_of_the_playbooks_role_is_asked(name):
    role = playbook_roles(name)[-1]
    required = {k for k, v in role_options(role).items() if v.get("required")}
    asked = {q["variable"] for q in load_survey(name)["spec"]}
    assert required <= asked, required - asked
