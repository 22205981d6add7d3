"""--limit counts items, and keeps every variant of each item it takes."""

from __future__ import annotations

from trustmh.engine import _limited
from trustmh.types import Sample


def sample(item: str, variant: str) -> Sample:
    return Sample(
        id=item, messages=({"role": "user", "content": f"{item}/{variant}"},), variant=variant
    )


def test_limit_keeps_whole_items_whether_samples_come_by_item_or_by_variant():
    by_item = [sample(i, v) for i in "abc" for v in ("clean", "x", "y")]
    by_variant = [sample(i, v) for v in ("clean", "x", "y") for i in "abc"]
    for samples in (by_item, by_variant):
        kept = _limited(iter(samples), 2)
        assert {(s.id, s.variant) for s in kept} == {
            (i, v) for i in "ab" for v in ("clean", "x", "y")
        }
    assert _limited(iter(by_item), None) == by_item
    assert len(_limited(iter(by_item), 10)) == 9
