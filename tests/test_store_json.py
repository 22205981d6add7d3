"""The run store reads its JSON columns back with json's C scanner called directly
(`store._loads`): it must give exactly what json.loads gives, and fail as json.loads fails. It
writes them, and the request keys, with encoders built once: byte for byte what json.dumps writes,
so that keys made before stay the keys of the same requests (caches and resumes match)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustmh.store import _dumps, _encode_key, _loads

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


@settings(max_examples=300, derandomize=True)
@given(value=JSON_VALUES)
def test_values_and_keys_are_written_exactly_as_json_dumps_writes_them(value) -> None:
    assert _dumps(value) == (
        None if value is None else json.dumps(value, ensure_ascii=False, default=str)
    )
    payload = {"m": "openai:m", "msg": [{"role": "user", "content": value}], "p": {"t": 0}}
    assert _encode_key(payload) == json.dumps(
        payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")
    )


def test_a_value_json_cannot_encode_is_written_as_its_text() -> None:
    from pathlib import PurePosixPath

    assert _dumps({"path": PurePosixPath("a/b")}) == '{"path": "a/b"}'
