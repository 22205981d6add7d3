"""Every command that a run's summary or its report suggests works when the user types it."""

from __future__ import annotations

import csv
import html
import re
import shlex
from pathlib import Path

from conftest import run_cli

# a suggested command: `trustmh <subcommand> ...` up to the end of its clause
COMMAND = re.compile(
    r"trustmh (?:report|judge-check|export|run|reproduce|data|tasks)(?= )[^()\n;`<]*"
)


def suggested(text: str) -> set[str]:
    """Commands in a text (an HTML page is unescaped and stripped of tags first), without the
    documentation forms that name a placeholder (RUN, SPEC) instead of a value."""
    shown = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.S)  # the page's text only
    plain = re.sub(r"<[^>]+>", " ", html.unescape(shown))
    found = {c.strip().rstrip(".,") for c in COMMAND.findall(plain)}
    return {c for c in found if not re.search(r"\b(RUN|SPEC|DIR|N)\b", c) and len(c.split()) > 2}


def test_suggested_commands_work(tmp_path: Path, real_data: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_cli("run", "--model", "baseline", "--judge", "baseline", "--tasks",
                     "crisis.escalation_decision,ethics,reliability.psychological_diagnosis",
                     "--limit", "2", "--run-dir", str(run_dir), "--no-progress", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    # honest labels on the way: the stand-in named in the title, --limit in the header and CSV
    text = html.unescape(page)
    assert "Psychological diagnosis — STAND-IN: LLMs-Mental-Health-Crisis test set" in text
    assert "Psychological diagnosis (D4 + SWMH)" not in text
    assert "--limit 2: only the first 2 items of each subtask" in text
    assert "(1 of 5 subtasks)" not in text or "STAND-IN" in text
    with (run_dir / "report.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(r["limit"] == "2" for r in rows)
    assert {
        r["stand_in"] for r in rows if r["subtask"] == "reliability.psychological_diagnosis"
    } == {"LLMs-Mental-Health-Crisis test set, 7 crisis labels (not D4 + SWMH)"}
    commands = suggested(result.stdout) | suggested(page)
    judge_check = "trustmh judge-check --ratings crisis --judge baseline"
    assert judge_check in commands, commands  # appropriateness can be measured: say how
    assert any(c.startswith("trustmh report ") for c in commands), commands  # PNG figures
    for command in sorted(commands):
        args = shlex.split(command)[1:]
        if args[0] == "judge-check":
            args += ["--out", str(tmp_path / "judge-check"), "--no-progress", "--no-figures"]
        done = run_cli(*args, cwd=tmp_path)
        assert done.returncode == 0, f"{command}: {done.stderr}"
    # once measured, the summary shows the agreement instead of the suggestion
    again = run_cli("run", "--model", "baseline", "--judge", "baseline", "--tasks",
                    "crisis.escalation_decision", "--limit", "2", "--run-dir", str(run_dir),
                    "--no-progress", cwd=tmp_path)  # fmt: skip
    assert (
        "crisis.escalation_decision: judge baseline: not trusted to rate replies (item level) on appropriateness"
        in " ".join(again.stdout.split())
    )


def test_report_header_names_the_recorded_judge_and_not_recorded_samples(tmp_path: Path) -> None:
    """A replayed run (bundled recordings): the header names the judge whose recorded verdicts
    were used, and unrecorded items are "not recorded", never "failed"."""
    out = tmp_path / "rep"
    result = run_cli("reproduce", "--out", str(out), "--model", "GPT-5.1", "--model", "GPT-4o-mini",
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    page = html.unescape((out / "report.html").read_text(encoding="utf-8"))
    assert "judge gpt-4.1 (recorded, via replay:GPT-5.1)" in page
    assert "judge replay:" not in page
    assert re.search(r"\d+</a> not recorded", page) or " not recorded" in page
    rows = (out / "report.csv").read_text(encoding="utf-8").splitlines()
    header = rows[0].split(",")
    assert "not_recorded" in header and "limit" in header
    # the verdict per pillar
    assert re.search(r"^privacy: (matched|partly matched|not matched): ", result.stdout, re.M)
    assert re.search(r"^ethics: (matched|partly matched|not matched): ", result.stdout, re.M)
