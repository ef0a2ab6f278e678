from __future__ import annotations

import pytest

from ansible_collections.immutable.deploy.plugins.module_utils.analysis.conditions import compile_condition, evaluate
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError

NAMES = ("result", "stable", "exit_code", "output")


def check(text, **values):
    return evaluate(compile_condition(text, NAMES, "m"), values)


@pytest.mark.parametrize("text, values, expected", [
    ("result < 0.01", {"result": 0.001}, True),
    ("result < 0.01", {"result": 0.02}, False),
    ("result < 0.01 and result <= stable * 2 + 0.005", {"result": 0.008, "stable": 0.002}, True),
    ("result < 0.01 and result <= stable * 2 + 0.005", {"result": 0.009, "stable": 0.001}, False),
    ("0 <= result < 300", {"result": 299}, True),
    ("0 <= result < 300", {"result": -1}, False),
    ("1 < result < 3 < 4", {"result": 2}, True),
    ("1 < result > 3", {"result": 2}, False),
    ("exit_code == 0", {"exit_code": 0}, True),
    ("exit_code != 0 or output == 'ok'", {"exit_code": 0, "output": "ok"}, True),
    ("'healthy' in output and not 'degraded' in output", {"output": "healthy"}, True),
    ("'degraded' not in output", {"output": "all degraded"}, False),
    ("not (result > 5)", {"result": 3}, True),
    ("abs(result - stable) < 0.5", {"result": 1.2, "stable": 1.0}, True),
    ("max(result, stable) <= 10 and min(result, stable, 3) == 1", {"result": 1, "stable": 10}, True),
    ("-result < 0", {"result": 2}, True),
    ("result / 4 == 0.5", {"result": 2}, True),
    ("stable == None", {"stable": None}, True),
    ("True", {}, True),
    ("False or result >= 1e3", {"result": 1000.0}, True),
])
def test_accepted_and_evaluated(text, values, expected):
    assert check(text, **values) == (expected, "")


@pytest.mark.parametrize("text, offending", [
    ("result.__class__ == 1", "attribute access"),
    ("__import__('os').system('x') == 0", "__import__"),
    ("open('/etc/passwd') == 1", "call 'open('/etc/passwd')' is not allowed"),
    ("result[0] == 1", "subscript"),
    ("(lambda: 1)() == 1", "lambda"),
    ("result ** 100 > 1", "operator '**'"),
    ("result % 2 == 0", "operator '%'"),
    ("result is None", "comparison 'is'"),
    ("unknown < 1", "unknown name 'unknown'"),
    ("result", "must be a test"),
    ("result + 1", "must be a test"),
    ("result < 1 and stable", "must be a test"),
    ("1 <", "not a valid expression"),
    ("", "empty"),
    ("[x for x in 'ab'] == 1", "comprehension"),
    ("(x := 1) == 1", "assignment"),
    ("abs < 1", "'abs' must be called"),
    ("abs(result, 2) < 1", "abs() takes one argument"),
    ("max(result) < 1", "min() and max() two or more"),
    ("max(*result) < 1", "plain arguments"),
    ("min(result, key=stable) < 1", "plain arguments"),
    ("1 if result else 0 == 1", "conditional expression"),
    ("f'{result}' == '1'", "f-string"),
    ("b'x' == 1", "constant"),
    ("result < 1; import os", "not a valid expression"),
    ("x" * 1001, "longer than"),
])
def test_rejected_at_compile_time_naming_metric_and_part(text, offending):
    with pytest.raises(DeployError) as err:
        compile_condition(text, NAMES, "error-rate", option="metrics[0].success")
    assert offending in err.value.msg
    assert "metric 'error-rate'" in err.value.msg and "metrics[0].success" in err.value.msg
    assert err.value.details["metric"] == "error-rate"


@pytest.mark.parametrize("text, values, reason", [
    ("result <= stable * 2", {"result": 0.1, "stable": None}, "'stable' has no value"),
    ("result < 1", {"result": None}, "'result' has no value"),
    ("result / stable < 1", {"result": 1, "stable": 0}, "division by zero"),
    ("output < 1", {"output": "abc"}, "cannot order"),
    ("output + 1 > 1", {"output": "abc"}, "not a number"),
    ("result in output", {"result": 1, "output": "1"}, "needs two strings"),
    ("abs(output) > 1", {"output": "x"}, "not a number"),
])
def test_values_that_cannot_decide_are_inconclusive(text, values, reason):
    passed, why = check(text, **values)
    assert passed is None
    assert reason in why and text in why


def test_short_circuit_skips_missing_value():
    # 'stable' is None but never needed: the first part already decides.
    assert check("result < 0 and result <= stable", result=1, stable=None) == (False, "")
    assert check("result > 0 or result <= stable", result=1, stable=None) == (True, "")


def test_large_string_multiplication_is_refused():
    passed, why = check("output * 100000000 == 'x'", output="abc")
    assert passed is None and "not a number" in why
