"""Corrupted copies of real files fail with a one-line error naming the file and the row or field,
exit code 2, while the other sources keep loading."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import run_cli

from trustmh.data.loaders import load_all, load_source
from trustmh.data.sources import DataContext
from trustmh.errors import DataError

SMALL_SOURCES = [
    "trustmh",
    "usmle_mental",
    "emobench",
    "cpsycoune",
    "c_ssrs",
    "mh_crisis",
    "elephant",
]


@pytest.fixture
def copy_root(real_data: Path, tmp_path: Path) -> Path:
    """A data root holding copies of the small real sources."""
    root = tmp_path / "data"
    for source in SMALL_SOURCES:
        shutil.copytree(real_data / source, root / source)
    return root


def ctx_for(root: Path) -> DataContext:
    return DataContext((root,), ("--data-dir",))


def truncate_json(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def drop_column(path: Path, column: str) -> None:
    import csv
    import io

    text = path.read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    out = io.StringIO()
    writer = csv.DictWriter(out, [c for c in rows[0] if c != column])
    writer.writeheader()
    writer.writerows({k: v for k, v in r.items() if k != column} for r in rows)
    path.write_text(out.getvalue(), encoding="utf-8")


def replace_line(path: Path, lineno: int, edit: Callable[[str], str]) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[lineno - 1] = edit(lines[lineno - 1])
    path.write_text("\n".join(lines), encoding="utf-8")


CASES = [
    pytest.param(
        "mh_crisis",
        "human_label/human-labeled-sampled_dataset_n206_s42-merged_labels.json",
        truncate_json,
        r"human-labeled-sampled_dataset_n206_s42-merged_labels\.json: invalid JSON at line \d+",
        id="truncated-json",
    ),
    pytest.param(
        "trustmh",
        "JailbreakMH.csv",
        lambda p: drop_column(p, "method"),
        r"JailbreakMH\.csv: missing column 'method'",
        id="missing-column",
    ),
    pytest.param(
        "usmle_mental",
        "USMLE-mental.jsonl",
        lambda p: replace_line(
            p, 7, lambda s: s.replace('"options": {', '"options": "oops", "x": {', 1)
        ),
        r"USMLE-mental\.jsonl: line 7: field 'options'",
        id="wrong-type",
    ),
    pytest.param(
        "emobench",
        "EU.jsonl",
        lambda p: p.write_bytes(p.read_text(encoding="utf-8").encode("utf-16")),
        r"EU\.jsonl: byte \d+ cannot be decoded as utf-8",
        id="wrong-encoding",
    ),
    pytest.param(
        "c_ssrs",
        "500_Reddit_users_posts_labels.csv",
        lambda p: p.write_text(
            p.read_text(encoding="utf-8").replace("user-3,\"['", "user-3,\"{'", 1), encoding="utf-8"
        ),
        r"500_Reddit_users_posts_labels\.csv: row 5: field 'Post'",
        id="post-not-a-list",
    ),
    pytest.param(
        "c_ssrs",
        "500_Reddit_users_posts_labels.csv",
        lambda p: p.write_text(
            p.read_text(encoding="utf-8").replace(",Ideation\n", ",Suicidal\n", 1), encoding="utf-8"
        ),
        r"500_Reddit_users_posts_labels\.csv: row \d+: field 'label'",
        id="unknown-label",
    ),
    pytest.param(
        "cpsycoune",
        "Career/3.json",
        lambda p: p.write_text(
            p.read_text(encoding="utf-8").replace("支持者：", "咨询师：", 1), encoding="utf-8"
        ),
        r"Career/3\.json: turn 1: does not start with",
        id="bad-turn-prefix",
    ),
    pytest.param(
        "elephant",
        "AITA_sample.csv",
        lambda p: p.write_text(
            p.read_text(encoding="utf-8").replace(",1,YTA", ",yes,YTA", 1), encoding="utf-8"
        ),
        r"AITA_sample\.csv: row \d+: field 'is_asshole'",
        id="csv-wrong-type",
    ),
]


@pytest.mark.parametrize(("source", "relpath", "corrupt", "message"), CASES)
def test_corrupt_file_names_file_and_row_and_others_still_load(
    copy_root: Path, source: str, relpath: str, corrupt: Callable[[Path], None], message: str
) -> None:
    corrupt(copy_root / source / relpath)
    with pytest.raises(DataError, match=message) as info:
        load_source(ctx_for(copy_root), source)
    text = str(info.value)
    assert "\n" not in text and str(copy_root / source) in text
    assert info.value.exit_code == 2
    report = load_all(ctx_for(copy_root), SMALL_SOURCES)
    assert list(report.errors) == [source]
    assert set(report.records) == set(SMALL_SOURCES) - {source}


def test_esconv_malformed_turn(real_data: Path, tmp_path: Path) -> None:
    shutil.copytree(real_data / "esconv", tmp_path / "esconv")
    replace_line(
        tmp_path / "esconv" / "devWithStrategy_short.tsv",
        12,
        lambda s: s.replace(" EOS ", " EOS garbage EOS ", 1),
    )
    with pytest.raises(DataError, match=r"devWithStrategy_short\.tsv: line 12: turn 2 is not"):
        load_source(ctx_for(tmp_path), "esconv")


def test_mentalalign_bad_score_row(real_data: Path, tmp_path: Path) -> None:
    target = tmp_path / "mentalalign"
    target.mkdir()
    for name in ("contexts.csv", "evaluation_guidelines.md"):
        shutil.copy(real_data / "mentalalign" / name, target / name)
    lines = (real_data / "mentalalign" / "ratings.csv").read_text(encoding="utf-8").split("\n")
    lines[99] = lines[99].rsplit(",", 1)[0] + ",high"  # row 100 counting the header as row 1
    lines[500] = lines[500].replace(",human,", ",someone,")
    (target / "ratings.csv").write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataError, match=r"ratings\.csv: row 100: field 'score'"):
        load_source(ctx_for(tmp_path), "mentalalign")
    lines[99] = (
        (real_data / "mentalalign" / "ratings.csv").read_text(encoding="utf-8").split("\n")[99]
    )
    (target / "ratings.csv").write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataError, match=r"ratings\.csv: row 501: field 'rater'"):
        load_source(ctx_for(tmp_path), "mentalalign")


def test_checksum_mismatch_is_reported_by_verify(copy_root: Path) -> None:
    target = copy_root / "usmle_mental" / "USMLE-mental.jsonl"
    data = bytearray(target.read_bytes())
    data[100] = ord("Z") if data[100] != ord("Z") else ord("Y")
    target.write_bytes(bytes(data))
    (copy_root / "emobench" / "EA.jsonl").unlink()
    result = run_cli(
        "data", "verify", "usmle_mental", "emobench", "trustmh", "--data-dir", str(copy_root)
    )
    assert result.returncode == 2, result.stdout + result.stderr
    error_lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(error_lines) == 1 and "USMLE-mental.jsonl" in error_lines[0]
    rows = {ln.split("│")[1].strip(): ln for ln in result.stdout.splitlines() if ln.startswith("│")}
    assert "corrupt" in rows["usmle_mental"]
    assert "partial" in rows["emobench"]
    assert "present" in rows["trustmh"]


def test_bundled_trimmed_files_verify_against_the_bundle_sums(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bundled copies are trimmed, so they are checked against the bundle's own SHA256SUMS:
    all pass as shipped, and a tampered copy is reported corrupt."""
    import gzip

    import trustmh.data.verify as verify_module
    from trustmh.data.sources import BUNDLED_DIR
    from trustmh.data.verify import verify_source

    if not (BUNDLED_DIR / "trustmh_recorded").is_dir():
        pytest.skip("no bundled trustmh_recorded subset in this checkout")
    check = verify_source(DataContext((BUNDLED_DIR,), ("bundled",)), "trustmh_recorded")
    assert check.count("corrupt") == 0 and check.count("ok") > 0
    assert check.count("ok") + check.count("not bundled") == len(check.files)

    copy = tmp_path / "bundled"
    shutil.copytree(BUNDLED_DIR, copy)
    victim = sorted((copy / "trustmh_recorded" / "ethics").glob("*.jsonl.gz"))[0]
    victim.write_bytes(gzip.compress(gzip.decompress(victim.read_bytes())[:-10]))
    monkeypatch.setattr(verify_module, "BUNDLED_DIR", copy)
    tampered = verify_source(DataContext((copy,), ("bundled",)), "trustmh_recorded")
    assert tampered.count("corrupt") == 1
