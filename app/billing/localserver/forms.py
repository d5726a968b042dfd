"""Stripe's request encoding (application/x-www-form-urlencoded with bracketed keys) both ways.

The SDK sends `line_items[0][price]=price_1&metadata[tier]=pro`; Stripe reads that as
`{"line_items": [{"price": "price_1"}], "metadata": {"tier": "pro"}}`. No library on the box decodes
this bracket convention (it is Rails'/PHP's, not a standard), so it is these few lines.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

_PART = re.compile(r"\[([^\[\]]*)\]")


def decode(body: str) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        head, _, rest = key.partition("[")
        parts = [head, *(_PART.findall("[" + rest) if rest else [])]
        node = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":  # `expand[]=x`: append
                part = str(len(node))
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    out: dict[str, Any] = _lists(root)
    return out


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    out = {k: _lists(v) for k, v in node.items()}
    if out and all(k.isdigit() for k in out):
        return [out[k] for k in sorted(out, key=int)]
    return out


def encode(data: dict[str, Any]) -> str:
    pairs: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}[{k}]" if prefix else str(k), v)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(f"{prefix}[{i}]", v)
        elif isinstance(value, bool):
            pairs.append((prefix, "true" if value else "false"))
        elif value is not None:
            pairs.append((prefix, str(value)))

    walk("", data)
    return urlencode(pairs)
