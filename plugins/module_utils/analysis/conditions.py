# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The success-condition language of release_analysis: a tiny, safe expression language.

Parsed with Python's ast and evaluated by walking the tree here (never eval, never
Jinja). Accepted: numbers, strings, True/False/None, the names the metric's
provider supplies, comparisons (chained too, and 'in'/'not in' on strings),
and/or/not, + - * / and unary minus, parentheses, abs(), min(), max().
Everything else (attributes, subscripts, other calls, lambdas, ** ...) is
rejected when the condition is compiled, before any measurement.
"""
from __future__ import annotations

import ast
import math
import operator
from typing import Any, Callable, Dict, FrozenSet, Iterable, Optional

from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError

MAX_LENGTH = 1000

_COMPARE: Dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.In: lambda a, b: operator.contains(b, a), ast.NotIn: lambda a, b: not operator.contains(b, a),
}
_ORDERING = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_ARITH: Dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
}
_FUNCTIONS: Dict[str, Callable[..., Any]] = {"abs": abs, "min": min, "max": max}
_OP_TEXT = {ast.Pow: "**", ast.FloorDiv: "//", ast.Mod: "%", ast.MatMult: "@", ast.BitAnd: "&", ast.BitOr: "|",
            ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>", ast.Invert: "~", ast.Is: "is", ast.IsNot: "is not"}


class ConditionError(Exception):
    """A condition that cannot be evaluated with these values (the measurement is inconclusive)."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Condition:
    """A compiled condition: call evaluate(names) -> bool."""

    def __init__(self, text: str, tree: ast.Expression, names: FrozenSet[str]) -> None:
        self.text = text
        self._tree = tree
        self.names = names

    def evaluate(self, values: Dict[str, Any]) -> bool:
        return bool(self._eval(self._tree.body, values))

    def _eval(self, node: ast.AST, values: Dict[str, Any]) -> Any:  # pylint: disable=too-many-return-statements
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return values.get(node.id)
        if isinstance(node, ast.BoolOp):
            want = isinstance(node.op, ast.Or)  # 'or' stops at the first true, 'and' at the first false
            for part in node.values:
                if bool(self._eval(part, values)) is want:
                    return want
            return not want
        if isinstance(node, ast.UnaryOp):
            operand = self._eval(node.operand, values)
            if isinstance(node.op, ast.Not):
                return not operand
            self._need_number(node.operand, operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp):
            left, right = self._eval(node.left, values), self._eval(node.right, values)
            self._need_number(node.left, left)
            self._need_number(node.right, right)
            if isinstance(node.op, ast.Div) and right == 0:
                raise ConditionError("division by zero in '%s'" % ast.unparse(node))
            return _ARITH[type(node.op)](left, right)
        if isinstance(node, ast.Compare):
            return self._compare(node, values)
        if isinstance(node, ast.Call):
            args = [self._eval(arg, values) for arg in node.args]
            for arg_node, arg in zip(node.args, args):
                self._need_number(arg_node, arg)
            return _FUNCTIONS[node.func.id](*args)  # type: ignore[attr-defined]
        raise ConditionError("unsupported expression '%s'" % ast.unparse(node))  # compile() prevents this

    def _compare(self, node: ast.Compare, values: Dict[str, Any]) -> bool:
        left_node, left = node.left, self._eval(node.left, values)
        for op, right_node in zip(node.ops, node.comparators):
            right = self._eval(right_node, values)
            if isinstance(op, _ORDERING):
                for side_node, side in ((left_node, left), (right_node, right)):
                    if side is None:
                        raise ConditionError("'%s' has no value in this measurement" % ast.unparse(side_node))
                if _is_number(left) != _is_number(right) or isinstance(left, bool) or isinstance(right, bool):
                    raise ConditionError("cannot order %r and %r in '%s'" % (left, right, ast.unparse(node)))
            if isinstance(op, (ast.In, ast.NotIn)) and not (isinstance(left, str) and isinstance(right, str)):
                raise ConditionError("'in' needs two strings in '%s', got %r and %r" % (ast.unparse(node), left, right))
            if not _COMPARE[type(op)](left, right):
                return False
            left_node, left = right_node, right
        return True

    @staticmethod
    def _need_number(node: ast.AST, value: Any) -> None:
        if value is None:
            raise ConditionError("'%s' has no value in this measurement" % ast.unparse(node))
        if not _is_number(value):
            raise ConditionError("'%s' is %r, not a number" % (ast.unparse(node), value))
        if isinstance(value, float) and math.isnan(value):
            raise ConditionError("'%s' is NaN" % ast.unparse(node))


