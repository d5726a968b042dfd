"""The project's copy of the reference vectors must equal ../shared/reference whenever it exists."""

from __future__ import annotations

from pathlib import Path

import pytest

COPY = Path(__file__).parent / "reference"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "reference"


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_copy_is_complete() -> None:
    names = files(COPY)
    assert "calc-vectors.json" in names and "risk-vectors.json" in names
    assert any(n.startswith("data/") for n in names)


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/reference is not on this machine (a bare clone)")
def test_copy_equals_shared_reference() -> None:
    shared, copy = files(SHARED), files(COPY)
    assert sorted(shared) == sorted(copy), "file lists differ: re-copy ../shared/reference into tests/reference"
    changed = [name for name in shared if shared[name] != copy[name]]
    assert not changed, f"stale copies: {changed}"
