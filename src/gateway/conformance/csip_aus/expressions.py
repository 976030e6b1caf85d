"""cactus-test-definitions' variable expressions, ``$(...)``, evaluated safely.

The grammar the procedures use: ``now``, ``now + '2 minutes'``, ``maxExportW * 2``,
``-(1.05 * maxExportW)``, and in checks ``this <= rtgMaxVA``. It is parsed with :mod:`ast` and
only numbers, the names below, + - * / and comparisons are evaluated: nothing else runs. A
quoted duration is seconds divided by the run's speed (it is only ever added to ``now``).
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from gateway.core import errors

#: The names a procedure may use, as cactus-test-definitions defines them.
NAMES: frozenset[str] = frozenset(
    {
        "now",
        "this",
        "maxExportW",  # setMaxDischargeRateW, else setMaxW
        "maxImportW",  # setMaxChargeRateW, else setMaxW
        *(
            f"{p}{n}"
            for p in ("setMax", "rtgMax")
            for n in ("W", "VA", "Var", "VarNeg", "ChargeRateW", "DischargeRateW", "Wh")
        ),
    }
)
_EXPR = re.compile(r"^\$\((.*)\)$", re.S)
_DURATION = re.compile(r"'\s*(\d+(?:\.\d+)?)\s*(second|minute|hour|day)s?\s*'")
_UNIT = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_BIN: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_CMP: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


class ExpressionError(errors.ConfigError, ValueError):
    """An expression the suite cannot evaluate; the message names it."""


def offset_s(text: str) -> float:
    """The quoted durations in ``text``, summed, in the procedure's seconds (``$(now + '2
    minutes')``: 120)."""
    return sum(float(m[1]) * _UNIT[m[2]] for m in _DURATION.finditer(text))


def body(value: object) -> str | None:
    """The expression inside ``$(...)``, or None when ``value`` is not one."""
    if isinstance(value, str) and (m := _EXPR.match(value.strip())):
        return m[1]
    return None


def _tree(text: str) -> ast.expr:
    # Quoted durations become a marker call the evaluator scales.
    source = _DURATION.sub(lambda m: f"__duration__({m[1]} * {_UNIT[m[2]]})", text)
    try:
        return ast.parse(source, mode="eval").body
    except SyntaxError:
        raise ExpressionError(f"$({text}) is not an expression the suite reads") from None


def names(text: str) -> set[str]:
    """The variables ``$(text)`` uses; ExpressionError if it uses anything else."""
    tree = _tree(text)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id != "__duration__":
            found.add(node.id)
        elif not isinstance(
            node,
            ast.Constant
            | ast.BinOp
            | ast.UnaryOp
            | ast.Compare
            | ast.Call
            | ast.Load
            | ast.operator
            | ast.unaryop
            | ast.cmpop
            | ast.Name,
        ):
            raise ExpressionError(f"$({text}): {type(node).__name__} is not supported")
    unknown = found - NAMES
    if unknown:
        raise ExpressionError(f"$({text}): variable {', '.join(sorted(unknown))} not supported")
    return found


def evaluate(text: str, env: Mapping[str, float | None], speed: float) -> Any:
    """The value of ``$(text)`` with ``env`` (a name missing or None: ExpressionError)."""

    def ev(node: ast.expr) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return node.value
        if isinstance(node, ast.Name):
            value = env.get(node.id)
            if value is None:
                raise ExpressionError(f"$({text}): {node.id} is not known (yet)")
            return value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
            return _BIN[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMP:
            return _CMP[type(node.ops[0])](ev(node.left), ev(node.comparators[0]))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__duration__"
        ):
            return ev(node.args[0]) / speed
        raise ExpressionError(f"$({text}): cannot evaluate {ast.dump(node)[:40]}")

    return ev(_tree(text))
