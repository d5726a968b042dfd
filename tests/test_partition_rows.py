"""partition_rows keeps np.partition's guarantee for several kth along the last axis of a 2-D array."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from app.calc.risk.estimators import partition_rows


@settings(max_examples=200, deadline=None)
@given(rows=st.integers(1, 6), cols=st.integers(2, 60), seed=st.integers(0, 2**32 - 1), ties=st.booleans(),
       data=st.data())
def test_same_guarantee_as_numpy(rows: int, cols: int, seed: int, ties: bool, data: st.DataObject) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(-3, 4, size=(rows, cols)).astype(float) if ties else rng.normal(size=(rows, cols))
    kth = np.array(sorted(data.draw(st.sets(st.integers(0, cols - 1), min_size=1, max_size=4))), dtype=np.intp)
    before = a.copy()
    out = partition_rows(a, kth)
    assert np.array_equal(a, before)  # the input is left alone
    ordered = np.sort(a, axis=-1)
    for k in kth:
        assert np.array_equal(out[:, k], ordered[:, k])  # each kth element in its sorted place
        assert (out[:, :k] <= out[:, k:k + 1]).all() and (out[:, k + 1:] >= out[:, k:k + 1]).all()
    assert np.array_equal(np.sort(out, axis=-1), ordered)  # a permutation of each row
