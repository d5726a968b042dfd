"""Every explain step is built in app/calc, beside the arithmetic it explains (issue 11, point 6): the
calculation API only creates the Explain, passes it to the engine and puts its steps in the answer."""

from __future__ import annotations

import ast
from pathlib import Path

from app.calc.flags import Explain

APP = Path(__file__).resolve().parent.parent / "app"


def _step_calls(path: Path) -> list[int]:
    """Lines of calls shaped like Explain.add: `<x>.add(<string>, <formula>, <inputs>, <value>)`."""
    tree = ast.parse(path.read_text(), str(path))
    lines: list[int] = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add"
                and len(node.args) == 4 and isinstance(node.args[0], ast.Constant | ast.JoinedStr)
                and isinstance(node.args[1], ast.Constant | ast.JoinedStr | ast.Name | ast.Call)):
            lines.append(node.lineno)
    return lines


def test_the_shape_check_finds_the_engine_steps() -> None:
    # The check below would pass vacuously if the shape stopped matching how steps are written.
    assert sum(len(_step_calls(p)) for p in (APP / "calc").rglob("*.py")) >= 30
    ex = Explain()
    ex.add("s", "f", {}, 1)
    assert ex.steps == [{"step": "s", "formula": "f", "inputs": {}, "value": 1}]


def test_no_explain_step_is_built_outside_app_calc() -> None:
    outside = {f"{p.relative_to(APP.parent)}:{line}" for p in APP.rglob("*.py")
               if (APP / "calc") not in p.parents for line in _step_calls(p)}
    assert not outside, f"explain steps built outside app/calc: {sorted(outside)}"
