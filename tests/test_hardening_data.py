"""A damaged data file never gives a silent number (issue 19, items 2 and 3).

A run checks the data files it reads against their checksums before the first request (hashes
remembered by size and mtime), refuses a damaged one with one line naming it and `trustmh data
verify`, records the file it actually read, says when a subtask has fewer items than it
declares, and never shrinks a stored result because of a smaller --limit."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import run_cli
from test_cli_errors import assert_one_line_error

from trustmh.data.checksums import FILES
from trustmh.data.sources import BUNDLED_DIR
from trustmh.engine import fewer_items_note
from trustmh.tasks.registry import get_task

ETHICS = ("ethicmh", "EthicMH.csv")
USMLE = ("usmle_mental", "USMLE-mental.jsonl")


def run_task(tmp_path: Path, task: str, data: Path, *args: str):
    return run_cli("run", "--model", "baseline", "--tasks", task, "--data-dir", str(data),
                   "--run-dir", str(tmp_path / "run"), "--no-progress", *args)  # fmt: skip


def data_folder(tmp_path: Path, source: str, name: str, content: bytes) -> Path:
    root = tmp_path / "data"
    (root / source).mkdir(parents=True)
    (root / source / name).write_bytes(content)
    return root


@pytest.mark.parametrize(
    ("source", "name", "task", "content"),
    [
        (*ETHICS, "ethics", b"x" * 5000),  # cut to 5,000 bytes
        (*USMLE, "reliability.knowledge", b""),  # emptied
        # same size as the catalogued file, other content: only the hash can tell
        (*USMLE, "reliability.knowledge", b"{}\n" * (FILES["usmle_mental"]["USMLE-mental.jsonl"][1] // 3)
         + b" " * (FILES["usmle_mental"]["USMLE-mental.jsonl"][1] % 3)),
    ],
)  # fmt: skip
def test_damaged_data_file_is_refused_before_any_request(
    tmp_path: Path, source, name, task, content
) -> None:
    data = data_folder(tmp_path, source, name, content)
    result = run_task(tmp_path, task, data)
    assert_one_line_error(result, str(data / source / name), "does not match its checksum",
                          "trustmh data verify")  # fmt: skip
    assert not (tmp_path / "run").exists()  # refused before the run directory was made


def test_a_file_changed_after_a_run_is_caught_on_the_next(tmp_path: Path, real_data: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(real_data / "usmle_mental", data / "usmle_mental")
    assert run_task(tmp_path, "reliability.knowledge", data, "--limit", "2").returncode == 0
    hashes = json.loads((tmp_path / "user-cache" / "data-hashes.json").read_text())
    target = data / "usmle_mental" / "USMLE-mental.jsonl"
    assert str(target.resolve()) in hashes  # hashed once, remembered by size and mtime
    raw = bytearray(target.read_bytes())
    raw[100] = ord("#") if raw[100] != ord("#") else ord("%")  # one byte, same size
    target.write_bytes(bytes(raw))
    result = run_task(tmp_path, "reliability.knowledge", data, "--limit", "2")
    assert_one_line_error(result, str(target), "SHA-256")


def test_a_directory_in_place_of_a_data_file_is_an_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "ethicmh" / "EthicMH.csv").mkdir(parents=True)
    result = run_task(tmp_path, "ethics", data, "--limit", "2")
    assert_one_line_error(result, str(data / "ethicmh" / "EthicMH.csv"), "a directory")


def test_provenance_names_the_file_actually_read(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "ethicmh").mkdir(parents=True)
    (data / "ethicmh" / "notes.txt").write_text("the CSV is elsewhere\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("run", "--model", "baseline", "--tasks", "ethics", "--data-dir", str(data),
                     "--limit", "2", "--run-dir", str(tmp_path / "run"), "--no-progress",
                     env={"TRUSTMH_DATA_DIR": str(empty)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    warnings = [ln for ln in result.stderr.splitlines() if ln.startswith("warning: data ethicmh/")]
    assert len(warnings) == 1 and f"not in --data-dir ({data / 'ethicmh'})" in warnings[0]
    with sqlite3.connect(tmp_path / "run" / "trustmh.sqlite") as conn:
        info = json.loads(
            conn.execute("SELECT value FROM meta WHERE key='task_info'").fetchone()[0]
        )
    record = info["ethics.ethical_reasoning"]["data"]["ethicmh/EthicMH.csv"]
    assert record["root"].startswith("bundled (") and "--data-dir" not in record["root"]
    assert Path(record["path"]).is_relative_to(BUNDLED_DIR)


def test_fewer_items_than_declared_is_said(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text("[options]\nn_items = 30\n", encoding="utf-8")  # ethics reads 30 of 125
    result = run_cli("run", "--model", "baseline", "--tasks", "ethics", "--config", str(config),
                     "--run-dir", str(tmp_path / "run"), "--no-progress", "--verbose",
                     env={"COLUMNS": "400"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "only 30 items, fewer than the 125 it declares" in result.stderr
    assert "only 30 items, fewer than the 125 it declares" in result.stdout  # the table's note
    with sqlite3.connect(tmp_path / "run" / "trustmh.sqlite") as conn:
        (note,) = conn.execute("SELECT note FROM results WHERE is_primary=1").fetchone()
    assert "fewer than the 125" in note


def test_fewer_items_note_rules() -> None:
    ethics = get_task("ethics.ethical_reasoning")  # declares "125"
    assert fewer_items_note(ethics, 125, None) is None
    assert "only 4 items" in fewer_items_note(ethics, 4, None)
    assert fewer_items_note(ethics, 20, 20) is None  # --limit explains it
    assert "only 4 items" in fewer_items_note(ethics, 4, 20)  # the limit asked for more
    assert fewer_items_note(get_task("privacy.awareness"), 1, None) is None  # "10 + 98 + 98"


def test_bundled_subset_is_checked_against_its_own_sums(tmp_path: Path, monkeypatch) -> None:
    from trustmh.data.sources import DataContext
    from trustmh.data.verify import HashCache, data_fingerprint

    got = data_fingerprint(DataContext((BUNDLED_DIR,), ("bundled",)), ["ethicmh"], HashCache(None))
    assert got["ethicmh/EthicMH.csv"]["checked"] == "sha256 (bundle)"
    assert os.path.basename(str(got["ethicmh/EthicMH.csv"]["path"])) == "EthicMH.csv.gz"


def test_a_data_folder_with_its_own_sums_decides(tmp_path: Path) -> None:
    """A deliberately changed data set runs when its folder's SHA256SUMS lists the new sums; a
    file that matches neither is still refused."""
    import hashlib

    data = tmp_path / "data"
    shutil.copytree(BUNDLED_DIR / "ethicmh", data / "ethicmh")
    gz = data / "ethicmh" / "EthicMH.csv.gz"
    import gzip

    rows = gzip.decompress(gz.read_bytes())
    gz.unlink()
    from trustmh.data.loaders.ethicmh import load_ethicmh
    from trustmh.data.sources import DataContext

    target = data / "ethicmh" / "EthicMH.csv"
    cut = len(rows) // 2
    while True:  # the first half of the items, cut where a row ends (rows span lines)
        cut = rows.rindex(b"\n", 0, cut)
        changed = rows[: cut + 1]
        target.write_bytes(changed)
        try:
            if 0 < len(load_ethicmh(DataContext((data,)))) < 125:
                break
        except Exception:  # noqa: BLE001 - cut inside a row: try an earlier line end
            pass
    refused = run_task(tmp_path, "ethics", data, "--limit", "2")
    assert_one_line_error(refused, "EthicMH.csv", "does not match its checksum")
    (data / "SHA256SUMS").write_text(
        f"{hashlib.sha256(changed).hexdigest()}  ethicmh/EthicMH.csv\n"
    )
    accepted = run_task(tmp_path, "ethics", data)
    assert accepted.returncode == 0, accepted.stderr
    assert "fewer than the 125 it declares" in accepted.stderr  # and the short set is said
