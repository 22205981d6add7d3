"""Report benchmark: a synthetic 20,000-sample run (real SQLite store) -> `trustmh report` -> headless
Chromium.

Builds the run with tests/report_synthetic.py (one subtask per protocol pillar from the task
registry, realistic text lengths: ~1,200-character prompts, ~800-character replies, judge verdicts
on some subtasks, perturbation levels and groups as breakdowns), writes the report with the
installed `trustmh report` command, then opens it from file:// in the system Chromium (never a
downloaded browser) and times:
- load: navigation start to the load event;
- ready: navigation start to the first render of the sample table (the page's own marker);
- drill-down: clicking a subtask's "failed" link until the filtered rows are shown.
Targets: the page opens (first render and load event) in under 3 s and the HTML stays under 30 MB. Exits 1 when a target
is missed (unless --no-check).

    .venv/bin/python bench/report.py [-n 20000] [--keep DIR] [--no-check]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from report_synthetic import SyntheticTask, write_synthetic_run  # noqa: E402

TARGET_OPEN_S = 3.0
TARGET_MB = 30.0
LEVELS = ("0.0", "0.05", "0.1", "0.2", "0.3", "0.5")
GROUPS = ("role_play", "fixed_sentence", "refusal_suppression", "prefix_injection", "leetspeak")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def synthetic_tasks(n_samples: int) -> list[SyntheticTask]:
    """One registered subtask per protocol pillar; items chosen so the run holds n_samples samples.
    Every third subtask varies over perturbation levels, every third over groups, the rest clean."""
    from trustmh.tasks.registry import all_tasks

    picked = {}
    for task in all_tasks().values():
        if task.in_protocol and task.pillar not in picked:
            picked[task.pillar] = task
    specs = []
    for i, task in enumerate(picked.values()):
        dimension, variants = [(None, ()), ("level", LEVELS), ("method", GROUPS)][i % 3]
        specs.append((task, dimension, variants))
    per_item = sum(max(len(v), 1) for _, _, v in specs)
    n_items = max(1, n_samples // per_item)
    out = []
    for i, (task, dimension, variants) in enumerate(specs):
        out.append(SyntheticTask(task.id, n_items, task.direction, dimension, variants,  # type: ignore[arg-type]
                                 p_correct=0.5 + 0.05 * i, judged=i % 2 == 0))  # fmt: skip
    return out


def status(task: str, index: int) -> str:
    """A few refused, unparseable and failed samples, as in a real run."""
    return {7: "refused", 11: "unparsed", 13: "error"}.get(index % 97, "ok")


def judge_text(task: str, index: int, rng) -> str:
    """A fenced JSON verdict like a rubric judge's."""
    reason = "The reply validates the feelings and suggests a next step."
    return f'```json\n{{"score": {1 + index % 5}, "reason": "{reason}"}}\n```'


def open_in_browser(html: Path, repeats: int) -> dict[str, float]:
    """Median load, ready and drill-down times over `repeats` fresh pages."""
    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise SystemExit("no chromium found (Debian: apt-get install chromium)")
    loads, readies, drills = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            for _ in range(repeats):
                page = browser.new_page()
                page.goto(html.as_uri(), wait_until="load", timeout=60_000)
                page.wait_for_selector("body[data-ready='1']", timeout=60_000)
                timing = page.evaluate(
                    """() => { const n = performance.getEntriesByType('navigation')[0];
                       const r = performance.getEntriesByName('trustmh-ready')[0];
                       return {load: n.loadEventEnd, ready: r ? r.startTime : null}; }"""
                )
                loads.append(timing["load"] / 1000)
                readies.append(timing["ready"] / 1000)
                link = page.locator("#subtask-table a[href*='filter=failed']").first
                started = time.perf_counter()
                link.click()
                page.wait_for_selector("#dd-filters button.on[data-filter='failed']")
                page.wait_for_selector("#dd-rows tr.item")
                drills.append(time.perf_counter() - started)
                page.close()
        finally:
            browser.close()
    return {"load": statistics.median(loads), "ready": statistics.median(readies),
            "drill": statistics.median(drills)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20_000, help="samples in the synthetic run")
    parser.add_argument("--repeat", type=int, default=3, help="page openings to take the median of")
    parser.add_argument("--keep", type=Path, help="keep the run and report in this folder")
    parser.add_argument("--no-check", action="store_true", help="print only; never exit 1")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="trustmh-bench-report-"))
    work.mkdir(parents=True, exist_ok=True)
    run_dir = work / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    started = time.perf_counter()
    write_synthetic_run(run_dir, synthetic_tasks(args.n), model="synthetic:bench",
                        status_fn=status, judge_fn=judge_text)  # fmt: skip
    build_s = time.perf_counter() - started
    html = work / "report.html"
    exe = shutil.which("trustmh", path=str(Path(sys.executable).parent)) or "trustmh"
    started = time.perf_counter()
    # a synthetic model is never placed among the paper's models: skip the reference scores
    result = subprocess.run([exe, "report", str(run_dir), "-o", str(html), "--no-reference"],
                            capture_output=True, text=True)  # fmt: skip
    report_s = time.perf_counter() - started
    if result.returncode != 0:
        print(result.stdout, result.stderr)
        return 1
    print(result.stdout.strip())
    size_mb = html.stat().st_size / 1e6
    timing = open_in_browser(html, args.repeat)
    rows = [
        ("samples", f"{args.n:,} requested; report says: {result.stdout.split('(')[1].split(',')[0]}"),
        ("synthetic run written (s)", f"{build_s:.1f}"),
        ("trustmh report, whole command (s)", f"{report_s:.1f}"),
        ("HTML size (MB)", f"{size_mb:.1f}  (target < {TARGET_MB:g})"),
        ("open: first render of the sample table (s, median)", f"{timing['ready']:.2f}"),
        ("open: load event (s, median)", f"{timing['load']:.2f}  (target < {TARGET_OPEN_S:g})"),
        ("click 'failed' link -> filtered drill-down shown (s)", f"{timing['drill']:.2f}"),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    missed = size_mb >= TARGET_MB or max(timing["ready"], timing["load"]) >= TARGET_OPEN_S
    if missed and not args.no_check:
        print("target missed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
