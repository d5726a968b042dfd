"""The cheap proof of app.jsonbody (`proven_clean`) never passes a body the full check refuses.

The full check (the standard library parse with an object-pairs hook, then the control-character walk) is
the reference; bodies are generated as text, so an object can hold the same key twice and strings can
hold colons, quotes, escapes and control characters.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import AppError
from app.jsonbody import check, loads, proven_clean
from bench.payloads import POSITION_SIZE_BODY, batch_body

# Few distinct keys, so generated objects often repeat one; colons and escapes where they hurt most.
keys = st.sampled_from(["a", "b", "a:", ":", "x:y", "é", "\u0085", "\n", "\\", '"', "\u2028"])
texts = st.text(alphabet=st.sampled_from(list('ab:é"\\/\x00\x1f\x7f\x85\u2028 ')), max_size=6)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30),
                    st.floats(allow_nan=False, allow_infinity=False), texts)


def _string(value: str, ascii_only: bool) -> str:
    return json.dumps(value, ensure_ascii=ascii_only)


@st.composite
def bodies(draw: st.DrawFn) -> str:
    """JSON text whose objects are written from pair lists (so a key may appear twice)."""
    ascii_only = draw(st.booleans())

    def render(node: Any) -> str:
        if isinstance(node, tuple):  # an object as its pairs
            return "{" + ",".join(f"{_string(k, ascii_only)}:{render(v)}" for k, v in node) + "}"
        if isinstance(node, list):
            return "[" + ",".join(render(v) for v in node) + "]"
        if isinstance(node, str):
            return _string(node, ascii_only)
        return json.dumps(node)

    tree = draw(st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                             | st.lists(st.tuples(keys, inner), max_size=4).map(tuple), max_leaves=12))
    return render(tree)


def _full(raw: bytes) -> str | None:
    """What the full check answers: None (accepted or not JSON) or the refusal's status."""
    try:
        loads(raw)
    except AppError as exc:
        return str(exc.status)
    except (ValueError, RecursionError):
        return None
    return None


@settings(max_examples=400, deadline=None)
@given(bodies())
def test_the_proof_never_passes_what_the_full_check_refuses(text: str) -> None:
    raw = text.encode()
    full = _full(raw)
    if proven_clean(raw):
        assert full is None, text
    try:
        check(raw)
        got = None
    except AppError as exc:
        got = str(exc.status)
    assert got == full, text


@pytest.mark.parametrize("raw", [
    b'{"a":"x:y","a":1}',  # the dropped copy's colon cannot hide the duplicate
    b'{"a:":1,"a:":2}',
    b'{"a":1,"b":{"c":2,"c":3}}',
    b'{"a":{"b":1,"c":2},"a":1}',  # a dropped object drops its members too
    b'{"a":"x","a":"\\u003a"}',  # an escaped colon: a backslash, so never the proof
    b'{"items":[{"a":1},{"a":1,"a":1}]}',
])
def test_duplicates_are_refused(raw: bytes) -> None:
    assert not proven_clean(raw)
    with pytest.raises(AppError) as refused:
        check(raw)
    assert refused.value.status == 400


@pytest.mark.parametrize("raw", [b'{"a":"\\u0000"}', '{"a":"\x85"}'.encode(), b'{"a\x7f":1}'])
def test_control_characters_are_never_proven_clean(raw: bytes) -> None:
    assert not proven_clean(raw)
    with pytest.raises(AppError) as refused:
        check(raw)
    assert refused.value.status == 422


@pytest.mark.parametrize("raw", [
    b'{"a":NaN}', b'{"a":1e400}', b"[" * 300 + b"]" * 300, b"\xef\xbb\xbf{}", b"{", b'{"a":"\xff"}', b"",
])
def test_what_orjson_refuses_goes_to_the_full_check(raw: bytes) -> None:
    assert not proven_clean(raw)
    assert _full(raw) is None
    check(raw)  # invalid or unusual JSON is left to the caller's parser, as before


@pytest.mark.parametrize("raw", [
    POSITION_SIZE_BODY, batch_body(100, "rows"), batch_body(100, "columns-in-fields"),
    orjson.dumps({"note": "12:30 at 1:2", "t": ["a:b", {"c:": "d"}]}),
])
def test_ordinary_bodies_take_the_proof(raw: bytes) -> None:
    assert proven_clean(raw)
    check(raw)
