"""The run store reads its JSON columns back with json's C scanner called directly
(`store._loads`): it must give exactly what json.loads gives, and fail as json.loads fails."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustmh.store import _dumps, _loads

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


def _same(a, b) -> bool:
    """Equal, with NaN equal to NaN (json reads NaN back as NaN)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=300, derandomize=True)
@given(value=JSON_VALUES)
def test_what_the_store_writes_reads_back_as_json_loads_reads_it(value) -> None:
    text = _dumps(value)
    assert _same(_loads(text), json.loads(text) if text is not None else None)


@settings(max_examples=300, derandomize=True)
@given(text=st.text(max_size=12) | st.sampled_from([" 1", "1 ", "[1] x", "{}{}", "nul", "\ufeff1"]))
def test_any_text_reads_or_fails_as_with_json_loads(text: str) -> None:
    try:
        expected = json.loads(text)
    except json.JSONDecodeError as exc:
        with pytest.raises(json.JSONDecodeError) as raised:
            _loads(text)
        assert str(raised.value) == str(exc)
    else:
        assert _same(_loads(text), expected)