def compile_condition(text: str, names: Iterable[str], metric: str, option: str = "success") -> Condition:
    """Parse and check a condition; raise DeployError naming the metric and the offending part."""
    allowed = frozenset(names)
    listing = ", ".join(sorted(allowed))

    def reject(what: str) -> DeployError:
        return DeployError("Invalid condition for metric %r (option '%s'): %r: %s. Accepted: numbers, strings, True/False/None, "
                           "the names %s, comparisons, and/or/not, + - * /, parentheses, abs(), min(), max()."
                           % (metric, option, text, what, listing), option=option, metric=metric)

    if not isinstance(text, str) or not text.strip():
        raise reject("empty")
    if len(text) > MAX_LENGTH:
        raise reject("longer than %d characters" % MAX_LENGTH)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise reject("not a valid expression (%s)" % exc.msg) from exc

    def check(node: ast.AST) -> None:  # pylint: disable=too-many-branches
        part = ast.unparse(node) if not isinstance(node, ast.Expression) else text
        if isinstance(node, ast.Constant):
            if node.value is not None and not isinstance(node.value, (bool, int, float, str)):
                raise reject("constant '%s' is not a number, string, True, False or None" % part)
        elif isinstance(node, ast.Name):
            if node.id in _FUNCTIONS:
                raise reject("'%s' must be called, for example %s(result)" % (node.id, node.id))
            if node.id not in allowed:
                raise reject("unknown name '%s'" % node.id)
        elif isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
                raise reject("call '%s' is not allowed (only abs, min, max)" % part)
            if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args) or not node.args:
                raise reject("call '%s' takes plain arguments only" % part)
            if (node.func.id == "abs") != (len(node.args) == 1):
                raise reject("abs() takes one argument, min() and max() two or more, in '%s'" % part)
            for arg in node.args:
                check(arg)
            return
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _ARITH:
                raise reject("operator '%s' is not allowed in '%s'" % (_OP_TEXT.get(type(node.op), type(node.op).__name__), part))
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.Not, ast.USub, ast.UAdd)):
                raise reject("operator '%s' is not allowed in '%s'" % (_OP_TEXT.get(type(node.op), type(node.op).__name__), part))
        elif isinstance(node, ast.Compare):
            for op in node.ops:
                if type(op) not in _COMPARE:
                    raise reject("comparison '%s' is not allowed in '%s'" % (_OP_TEXT.get(type(op), type(op).__name__), part))
        elif not isinstance(node, (ast.Expression, ast.BoolOp, ast.boolop, ast.operator, ast.unaryop, ast.cmpop, ast.expr_context)):
            raise reject("'%s' is not allowed (%s)" % (part, _describe(node)))
        for child in ast.iter_child_nodes(node):
            check(child)

    check(tree)
    if not _is_boolean(tree.body):
        raise reject("it must be a test (a comparison, and/or/not, True or False), not a value")
    return Condition(text, tree, allowed)


def _is_boolean(node: ast.AST) -> bool:
    """Whether the top of the condition yields true/false (so 'result' alone, a number, is refused)."""
    if isinstance(node, ast.Compare):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return True
    if isinstance(node, ast.BoolOp):
        return all(_is_boolean(value) for value in node.values)
    return isinstance(node, ast.Constant) and isinstance(node.value, bool)


def _describe(node: ast.AST) -> str:
    kinds = {ast.Attribute: "attribute access", ast.Subscript: "subscript", ast.Lambda: "lambda",
             ast.IfExp: "conditional expression", ast.ListComp: "comprehension", ast.GeneratorExp: "comprehension",
             ast.DictComp: "comprehension", ast.SetComp: "comprehension", ast.List: "list", ast.Tuple: "tuple",
             ast.Dict: "dict", ast.Set: "set", ast.NamedExpr: "assignment", ast.JoinedStr: "f-string",
             ast.Await: "await", ast.Yield: "yield", ast.Starred: "starred argument", ast.Slice: "slice"}
    return kinds.get(type(node), type(node).__name__)


def evaluate(condition: Condition, values: Dict[str, Any]) -> "tuple[Optional[bool], str]":
    """(True/False, '') or (None, why) when the values cannot decide the condition."""
    try:
        return condition.evaluate(values), ""
    except ConditionError as exc:
        return None, "cannot evaluate %r: %s" % (condition.text, exc)
    except (TypeError, ValueError, OverflowError, ArithmeticError) as exc:
        return None, "cannot evaluate %r: %s" % (condition.text, exc)
