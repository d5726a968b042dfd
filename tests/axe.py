"""axe-core in a Playwright page or frame: inject it, run it, keep what blocks a release, say it readably.

The engine is the `axe.min.js` that the `axe-playwright-python` package ships (axe-core 4.12.1 there), read
from the installed package: nothing is fetched at test time. That package's own `Axe.run` is not used: it
builds the call by pasting Python `repr()`s into JavaScript; here the context and options are passed to
`evaluate` as arguments instead.

Usage (a Page or a Frame, Playwright's sync API; both have `evaluate`):

    problems = blocking(frame)                  # serious and critical violations, every rule on
    assert not problems, report(problems, "dark, ar, 390 px, portfolio")
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from axe_playwright_python.base import AXE_SCRIPT  # type: ignore[import-untyped]  # no py.typed

BLOCKING = frozenset({"serious", "critical"})


@dataclass(frozen=True)
class Node:
    target: str      # the CSS selector axe gives (joined when it is a path through frames or shadow roots)
    html: str        # the element's opening markup, as axe cut it
    summary: str     # axe's "Fix any of the following: ..." text


@dataclass(frozen=True)
class Violation:
    rule: str        # e.g. "color-contrast"
    impact: str      # minor, moderate, serious, critical
    help: str
    url: str         # the rule's page at Deque
    nodes: tuple[Node, ...]


def inject(target: Any) -> None:
    """Put axe into the page or frame once (a second run reuses it). Playwright's `evaluate` runs over the
    DevTools protocol, so the document's own Content-Security-Policy does not stop it."""
    if not target.evaluate("() => typeof window.axe === 'object' && typeof window.axe.run === 'function'"):
        target.evaluate(AXE_SCRIPT)


def run(target: Any, context: Any = None, *, disable: Iterable[str] = ()) -> list[Violation]:
    """Every violation axe finds in `target` (all rules, best practices included), or in `context` within it
    (an axe context: a selector, or {"include": [...], "exclude": [...]}).

    `disable` turns rules off by id; a caller doing so must say why beside the call. Nested frames are not
    followed (`iframes: false`): a cross-origin frame cannot be reached from its parent, and each frame is
    checked by running this in it."""
    inject(target)
    options = {"resultTypes": ["violations"], "iframes": False,
               "rules": {rule: {"enabled": False} for rule in disable}}
    raw: list[dict[str, Any]] = target.evaluate(
        "([context, options]) => axe.run(context || document, options).then((r) => r.violations)",
        [context, options])
    return [_violation(v) for v in raw]


def blocking(target: Any, context: Any = None, *, disable: Iterable[str] = ()) -> list[Violation]:
    """The violations whose impact is serious or critical."""
    return [v for v in run(target, context, disable=disable) if v.impact in BLOCKING]


def report(violations: Iterable[Violation], where: str = "") -> str:
    """One block per rule: its impact, id, help and link, then each element with axe's advice."""
    lines = [f"axe violations{f' ({where})' if where else ''}:"]
    for v in violations:
        lines.append(f"- [{v.impact}] {v.rule}: {v.help} <{v.url}>")
        for n in v.nodes:
            lines.append(f"    {n.target}  {n.html}")
            lines.extend(f"      {line.strip()}" for line in n.summary.splitlines() if line.strip())
    return "\n".join(lines)


def _violation(v: dict[str, Any]) -> Violation:
    nodes = tuple(Node(target=" >> ".join(_selector(t) for t in n.get("target", [])),
                       html=str(n.get("html", "")).replace("\n", " ")[:200],
                       summary=str(n.get("failureSummary", "")))
                  for n in v.get("nodes", []))
    return Violation(rule=str(v["id"]), impact=str(v.get("impact") or ""), help=str(v.get("help", "")),
                     url=str(v.get("helpUrl", "")).split("?")[0], nodes=nodes)


def _selector(part: Any) -> str:
    # A target part is a selector, or a list of them when the element sits in a shadow root.
    return " > ".join(map(str, part)) if isinstance(part, list) else str(part)
