"""A run records, per subtask, the protocol status label of its rules and the checksums of the data
files it read (protocol Appendix B)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from conftest import run_cli

from trustmh.data.sources import DataContext
from trustmh.data.verify import data_fingerprint
from trustmh.errors import DataError


def test_run_records_status_labels_and_data_checksums(tmp_path: Path, real_data: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_cli("run", "--model", "baseline", "--tasks", "reliability.knowledge,ethics",
                     "--limit", "2", "--run-dir", str(run_dir), "--no-progress")  # fmt: skip
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(run_dir / "trustmh.sqlite") as conn:
        (value,) = conn.execute("SELECT value FROM meta WHERE key = 'task_info'").fetchone()
    info = json.loads(value)
    assert info["reliability.knowledge"]["status_label"] == "DEFAULT"
    assert info["ethics.ethical_reasoning"]["status_label"] == "EXACT"
    record = info["reliability.knowledge"]["data"]["usmle_mental/USMLE-mental.jsonl"]
    data_file = real_data / "usmle_mental" / "USMLE-mental.jsonl"
    assert record["sha256"] == hashlib.sha256(data_file.read_bytes()).hexdigest()
    assert record["size"] == data_file.stat().st_size
    assert any(key.startswith("ethicmh/") for key in info["ethics.ethical_reasoning"]["data"])


def test_a_file_that_differs_from_the_catalogue_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "usmle_mental"
    folder.mkdir()
    (folder / "USMLE-mental.jsonl").write_text('{"changed": true}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"USMLE-mental\.jsonl: does not match its checksum"):
        data_fingerprint(DataContext((tmp_path,)), ["usmle_mental/USMLE-mental.jsonl"])


def test_a_file_outside_the_catalogue_is_hashed_and_recorded(tmp_path: Path) -> None:
    folder = tmp_path / "elephant"
    folder.mkdir()
    (folder / "OEQ.csv").write_text("prompt\nhello\n", encoding="utf-8")
    got = data_fingerprint(DataContext((tmp_path,), ("--data-dir",)), ["elephant/OEQ.csv", "d4"])
    record = got["elephant/OEQ.csv"]
    assert record["checked"] == "not catalogued"
    assert record["sha256"] == hashlib.sha256(b"prompt\nhello\n").hexdigest()
    assert record["root"] == f"--data-dir ({tmp_path})" and record["path"] == str(
        folder / "OEQ.csv"
    )
    assert list(got) == ["elephant/OEQ.csv"]  # an absent source is left out
