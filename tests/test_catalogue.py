"""The task catalogue: the facts the report and the summary read about every registered subtask,
kept in the user cache so that a run does not import every task module to print its summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import fields

from trustmh.tasks import catalogue
from trustmh.tasks.catalogue import TaskFacts
from trustmh.tasks.registry import BUILTIN_MODULES, all_tasks

PROBE = """
import json, sys
from trustmh.tasks.catalogue import task_catalogue
facts = task_catalogue()
print(json.dumps({"ids": list(facts), "modules": sorted(m for m in sys.modules if m.startswith("trustmh.tasks."))}))
"""


def probe(cache_dir) -> dict:
    env = {**os.environ, "TRUSTMH_CACHE_DIR": str(cache_dir)}
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env,
                          check=True)  # fmt: skip
    return json.loads(done.stdout)


def test_the_facts_are_the_registrys_in_its_order():
    facts = catalogue.task_catalogue()
    registry = all_tasks()
    assert list(facts) == list(registry)
    for task_id, task in registry.items():
        for f in fields(TaskFacts):
            assert getattr(facts[task_id], f.name) == getattr(task, f.name), (task_id, f.name)


def test_kept_facts_are_read_back_without_importing_the_task_modules(tmp_path):
    first = probe(tmp_path)
    pillar_modules = set(BUILTIN_MODULES.values())
    assert pillar_modules & set(first["modules"])  # the first read imports the registry
    second = probe(tmp_path)
    assert second["ids"] == first["ids"] == list(all_tasks())
    assert not pillar_modules & set(second["modules"])
    [entry] = (tmp_path / catalogue.FOLDER).glob("*.json")
    entry.write_text("[{", encoding="utf-8")  # damaged: read from the registry again
    assert probe(tmp_path)["ids"] == first["ids"]


def test_an_edited_plug_in_changes_the_key(tmp_path, monkeypatch):
    plugin = tmp_path / "my_catalogue_plugin.py"
    plugin.write_text("TASKS = []\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(catalogue, "_plugin_modules", lambda: ("my_catalogue_plugin",))
    before = catalogue.catalogue_key()
    assert catalogue.catalogue_key() == before
    plugin.write_text("TASKS = []  # a task added here\n", encoding="utf-8")
    assert catalogue.catalogue_key() != before
    monkeypatch.setattr(catalogue, "_plugin_modules", lambda: ())
    assert catalogue.catalogue_key() != before  # the plug-in uninstalled
