"""Every "protocol N.M" or "§N.M" a user can meet (in the code, the terminal, a report, the docs)
points to a section that exists in docs/protocol.md; and the user docs never send anyone to the
development layout's `../shared` folder, which users do not have."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO, run_cli

from trustmh.tasks.registry import all_tasks

PROTOCOL = REPO / "docs" / "protocol.md"
# "protocol 7.2", "protocol section 4", "protocol sections 3.4", "protocol Appendix B", "§3.3"
REFERENCE = re.compile(
    r"(?:\bprotocol(?:'s)?(?: sections?| §)?|§)\s?(Appendix [AB]|\d+(?:\.\d+)?)(?![\d.]*\d)"
)
HEADING = re.compile(r"^#{2,3} (?:(Appendix [AB])|(\d+(?:\.\d+)?))[. ]", re.M)
TEXT_SUFFIXES = {".py", ".md", ".j2", ".js", ".css", ".toml", ".csv", ".txt", ".yaml", ".json"}


def sections() -> set[str]:
    """The section numbers docs/protocol.md has ("0", "1.3", "Appendix B", ...)."""
    found = {a or n for a, n in HEADING.findall(PROTOCOL.read_text(encoding="utf-8"))}
    assert {"0", "1.3", "3.3", "7.2", "10.1", "11", "Appendix B"} <= found
    return found


def references(text: str) -> set[str]:
    return set(REFERENCE.findall(text))


def project_texts() -> dict[Path, str]:
    """The project's own text files: package code and data it ships (not the bundled datasets),
    templates, rubrics, README and docs."""
    roots = [REPO / "src" / "trustmh", REPO / "docs"]
    files = [REPO / "README.md"]
    for root in roots:
        files += [
            p
            for p in root.rglob("*")
            if p.is_file() and p.suffix in TEXT_SUFFIXES and "bundled/data" not in p.as_posix()
        ]
    return {p: p.read_text(encoding="utf-8") for p in files}


def test_the_reference_pattern_reads_the_forms_in_use() -> None:
    text = "see protocol 7.2, protocol section 4: and §3.3; protocol Appendix B; protocol 11)."
    assert references(text) == {"7.2", "4", "3.3", "Appendix B", "11"}


def test_every_reference_in_code_and_docs_points_to_a_section() -> None:
    known = sections()
    missing = {
        f"{path.relative_to(REPO)}: {ref}"
        for path, text in project_texts().items()
        for ref in references(text)
        if ref not in known
    }
    assert not missing, sorted(missing)


def test_every_subtask_section_exists() -> None:
    """`trustmh tasks` and reports print each subtask's section as §N.M."""
    known = sections()
    for task in all_tasks().values():
        if task.section != "-":
            assert task.section in known, task.id


def test_references_in_terminal_output_and_report_exist(tmp_path: Path) -> None:
    """What a user sees: the task list, a run's summary (every metric, --verbose), its report."""
    known = sections()
    listing = run_cli("tasks")
    assert listing.returncode == 0, listing.stderr
    run = run_cli("run", "--model", "baseline", "--tasks", "privacy,ethics", "--limit", "3",
                  "--run-dir", str(tmp_path / "run"), "--no-progress", "--verbose")  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    seen = set()
    for text in (listing.stdout, run.stdout, run.stderr, report):
        seen |= references(text)
    assert seen, "no reference seen: the pattern or the output changed"
    assert seen <= known, sorted(seen - known)


@pytest.mark.parametrize("command", [("--help",), ("run", "--help"), ("data", "--help"),
                                     ("data", "list", "--help"), ("data", "verify", "--help"),
                                     ("data", "fetch", "--help"), ("tasks", "--help")])  # fmt: skip
def test_help_never_mentions_the_development_data_folder(command: tuple[str, ...]) -> None:
    result = run_cli(*command)
    assert result.returncode == 0, result.stderr
    assert "../shared" not in result.stdout and "shared/data" not in result.stdout


def test_user_docs_never_mention_the_development_data_folder() -> None:
    for path, text in project_texts().items():
        if path.suffix in (".md", ".j2", ".js") or path.name == "cli_data.py":
            assert "../shared" not in text and "shared/data" not in text, path
