"""--limit counts items, and keeps every variant of each item it takes."""

from __future__ import annotations

from trustmh.engine import iter_limited
from trustmh.types import Sample


def sample(item: str, variant: str) -> Sample:
    return Sample(
        id=item, messages=({"role": "user", "content": f"{item}/{variant}"},), variant=variant
    )


def test_limit_keeps_whole_items_and_stops_reading_after_them():
    by_item = [sample(i, v) for i in "abc" for v in ("clean", "x", "y")]
    read: list[Sample] = []

    def produce():
        for s in by_item:
            read.append(s)
            yield s

    kept = list(iter_limited(produce(), 2))
    assert {(s.id, s.variant) for s in kept} == {(i, v) for i in "ab" for v in ("clean", "x", "y")}
    assert len(read) == 7  # the first sample of item c ends the reading
    assert list(iter_limited(iter(by_item), None)) == by_item
    assert len(list(iter_limited(iter(by_item), 10))) == 9


def test_every_builtin_task_yields_an_items_variants_together(full_ctx):
    from trustmh.config import RunConfig
    from trustmh.engine import task_options
    from trustmh.tasks.registry import all_tasks

    cfg = RunConfig(model="baseline", tasks=["all"])
    for task in all_tasks().values():
        if not task.implemented:
            continue
        seen: list[str] = []
        try:
            samples = task.samples(full_ctx, task_options(cfg, task))
            for n, s in enumerate(samples):
                if not seen or seen[-1] != s.id:
                    assert s.id not in seen, f"{task.id}: item {s.id} comes back after another item"
                    seen.append(s.id)
                if n > 3000:
                    break
        except (
            Exception
        ) as exc:  # data a task needs may be absent here (D4, PAS): not this test's subject
            if type(exc).__name__ not in ("DataError", "UserError"):
                raise
