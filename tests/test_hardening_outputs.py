"""Outputs never destroy a run, and read-only runs can be read (issue 19, items 1 and 8).

Reports and exports refuse any path that is a database (by name, by being the run's own, by the
SQLite header), and replace their files atomically: killed mid-write or out of disk, the old file
stays whole. `runs`, `report` and `export` read runs on a real read-only mount."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from conftest import run_cli, trustmh_exe
from mounts import readonly_view, tmpfs
from test_cli_errors import assert_one_line_error


def make_run(run_dir: Path, limit: int = 20) -> Path:
    result = run_cli("run", "--model", "baseline", "--tasks", "smoke", "--limit", str(limit),
                     "--run-dir", str(run_dir), "--no-progress")  # fmt: skip
    assert result.returncode == 0, result.stderr
    return run_dir


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("outputs") / "run")


@pytest.mark.parametrize(
    "target",
    [
        "trustmh.sqlite",
        "trustmh.sqlite-wal",
        "copy-of-db.bin",
        "link-to-db.html",
        "../cache.sqlite",
    ],
)
def test_outputs_never_overwrite_a_database(small_run: Path, tmp_path: Path, target: str) -> None:
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    db = run / "trustmh.sqlite"
    shutil.copy(db, run / "copy-of-db.bin")  # a database under another name: caught by its header
    (run / "link-to-db.html").symlink_to("trustmh.sqlite")  # the run's own database, by path
    before = digest(db)
    out = run / target
    for args in (("report", str(run), "-o", str(out), "--no-figures", "--no-reference"),
                 ("export", str(run), "--out", str(out)),
                 ("export", str(run), "--format", "csv", "--out", str(out))):  # fmt: skip
        result = run_cli(*args)
        assert_one_line_error(result, "is a database", target.lstrip("./"))
    assert digest(db) == before and integrity(db) == "ok"
    assert digest(run / "copy-of-db.bin") == before


def test_report_sibling_files_are_checked_too(small_run: Path, tmp_path: Path) -> None:
    shutil.copy(
        small_run / "trustmh.sqlite", tmp_path / "page.json"
    )  # where -o page.html puts its JSON
    result = run_cli("report", str(small_run), "-o", str(tmp_path / "page.html"), "--no-reference")
    assert_one_line_error(result, "page.json", "is a database")
    assert not (tmp_path / "page.html").exists()


def test_killing_report_mid_write_leaves_the_old_file(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", limit=5000)  # a report of a few MB: its write takes a while
    out = tmp_path / "out"
    out.mkdir()
    existing = out / "existing.html"
    existing.write_text("<html>the previous report</html>\n")
    command = [
        *trustmh_exe(),
        "report",
        str(run),
        "-o",
        str(existing),
        "--no-figures",
        "--no-reference",
    ]
    caught = 0
    for _ in range(5):
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if any(n.startswith(".existing.html.") for n in os.listdir(out)):
                proc.send_signal(signal.SIGKILL)  # the new report is being written right now
                caught += 1
                break
        proc.wait()
        assert existing.read_text() == "<html>the previous report</html>\n"
        if caught >= 2:
            break
    assert caught >= 2, "the kill never landed during the write"
    # the kill leaves its temporary file behind, never a half-written target; a finished run
    # replaces the old report in one step
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    page = existing.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert len(json.loads((out / "existing.json").read_text())["runs"]) == 1


def test_report_and_export_on_a_full_disk(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", limit=2000)
    with tmpfs(tmp_path / "small", "256k") as disk:
        old = "<html>the previous report</html>\n"
        (disk / "existing.html").write_text(old)
        result = run_cli("report", str(run), "-o", str(disk / "existing.html"), "--no-figures",
                         "--no-reference")  # fmt: skip
        assert_one_line_error(result, "existing.html", "No space left on device")
        assert (disk / "existing.html").read_text() == old
        result = run_cli("export", str(run), "--out", str(disk / "samples.jsonl"))
        assert_one_line_error(result, "samples.jsonl", "No space left on device")
        assert sorted(os.listdir(disk)) == ["existing.html"]  # no temporary file left behind


def killed_run(run_dir: Path) -> Path:
    """A run whose process was SIGKILLed before it could checkpoint: rows live in its -wal."""
    run_dir.mkdir(parents=True)
    script = (
        "import sqlite3, sys, time\n"
        f"conn = sqlite3.connect({str(run_dir / 'trustmh.sqlite')!r}, isolation_level=None)\n"
        "conn.execute('PRAGMA journal_mode=WAL'); conn.execute('PRAGMA wal_autocheckpoint=0')\n"
        "from trustmh.store import RUN_SCHEMA\n"
        "conn.executescript(RUN_SCHEMA)\n"
        "conn.execute(\"INSERT INTO meta VALUES ('status', '\\\"running\\\"')\")\n"
        "conn.execute(\"INSERT INTO samples VALUES ('smoke', '1', 'clean', '[]', null, null, 'k')\")\n"
        "print('ready', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([os.environ.get("PYTHON", trustmh_python()), "-c", script],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "ready"
    proc.kill()
    proc.wait()
    proc.stdout.close()
    assert (run_dir / "trustmh.sqlite-wal").stat().st_size > 0
    return run_dir


def trustmh_python() -> str:
    import sys

    return sys.executable


def test_read_only_runs_can_be_listed_reported_and_exported(
    small_run: Path, tmp_path: Path
) -> None:
    base = tmp_path / "base"
    base.mkdir()
    shutil.copytree(small_run, base / "clean")
    for leftover in (base / "clean").glob("trustmh.sqlite-*"):
        leftover.unlink()  # closed cleanly: no -wal or -shm beside the database
    killed_run(base / "killed")
    with readonly_view(base, tmp_path / "view") as view:
        with pytest.raises(OSError):
            (view / "clean" / "probe").write_text("x")  # really read-only
        listing = run_cli("runs", "--runs-root", str(view), env={"COLUMNS": "250"})
        assert listing.returncode == 0, listing.stderr
        assert "complete" in listing.stdout and "interrupted" in listing.stdout
        assert "20/20" in listing.stdout
        for name in ("clean", "killed"):
            exported = run_cli("export", str(view / name), "--out", str(tmp_path / f"{name}.jsonl"))
            assert exported.returncode == 0, exported.stderr
        assert len((tmp_path / "clean.jsonl").read_text().splitlines()) == 20
        assert len((tmp_path / "killed.jsonl").read_text().splitlines()) == 1  # the row in the WAL
        report = run_cli("report", str(view / "clean"), str(view / "killed"), "-o",
                         str(tmp_path / "r.html"), "--no-figures", "--no-reference")  # fmt: skip
        assert report.returncode == 0, report.stderr
        # writing into the read-only run is one clear line
        refused = run_cli("export", str(view / "clean"))
        assert_one_line_error(refused, "samples.jsonl", "cannot write there")
        assert sorted(os.listdir(view / "clean")) == sorted(os.listdir(base / "clean"))


def test_outputs_to_devices_pipes_and_links(small_run: Path, tmp_path: Path) -> None:
    """A device or pipe is written to, never replaced (a rename over /dev/full or /dev/stdout would
    swap the device node for a file, as root); a link is followed to the file it names."""
    piped = subprocess.run([*trustmh_exe(), "export", str(small_run), "--out", "/dev/stdout"],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    assert len([line for line in piped.stdout.splitlines() if line.startswith("{")]) == 20
    full = run_cli("export", str(small_run), "--out", "/dev/full")
    assert_one_line_error(full, "/dev/full", "No space left on device")
    assert Path("/dev/full").is_char_device() and Path("/dev/stdout").is_symlink()
    (tmp_path / "real.jsonl").write_text("old\n")
    (tmp_path / "link.jsonl").symlink_to("real.jsonl")
    assert run_cli("export", str(small_run), "--out", str(tmp_path / "link.jsonl")).returncode == 0
    assert (tmp_path / "link.jsonl").is_symlink()
    assert len((tmp_path / "real.jsonl").read_text().splitlines()) == 20
