"""The report's compare view in a real headless Chromium: two scripted models (70% and 60% right on
400 smoke items) whose replies carry hostile HTML; the view opens, its matrix gives the verdict,
a click lists exactly the samples the two runs disagree on (counted from their SQLite stores)
with both replies side by side, and no script from model output runs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from browser import chromium
from compare_script import ScriptedModels, run_models
from conftest import run_cli
from playwright.sync_api import expect

from trustmh.data.sources import DataContext

N = 400
HOSTILE = (
    "<script>window.__pwned = 1</script>",
    '<img src=x onerror="window.__pwned = 2">',
    '</pre></td></tr></table><svg onload="window.__pwned = 3">',
    "\u2028 </script><script>window.__pwned = 4</script>",
)


class HostileModels(ScriptedModels):
    """The scripted answer, then a hostile tail (the parser reads the JSON block only)."""

    def reply(self, messages: list[dict], model: str) -> str:
        sample = self.samples[messages[-1]["content"]]
        return (
            super().reply(messages, model) + f"\n{HOSTILE[int(sample.id) % len(HOSTILE)]} {model}"
        )


def scores(run_dir: Path) -> dict[str, tuple[str, float | None, str]]:
    with sqlite3.connect(run_dir / "trustmh.sqlite") as conn:
        rows = conn.execute(
            """SELECT c.sample_id, c.status, c.value, r.text FROM scores c JOIN samples s
               USING (task, sample_id, variant) JOIN responses r ON r.request_key = s.request_key"""
        ).fetchall()
    return {sid: (status, value, text) for sid, status, value, text in rows}


@pytest.fixture(scope="module")
def compare_report(tmp_path_factory, user_cache) -> dict:
    root = tmp_path_factory.mktemp("compare-view")
    script = HostileModels(DataContext(()), "smoke", N, {"model-a": 0.7, "model-b": 0.6})
    dirs = run_models(script, ["model-a", "model-b"], root, "smoke", N, user_cache)
    html = root / "report.html"
    made = run_cli("report", *map(str, dirs), "-o", str(html), "--no-figures", "--no-reference",
                   env=user_cache)  # fmt: skip
    assert made.returncode == 0, made.stderr
    return {"html": html, "dirs": dirs}


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


def test_the_compare_view_opens_and_lists_the_disagreements(browser, compare_report) -> None:
    a, b = (scores(d) for d in compare_report["dirs"])
    differ = [sid for sid in a if (a[sid][0], a[sid][1]) != (b[sid][0], b[sid][1])]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(compare_report["html"].as_uri())
    expect(page.locator("body")).to_have_attribute(
        "data-compare-ready", "1"
    )  # its hash matched the CSP
    assert page.locator("#cmp-task").input_value() == "smoke"
    cells = page.locator("#cmp-matrix button.cmp-cell")
    assert cells.count() == 2
    first = page.locator("#cmp-matrix button[data-a='0'][data-b='1']")
    assert first.inner_text().startswith("better +0.100")
    assert (
        page.locator("#cmp-matrix button[data-a='1'][data-b='0']")
        .inner_text()
        .startswith("worse -0.100")
    )
    first.click()
    expect(page.locator("#cmp-detail")).to_be_visible()
    assert (
        page.locator("#cmp-count")
        .inner_text()
        .startswith(f"{len(differ)} of {N} shared samples differ")
    )
    assert page.locator("#cmp-items tr.item").count() == min(len(differ), 50)
    assert "better" in page.locator("#cmp-verdict").inner_text()
    # the rows are the disagreements, both replies side by side as stored
    for i in range(3):
        cells_i = page.locator("#cmp-items tr.item").nth(i).locator("td")
        sid = cells_i.nth(0).inner_text()
        assert sid in differ
        assert cells_i.nth(4).inner_text() == a[sid][2].strip()
        assert cells_i.nth(5).inner_text() == b[sid][2].strip()
    page.locator("#cmp-next").click()
    assert page.locator("#cmp-items tr.item").count() == min(len(differ) - 50, 50)
    page.locator("#cmp-items tr.item").first.click()
    assert "Item " in page.locator("#cmp-items td.detail").inner_text()  # the prompt
    assert page.locator("#cmp-list tbody tr").count() == 1
    assert errors == []
    page.close()


def test_model_output_in_the_compare_view_runs_no_script(browser, compare_report) -> None:
    context = browser.new_context(bypass_csp=True)  # escaping alone is tested
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(compare_report["html"].as_uri())
    expect(page.locator("body")).to_have_attribute("data-compare-ready", "1")
    for button in ("[data-a='0'][data-b='1']", "[data-a='1'][data-b='0']"):
        page.locator(f"#cmp-matrix button{button}").click()
        for i in range(page.locator("#cmp-items tr.item").count()):
            page.locator("#cmp-items tr.item").nth(i).click()  # opens every disagreement
    shown = page.locator("#cmp-items").inner_text()
    assert any(h in shown for h in HOSTILE)  # shown as text
    assert page.evaluate("window.__pwned") is None
    assert dialogs == []
    assert page.locator("#compare img, #compare iframe, #compare svg").count() == 0
    context.close()
