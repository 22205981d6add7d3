"""The index of runs: every run `trustmh run` writes is found by `trustmh runs` and by name in
`trustmh report` / `trustmh compare` from any folder; stale entries are reported and pruned;
`--runs-root` still lists one folder. Real CLI, real SQLite files, an isolated $TRUSTMH_HOME."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from conftest import run_cli

from trustmh import run_index
from trustmh.errors import UserError


def smoke_run(run_dir: Path, env: dict[str, str], cwd: Path | None = None) -> None:
    result = run_cli("run", "--model", "baseline", "--tasks", "smoke", "--limit", "10",
                     "--run-dir", str(run_dir), "--no-progress", env=env, cwd=cwd)  # fmt: skip
    assert result.returncode == 0, result.stderr


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"TRUSTMH_HOME": os.environ["TRUSTMH_HOME"], "TRUSTMH_CACHE_DIR": str(tmp_path / "c")}


def test_a_run_is_indexed_and_listed_from_another_folder(tmp_path: Path, env) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    smoke_run(Path("runs/first"), env, cwd=project)  # a relative --run-dir
    listed = run_cli("runs", env=env, cwd=elsewhere)
    assert listed.returncode == 0, listed.stderr
    assert "first" in listed.stdout and str(project / "runs") in listed.stdout.replace("\n", "")
    entries = run_index.indexed()
    assert [e.path for e in entries] == [project / "runs" / "first"]
    assert entries[0].model == "baseline" and entries[0].started
    # a resume refreshes the entry, never duplicates it
    smoke_run(project / "runs" / "first", env)
    assert len(run_index.indexed()) == 1


def test_report_and_compare_take_run_names_from_any_folder(tmp_path: Path, env) -> None:
    smoke_run(tmp_path / "a" / "run-one", env)
    smoke_run(tmp_path / "b" / "run-two", env)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    made = run_cli("report", "run-one", "b/run-two", "-o", "r.html", "--no-figures",
                   "--no-reference", env=env, cwd=elsewhere)  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert (elsewhere / "r.html").is_file()
    compared = run_cli("compare", "run-one", "run-two", env=env, cwd=elsewhere)
    assert compared.returncode == 0, compared.stderr
    assert "smoke" in compared.stdout


def test_an_ambiguous_or_unknown_name_is_one_clear_error(tmp_path: Path, env) -> None:
    smoke_run(tmp_path / "x" / "same", env)
    smoke_run(tmp_path / "y" / "same", env)
    with pytest.raises(UserError, match="2 indexed runs have this name"):
        run_index.find("same")
    assert run_index.find("y/same") == tmp_path / "y" / "same"
    result = run_cli("report", "same", "-o", str(tmp_path / "r.html"), env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("error: same: 2 indexed runs have this name")
    result = run_cli("compare", "nope", "same", env=env)
    assert result.returncode == 2 and "nope: not a run directory" in result.stderr


def test_stale_entries_are_reported_then_pruned(tmp_path: Path, env) -> None:
    smoke_run(tmp_path / "gone", env)
    smoke_run(tmp_path / "kept", env)
    for path in (tmp_path / "gone").iterdir():
        path.unlink()
    (tmp_path / "gone").rmdir()
    listed = run_cli("runs", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "kept" in listed.stdout
    assert "1 indexed runs no longer exist" in listed.stdout and "--prune" in listed.stdout
    # a stale entry never resolves as a name
    assert run_index.find("gone") is None
    pruned = run_cli("runs", "--prune", env=env, cwd=tmp_path)
    assert "forgot 1 indexed runs" in pruned.stdout
    assert [e.name for e in run_index.indexed()] == ["kept"]


def test_runs_root_lists_one_folder_and_indexes_what_it_finds(tmp_path: Path, env) -> None:
    root = tmp_path / "results"
    smoke_run(root / "r1", env)
    smoke_run(tmp_path / "elsewhere-run", env)
    # a run copied in from another machine is not in the index until a listing finds it
    with sqlite3.connect(run_index.index_path()) as conn:
        conn.execute("DELETE FROM runs WHERE name='r1'")
    listed = run_cli("runs", "--runs-root", str(root), env=env)
    assert listed.returncode == 0, listed.stderr
    assert "r1" in listed.stdout and "elsewhere-run" not in listed.stdout
    assert {e.name for e in run_index.indexed()} == {"r1", "elsewhere-run"}
    empty = run_cli("runs", "--runs-root", str(tmp_path / "none"), env=env)
    assert empty.returncode == 0 and "no runs under" in empty.stdout


def test_a_run_whose_index_cannot_be_written_still_runs(tmp_path: Path, env) -> None:
    blocker = tmp_path / "home-is-a-file"
    blocker.write_text("not a folder")
    result = run_cli("run", "--model", "baseline", "--tasks", "smoke", "--limit", "5", "--run-dir",
                     str(tmp_path / "run"), "--no-progress", env={**env, "TRUSTMH_HOME": str(blocker)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "run not added to the index of runs" in result.stderr
    assert (tmp_path / "run" / "trustmh.sqlite").is_file()
