"""The HTML report in a real headless Chromium: a report of real small runs renders its radar,
tables and breakdowns and its drill-down can be clicked and filtered; hostile model output runs no
script. Expected counts are read from the runs' SQLite stores."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import tempfile
from pathlib import Path

import pytest
from browser import chromium
from conftest import run_cli
from openai_server import FakeOpenAIServer, default_reply
from playwright.sync_api import expect
from report_synthetic import SyntheticTask, write_synthetic_run

from trustmh.metrics import breakdown_name
from trustmh.store import RunStore
from trustmh.types import MetricValue

ETHICS = "ethics.ethical_reasoning"
JUDGE_VERDICT = {"sc1": 4, "sc2": 3, "sc3": 5, "sc4": 2, "sc5": 4}
LEVELS = ("0.05", "0.1", "0.2")
METHODS = ("role_play", "prefix_injection")
SCREENSHOT_COPY = Path(tempfile.gettempdir()) / "trustmh_report_screenshot.png"


def reply(messages: list[dict], model: str) -> str:
    """Deterministic answers, and a fixed verdict when asked as the ethics judge."""
    if "impartial judge" in messages[-1]["content"]:
        verdict = {**JUDGE_VERDICT, **{f"{k}_reason": "fixed test verdict" for k in JUDGE_VERDICT}}
        return "```json\n" + json.dumps(verdict) + "\n```"
    return default_reply(messages)


def query(run_dir: Path, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(run_dir / "trustmh.sqlite") as conn:
        return conn.execute(sql, args).fetchall()


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def real_report(tmp_path_factory) -> dict:
    """Two real small runs through the CLI (the rule-based baseline; a live model with a judge on
    the loopback server), synthetic breakdown metrics added to the second run's store, then
    `trustmh report` over both."""
    root = tmp_path_factory.mktemp("report")
    env = {"TRUSTMH_CACHE_DIR": str(root / "cache")}
    baseline, live = root / "baseline", root / "live"
    first = run_cli("run", "--model", "baseline", "--tasks", f"smoke,{ETHICS}", "--limit", "20",
                    "--run-dir", str(baseline), "--no-progress", env=env)  # fmt: skip
    assert first.returncode == 0, first.stderr
    server = FakeOpenAIServer(reply_fn=reply).start()
    try:
        url = f"openai:test-model@{server.base_url}"
        second = run_cli("run", "--model", url, "--judge", url, "--tasks", f"smoke,{ETHICS}",
                         "--limit", "20", "--run-dir", str(live), "--no-progress", env=env)  # fmt: skip
    finally:
        server.stop()
    assert second.returncode == 0, second.stderr
    store = RunStore(live)
    try:
        metrics = store.results()[ETHICS]
        for i, level in enumerate(LEVELS):
            metrics.append(MetricValue(breakdown_name("accuracy", "level", level), 0.8 - 0.1 * i, 20,
                                       "higher", ci_low=0.7 - 0.1 * i, ci_high=0.9 - 0.1 * i))  # fmt: skip
        for i, method in enumerate(METHODS):
            metrics.append(
                MetricValue(breakdown_name("accuracy", "method", method), 0.5 + 0.2 * i, 10)
            )
        store.put_results(ETHICS, metrics)
    finally:
        store.close()
    html = root / "out" / "report.html"
    made = run_cli("report", str(baseline), str(live), "-o", str(html), env=env)
    assert made.returncode == 0, made.stderr
    return {"root": root, "runs": [baseline, live], "html": html, "run_out": first.stdout,
            "report_out": made.stdout}  # fmt: skip


def test_run_writes_its_report_and_prints_the_path(real_report: dict) -> None:
    baseline = real_report["runs"][0]
    assert f"report: {baseline / 'report.html'}" in real_report["run_out"].replace("\n", "")
    assert (baseline / "report.html").stat().st_size > 0
    assert (baseline / "report.csv").is_file() and (baseline / "report.json").is_file()
    out = real_report["report_out"]
    assert str(real_report["html"]) in out.replace("\n", "")
    figures = real_report["html"].parent / "report-figures"
    pngs = sorted(p.name for p in figures.glob("*.png"))
    # the radar and one figure per breakdown family of the second run
    assert pngs == sorted(
        ["radar.png", f"{ETHICS}-accuracy-by-level.png", f"{ETHICS}-accuracy-by-method.png"]
    )
    assert all((figures / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_report_renders_and_drills_down_in_chromium(browser, real_report: dict) -> None:
    baseline, live = real_report["runs"]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(real_report["html"].as_uri())
    page.wait_for_selector("body[data-ready='1']")

    # one pillar (ethics) has a score: no radar (it needs three axes), and the page says so;
    # pillar table: one row per run, the ethics cell saying what its score covers
    assert page.locator("#summary svg.radar").count() == 0
    assert (
        "No radar: it needs at least 3 pillars with a score"
        in page.locator("#summary").inner_text()
    )
    assert page.locator("#pillar-table tbody tr").count() == 2
    assert "1 of 1 subtasks" in page.locator("#pillar-table").inner_text()
    # subtask table: one block per subtask, one row per run in each
    tasks = {
        r[0] for run in (baseline, live) for r in query(run, "SELECT DISTINCT task FROM results")
    }
    assert page.locator("#subtask-table tbody.subtask").count() == len(tasks)
    assert page.locator(f"#subtask-table tbody.subtask[data-task='{ETHICS}'] > tr").count() == 2
    # breakdowns: a line chart over levels and a bar chart over methods, with their groups
    section = page.locator("#breakdowns")
    assert section.locator("svg").count() == 2
    assert section.locator("svg").nth(0).locator("circle").count() == len(LEVELS)
    assert section.locator("svg").nth(1).locator("rect").count() == len(METHODS)
    # judges: the live run's judge is named
    assert "test-model" in page.locator("#judges").inner_text()

    # click from the live run's ethics row into its samples, then filter the wrong ones
    block = page.locator(f"#subtask-table tbody.subtask[data-task='{ETHICS}']")
    block.locator("a", has_text="samples").nth(1).click()
    # a locator wait, not wait_for_function: the page's CSP forbids the eval that would need
    expect(page.locator("#dd-title")).to_contain_text("ethics")
    n_samples = query(live, "SELECT COUNT(*) FROM scores WHERE task=?", ETHICS)[0][0]
    assert page.locator("#dd-rows tr.item").count() == min(n_samples, 50)
    assert page.locator("#dd-run").input_value() == "1"
    n_wrong = query(live, "SELECT COUNT(*) FROM scores WHERE task=? AND (status='unparsed' OR value=0)",
                    ETHICS)[0][0]  # fmt: skip
    page.locator("#dd-filters button[data-filter='wrong']").click()
    assert page.locator("#dd-rows tr.item").count() == n_wrong
    assert f"of {n_wrong}" in page.locator("#dd-count").inner_text() or n_wrong == 0
    # open a sample: prompt, response and the judge's raw verdict are shown as stored
    first_id = page.locator("#dd-rows tr.item td").first.inner_text()
    page.locator("#dd-rows tr.item").first.click()
    detail = page.locator("#dd-rows td.detail").inner_text()
    [(response, detail_json)] = query(
        live,
        """SELECT r.text, c.detail FROM samples s JOIN scores c USING (task, sample_id, variant)
           JOIN responses r ON r.request_key = s.request_key WHERE s.task=? AND s.sample_id=?""",
        ETHICS, first_id,
    )  # fmt: skip
    assert response.strip() in detail
    assert json.loads(detail_json)["judge_raw"].strip().splitlines()[1] in detail
    # the failed filter of the same subtask is reachable and shows the stored count
    n_failed = query(live, "SELECT COUNT(*) FROM scores WHERE task=? AND status IN ('error','missing')",
                     ETHICS)[0][0]  # fmt: skip
    page.locator("#dd-filters button[data-filter='failed']").click()
    assert page.locator("#dd-rows tr.item").count() == n_failed

    page.locator("#dd-filters button[data-filter='wrong']").click()
    page.locator("#dd-rows tr.item").first.click()
    shot = real_report["root"] / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    shutil.copyfile(shot, SCREENSHOT_COPY)  # for a person to look at
    assert shot.stat().st_size > 10_000
    assert errors == []
    page.close()


HOSTILE = (
    "<script>window.__pwned = 1</script>",
    "</script><script>window.__pwned = 2</script>",
    "<!--<script>window.__pwned = 3</script>-->",
    '<img src=x onerror="window.__pwned = 4">',
    '"><svg onload="window.__pwned = 5">',
    "</textarea></pre><iframe srcdoc='<script>parent.__pwned=6</script>'></iframe>",
    "{{ 7*7 }} {% raw %} \u2028\u2029 ]]> &lt;script&gt;",
)
LONG = "<b>long</b> " * 30_000  # 330,000 characters


def hostile_text(task: str, index: int, rng) -> str:
    return LONG if index == 0 else HOSTILE[index % len(HOSTILE)] + f" item {index}"


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory) -> Path:
    """A run whose every model-written text (and label, note, group name) is hostile HTML."""
    tmp_path = tmp_path_factory.mktemp("hostile")
    run = tmp_path / "hostile"
    tasks = [SyntheticTask(ETHICS, len(HOSTILE) + 1, judged=True),
             SyntheticTask("x.<b>'\"task", 3)]  # fmt: skip
    write_synthetic_run(run, tasks, model="evil:<script>window.__pwned=7</script>",
                        label=HOSTILE[3], prompt_fn=hostile_text, response_fn=hostile_text,
                        judge_fn=hostile_text)  # fmt: skip
    store = RunStore(run)
    try:
        # one sample is a conversation: its turns and the judge's path go to the transcript view
        conversation = {
            "conversation": [{"role": "user" if i % 2 == 0 else "agent", "content": text}
                             for i, text in enumerate(HOSTILE)],
            "judge_path": [{"id": HOSTILE[4], "dimension": HOSTILE[2], "severity": HOSTILE[6],
                            "question": HOSTILE[5], "answer": "Yes", "reasoning": HOSTILE[0],
                            "raw": [HOSTILE[3], HOSTILE[1]], "next": HOSTILE[5]}],
            "ratings": {HOSTILE[4]: HOSTILE[3]}, "ended": HOSTILE[0], "judge_status": "ok",
        }  # fmt: skip
        store.conn.execute("UPDATE scores SET detail=? WHERE task=? AND sample_id='1'",
                           (json.dumps(conversation), ETHICS))  # fmt: skip
        metrics = store.results()[ETHICS]
        metrics[0].note = HOSTILE[1]
        metrics.append(MetricValue(breakdown_name("accuracy", "method", HOSTILE[4]), 0.5, 3))
        store.put_results(ETHICS, metrics)
    finally:
        store.close()
    html = tmp_path / "report.html"
    result = run_cli("report", str(run), "-o", str(html), "--no-reference", "--no-figures",
                     env={"TRUSTMH_CACHE_DIR": str(tmp_path / "cache")})  # fmt: skip
    assert result.returncode == 0, result.stderr
    return html


def test_hostile_model_output_runs_no_script(browser, hostile_report: Path) -> None:
    # escaping alone is tested: the page's Content-Security-Policy is bypassed here
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(hostile_report.as_uri())
    page.wait_for_selector("body[data-ready='1']")
    for filter_name in ("wrong", "all"):
        page.locator(f"#dd-filters button[data-filter='{filter_name}']").click()
        for i in range(page.locator("#dd-rows tr.item").count()):
            page.locator("#dd-rows tr.item").nth(i).click()  # opens every sample's texts
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("window.parent.__pwned") is None
    assert dialogs == []
    assert page.locator("iframe, img, #summary svg[onload]").count() == 0
    # the conversation's turns, question path and ratings are shown, as text
    view = page.locator("#dd-rows .convo")
    assert view.count() == 1
    assert view.locator(".turn").count() == len(HOSTILE)
    for text in HOSTILE[:6]:
        assert text in view.inner_text()
    view.locator("details summary").first.click()
    assert HOSTILE[3] in view.inner_text() and page.evaluate("window.__pwned") is None
    # the hostile texts are shown literally, the long one shortened with a marker
    shown = page.locator("#dd-rows").inner_text()
    for text in HOSTILE[:5]:
        assert text in shown
    assert "characters cut here" in shown
    assert HOSTILE[3] in page.locator("header").inner_text()  # the run label, as text
    # a subtask id full of quotes and markup still links to its own samples
    page.locator("#subtask-table tbody.subtask").nth(1).locator("a", has_text="samples").click()
    expect(page.locator("#dd-title")).to_have_text(re.compile(r"^x\."))
    assert page.locator("#dd-title").inner_text().startswith("x.<b>'\"task")
    assert page.locator("#dd-rows tr.item").count() == 3
    assert page.evaluate("window.__pwned") is None
    context.close()


def test_report_script_runs_under_its_own_csp(browser, hostile_report: Path) -> None:
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(hostile_report.as_uri())
    page.wait_for_selector("body[data-ready='1']")  # the inline script ran: its hash matches
    assert errors == []
    page.close()
