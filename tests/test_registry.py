"""The task registry matches the subtask table of docs/protocol.md (section 2) exactly."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from trustmh import cli_data
from trustmh.errors import UserError
from trustmh.tasks.registry import all_tasks, select_tasks

PILLARS = {
    "Reliability": "reliability",
    "Crisis": "crisis",
    "Safety": "safety",
    "Fairness": "fairness",
    "Privacy": "privacy",
    "Robustness": "robustness",
    "Anti-sycophancy": "sycophancy",
    "Ethics": "ethics",
}


PROTOCOL = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"


def protocol_rows() -> list[dict[str, str]]:
    """Rows of the subtask table (section 2) of the project's docs/protocol.md."""
    lines = PROTOCOL.read_text(encoding="utf-8").split("\n")
    start = lines.index("## 2. Subtask table")
    table = [ln for ln in lines[start:] if ln.startswith("|")]
    end = next(i for i, ln in enumerate(lines[start:]) if lines[start + i].startswith("## 3"))
    table = [ln for ln in lines[start : start + end] if ln.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    rows = [
        dict(zip(header, (c.strip() for c in ln.strip("|").split("|")), strict=True))
        for ln in table[2:]
    ]
    assert rows, "no rows parsed from the protocol's subtask table"
    return rows


def test_registry_ids_pillars_directions_match_protocol() -> None:
    rows = protocol_rows()
    registry = {t.id: t for t in all_tasks().values() if t.in_protocol}
    assert [r["id"] for r in rows] == list(registry)
    for row in rows:
        task = registry[row["id"]]
        assert task.pillar == PILLARS[row["pillar"]], row["id"]
        assert task.direction == row["better"], row["id"]
        # the label we declare is one the protocol names for this subtask (the least certain one
        # when a row mixes labels, e.g. "UPSTREAM prompt, DEFAULT metric")
        assert task.status in row["status"], row["id"]
        assert (
            task.n_items.split(" ")[0] in row["n used"]
            or row["n used"] in task.n_items
            or task.n_items
        )
    assert set(PILLARS.values()) == {t.pillar for t in registry.values()}


def test_every_subtask_declares_its_fields() -> None:
    for task in all_tasks().values():
        if not task.in_protocol:
            continue
        assert task.title and task.section and task.metric and task.n_items, task.id
        assert task.sources or task.optional_sources, task.id


def test_select_tasks_by_id_pillar_and_all() -> None:
    rows = protocol_rows()
    assert [t.id for t in select_tasks("all")] == [r["id"] for r in rows]
    privacy = [r["id"] for r in rows if r["pillar"] == "Privacy"]
    assert [t.id for t in select_tasks("privacy")] == privacy
    assert [t.id for t in select_tasks("reliability.knowledge,crisis")][:2] == [
        "reliability.knowledge",
        "crisis.crisis_identification",
    ]
    with pytest.raises(UserError, match="unknown subtask or pillar 'nope'"):
        select_tasks("nope")


def test_tasks_table_lists_every_subtask(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = protocol_rows()
    buffer = io.StringIO()
    monkeypatch.setattr(cli_data, "out", Console(file=buffer, width=400))
    cli_data.tasks_command(None)
    text = buffer.getvalue()
    for row in rows:
        assert row["id"] in text
    assert "smoke" not in text
    buffer.seek(0)
    buffer.truncate()
    cli_data.tasks_command("privacy")
    assert list(listed(buffer.getvalue())) == [r["id"] for r in rows if r["pillar"] == "Privacy"]
    with pytest.raises(UserError, match="unknown pillar 'privacyy'"):
        cli_data.tasks_command("privacyy")


def test_tasks_table_says_whether_data_is_present(
    monkeypatch: pytest.MonkeyPatch, real_data: Path
) -> None:
    buffer = io.StringIO()
    monkeypatch.setattr(cli_data, "out", Console(file=buffer, width=400))
    cli_data.tasks_command("reliability", real_data)
    status = listed(buffer.getvalue())
    assert status["reliability.knowledge"] == "yes"
    # D4 and SWMH are released on request; the task runs on its documented stand-in meanwhile
    assert status["reliability.psychological_diagnosis"] == "stand-in"


def listed(text: str) -> dict[str, str]:
    """subtask id -> its `data:` value, from the lines of `trustmh tasks` that name a subtask."""
    return {
        line.split()[0]: line.split("data: ", 1)[1].strip()
        for line in text.splitlines()
        if line.startswith("  ") and not line.startswith("    ") and "data: " in line
    }


def test_each_builtin_module_declares_only_its_own_pillar() -> None:
    # the convention that lets a selection import only the modules it needs
    from trustmh.tasks.registry import BUILTIN_MODULES, _module_tasks

    for pillar, module in BUILTIN_MODULES.items():
        declared = _module_tasks(module)
        assert declared, module
        for task in declared:
            assert task.pillar == pillar, (module, task.id)
            assert task.id == pillar or task.id.startswith(f"{pillar}."), (module, task.id)


def test_selection_through_one_module_equals_selection_through_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from trustmh.tasks import registry

    names = [*all_tasks(), *registry.pillars(), "all", "Reliability", "smoke,privacy.leakage"]
    fast = {name: [t.id for t in select_tasks(name)] for name in names}
    # the same selections with the per-pillar shortcut off: every module is read
    monkeypatch.setattr(registry, "_modules_for", lambda item: None)
    assert fast == {name: [t.id for t in select_tasks(name)] for name in names}


def test_selecting_smoke_imports_no_pillar_module_and_not_numpy() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from trustmh.tasks.registry import select_tasks, get_task;"
        "select_tasks('smoke'); get_task('smoke');"
        "print(sorted(m for m in sys.modules if m.startswith(('trustmh.tasks.', 'trustmh.judge_check'))));"
        "print('numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # numpy (a seventh of a second to import) is loaded while the first replies are out
    assert out.stdout.split() == [
        "['trustmh.tasks.base',", "'trustmh.tasks.registry',", "'trustmh.tasks.smoke']", "False"
    ]  # fmt: skip


def test_every_smoke_item_has_four_distinct_options_and_its_target() -> None:
    from trustmh.tasks.smoke import LETTERS, N_ITEMS, _draw, _item

    for index in range(N_ITEMS):
        numbers, _ = _draw(index)
        assert len(set(numbers)) == 4 and all(1 <= n <= 999 for n in numbers), index
    sample = _item(17)
    numbers, word = _draw(17)
    assert sample.target == LETTERS[numbers.index(max(numbers))]
    assert f"{sample.target}. {word} {max(numbers)}" in sample.messages[0]["content"]


def test_tasks_lists_beyond_subtasks_apart_with_data_and_cost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from trustmh.tasks.multiturn_safety import estimate_cost

    def listing(width: int) -> tuple[str, str]:
        buffer = io.StringIO()
        monkeypatch.setattr(cli_data, "out", Console(file=buffer, width=width))
        cli_data.tasks_command("crisis")
        protocol_table, _, beyond = buffer.getvalue().partition("Beyond the paper (BEYOND)")
        return protocol_table, beyond

    protocol_table, _ = listing(400)
    assert "crisis.multiturn_safety" not in protocol_table
    assert "crisis.escalation_decision" in protocol_table
    _, beyond = listing(80)
    assert "crisis.multiturn_safety " in beyond  # whole, on one line, at 80 columns
    flat = " ".join(beyond.split())
    cost = estimate_cost()
    assert cost.conversations == 50 and cost.model_requests == cost.simulator_requests == 250
    for fact in ("protocol 14.1, BEYOND", "vera_mh (personas.tsv", "rubric.tsv", "--judge SPEC",
                 "--simulator SPEC", f"{cost.model_requests} model + {cost.simulator_requests} simulator",
                 "10 turns", "tokens"):  # fmt: skip
        assert fact in flat, fact
    assert "crisis.multiturn_safety" not in [t.id for t in select_tasks("all")]
