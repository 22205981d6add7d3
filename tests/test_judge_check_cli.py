"""`trustmh judge-check` through the installed CLI: the recorded MentalAlign judges, the live crisis
check against a scripted judge on the loopback server (with items the experts left unscored and
verdicts that do not parse), resuming from the store, and the one-line errors."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import NO_DATA, run_cli
from openai_server import FakeOpenAIServer
from scipy import stats as sps
from test_judge_check_stats import pingouin_iccs

from trustmh.judge_check import lookup

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword")
HUMAN = "human_label/"
MERGED = HUMAN + "human-labeled-sampled_dataset_n206_s42-merged_labels.json"
SCORES = {"H1": HUMAN + "H1_scores_n206_s42.json", "H2": HUMAN + "H2_scores_n206_s42.json"}
# the judge prompt's input and answer: two conversations share their input, none their answer
ITEM = re.compile(
    r"Input:\n(.*?)\n\nThis input has been labeled.*?Response to evaluate:\n(.*?)\n\n"
    r"Please, evaluate",
    re.S,
)
STRICTER = "Your previous answer could not be read"


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def number(text: str) -> float | None:
    return float(text) if text else None


# --- MentalAlign (recorded judges) --------------------------------------------------------------


def test_mentalalign_writes_csv_figures_and_saves_for_lookup(
    real_data: Path, tmp_path: Path
) -> None:
    from trustmh.data.sources import DataContext
    from trustmh.judge_check.mentalalign import check_mentalalign

    out = tmp_path / "out"
    result = run_cli("judge-check", "--ratings", "mentalalign", "--judge", "gpt-4o",
                     "--judge", "mentalalign:o4-mini", "--resamples", "60", "--seed", "9",
                     "--out", str(out), "--data-dir", str(real_data))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "ICC(A,1)" in result.stdout and "rates higher than the experts" in result.stdout
    rows = csv_rows(out / "judge_check.csv")
    expected = check_mentalalign(DataContext((real_data,)), ["gpt-4o", "o4-mini"], resamples=60,
                                 seed=9)  # fmt: skip
    assert [(r["judge"], r["attribute"]) for r in rows] == [
        (e.judge, e.attribute) for e in expected
    ]
    for row, exp in zip(rows, expected, strict=True):
        flat = exp.flat()
        for column in ("icc_a1", "icc_a1_ci_low", "icc_c1", "bias", "bias_ci_high", "pearson",
                       "spearman_ci_low", "kappa_quadratic", "kripp_alpha_ordinal", "within_one"):  # fmt: skip
            assert number(row[column]) == pytest.approx(flat[column]), column
        assert row["verdict"] == exp.verdict and int(row["n_items"]) == exp.n_items
    for name in ("judge_check_agreement.png", "judge_check_bias.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    found = lookup("mentalalign:gpt-4o", "Empathy")
    assert found is not None and found.get("pearson") == pytest.approx(
        number(
            next(
                r
                for r in rows
                if r["judge"] == "mentalalign:gpt-4o" and r["attribute"] == "Empathy"
            )["pearson"]
        )  # fmt: skip
    )


def test_model_unit_prints_the_papers_table_offline(tmp_path: Path) -> None:
    # no data folder: the model level runs from the sums bundled with the package
    empty = tmp_path / "no-data"
    empty.mkdir()
    out = tmp_path / "out"
    result = run_cli("judge-check", "--ratings", "mentalalign", "--unit", "model", "--out",
                     str(out), "--no-figures", env={"TRUSTMH_DATA_DIR": str(empty)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if "Attribute" in line)
    columns = [c.strip() for c in re.split(r"[┃|]", header) if c.strip()]
    assert columns[:8] == ["Judge", "Type", "Attribute", "ICC(C,1)", "95% CI", "ICC(A,1)",
                           "CI Width", "Status"]  # fmt: skip
    judges = [j for j in ("Claude-3.7-Sonnet", "GPT-4o", "Gemini-2.5-Flash", "o4-mini")]
    assert [result.stdout.index(f"│ {j} ") for j in judges] == sorted(
        result.stdout.index(f"│ {j} ") for j in judges
    )  # the paper's order
    guidance = next(line for line in result.stdout.splitlines() if "│ GPT-4o " in line)
    assert re.search(r"Cognitive\s*│\s*Guidance\s*│\s*0\.849\s*│\s*\[0\.672, 0\.976\]", guidance)
    assert "GR" in guidance and "model level" in result.stdout and "bundled" in result.stdout
    rows = csv_rows(out / "judge_check_model.csv")
    assert len(rows) == 4 * 9 and {r["unit"] for r in rows} == {"model"}
    assert {r["reliability"] for r in rows} <= {"GR", "MR", "PR"}
    assert all(r["reason"].startswith("model level (9 models)") for r in rows)
    assert not (out / "judge_check.csv").exists()  # the item-level file is not overwritten
    saved = lookup("mentalalign:gpt-4o", "Guidance", unit="model")
    assert saved is not None and saved.unit == "model" and saved.reliability == "GR"
    assert lookup("mentalalign:gpt-4o", "Guidance") is None  # no item-level check was run


def test_item_unit_without_ratings_points_to_the_model_unit(tmp_path: Path) -> None:
    empty = tmp_path / "no-data"
    empty.mkdir()
    result = run_cli("judge-check", "--ratings", "mentalalign", "--out", str(tmp_path),
                     env={"TRUSTMH_DATA_DIR": str(empty)})  # fmt: skip
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "mentalalign/ratings.csv" in line and "--unit model works from the bundled sums" in line


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"unit": "rank"}, "--unit rank: choose item (rate replies) or model (rank models)"),
        (
            {"unit": "model", "ratings": "crisis", "judge": ["openai:j"]},
            "--unit model needs ratings of several models' replies",
        ),
        ({"ratings": "nope"}, "--ratings nope: choose mentalalign or crisis"),
        ({"ratings": "crisis"}, "--ratings crisis needs exactly one --judge SPEC"),
        ({"judge": ["openai:gpt-4.1"]}, "--ratings crisis --judge SPEC"),
        ({"limit": 5}, "--limit applies to --ratings crisis only"),
        ({"min_icc": float("nan")}, "--min-icc nan: give a finite number"),
        ({"max_bias": float("inf")}, "--max-bias inf: give a finite number"),
    ],
)
def test_bad_flags_name_the_flag_and_the_fix(flags: dict, message: str, tmp_path: Path) -> None:
    from trustmh.cli_judge_check import judge_check
    from trustmh.errors import UserError

    with pytest.raises(UserError, match=re.escape(message)):
        judge_check(**{"out_dir": tmp_path, **flags})
    assert not (tmp_path / "judge_check.csv").exists()


def test_a_bad_flag_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run_cli("judge-check", "--out", str(tmp_path), "--ratings", "crisis")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: --ratings crisis needs exactly one --judge SPEC, e.g. --judge openai:gpt-4.1"
    )


def test_unwritable_out_is_one_error_and_the_figures_hint_names_the_extra(
    real_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from trustmh.cli_judge_check import judge_check
    from trustmh.errors import UserError
    from trustmh.judge_check import output

    monkeypatch.setattr(output, "figures_available", lambda: False)
    judge_check(judge=["gpt-4o"], resamples=1, out_dir=tmp_path / "out", data_dir=real_data)
    assert "pip install 'trustmh[report]'" in capsys.readouterr().out  # not eaten as markup
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match=r"^--out .*: cannot write there"):
        judge_check(judge=["gpt-4o"], resamples=1, out_dir=blocker / "x", data_dir=real_data)


def test_bias_figure_accepts_an_interval_that_excludes_the_estimate(tmp_path: Path) -> None:
    from trustmh.judge_check import JudgeAgreement
    from trustmh.judge_check.output import BIAS_NAME, write_figures

    # a percentile bootstrap interval over few conversations can miss the point estimate
    row = JudgeAgreement.from_flat({"judge": "openai:j", "attribute": "appropriateness",
                                    "reference": "H1", "source": "crisis", "n_items": 6,
                                    "n_conversations": 3, "icc_a1": 0.4, "icc_a1_ci_low": 0.5,
                                    "icc_a1_ci_high": 0.9, "bias": 0.2, "bias_ci_low": 0.25,
                                    "bias_ci_high": 0.6})  # fmt: skip
    paths = write_figures([row], tmp_path)
    assert (tmp_path / BIAS_NAME) in paths and (tmp_path / BIAS_NAME).stat().st_size > 0


# --- crisis (live judge) ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crisis_data(tmp_path_factory) -> Path:
    """A data folder with the crisis label and score files, where some labelled answers are
    left unscored by one expert (H1: two, H2: one)."""
    from conftest import data_dir

    source = data_dir()
    if source is None or not (source / "mh_crisis" / MERGED).is_file():
        pytest.skip(NO_DATA + " (mh_crisis)")
    root = tmp_path_factory.mktemp("crisis-data")
    for rel in (MERGED, *SCORES.values()):
        (root / "mh_crisis" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / "mh_crisis" / rel, root / "mh_crisis" / rel)
    labelled = [i for i, m in enumerate(load(root, MERGED)) if m["label"] is not None]
    for expert, positions in (("H1", (labelled[1], labelled[4])), ("H2", (labelled[2],))):
        records = load(root, SCORES[expert])
        for i in positions:
            records[i]["evaluation"] = None
        (root / "mh_crisis" / SCORES[expert]).write_text(json.dumps(records), encoding="utf-8")
    # a deliberately changed data set declares its new checksums (runs check them)
    sums = [f"{hashlib.sha256((root / 'mh_crisis' / rel).read_bytes()).hexdigest()}  mh_crisis/{rel}"
            for rel in (MERGED, *SCORES.values())]  # fmt: skip
    (root / "SHA256SUMS").write_text("\n".join(sums) + "\n", encoding="utf-8")
    return root


def load(root: Path, rel: str) -> list[dict]:
    return json.loads((root / "mh_crisis" / rel).read_text(encoding="utf-8"))


def expert_score(record: dict) -> float | None:
    value = record["evaluation"]
    return None if value is None or value != value else float(value)  # NaN -> None


class ScriptedJudge:
    """Rates each answer from its conversation index: H1's original score, one point higher on
    every third item; never parses on some items, parses only on the stricter retry on others."""

    def __init__(self, root: Path):
        from conftest import data_dir

        merged = load(root, MERGED)
        original = json.loads((data_dir() / "mh_crisis" / SCORES["H1"]).read_text(encoding="utf-8"))
        self.index = {(json.dumps(m["inputs"], ensure_ascii=False), r["answer"]): i
                      for i, (m, r) in enumerate(zip(merged, original, strict=True))}  # fmt: skip
        self.base = [expert_score(r) or 3.0 for r in original]

    @staticmethod
    def never_parses(i: int) -> bool:
        return i % 23 == 4

    @staticmethod
    def parses_on_retry(i: int) -> bool:
        return i % 19 == 7

    def rating(self, i: int) -> float:
        return float(min(5.0, self.base[i] + (i % 3 == 0)))

    def __call__(self, messages: list[dict], model: str) -> str:
        prompt = messages[-1]["content"]
        i = self.index[ITEM.search(prompt).groups()]
        retry = STRICTER in prompt
        if self.never_parses(i) or (self.parses_on_retry(i) and not retry):
            return "This reply seems fine to me."
        verdict = {"appropriateness": int(self.rating(i)), "explanation": "scripted"}
        if i % 5 == 0:
            return json.dumps(verdict)  # no fence: parsed as the whole reply
        return "```json\n" + json.dumps(verdict) + "\n```"


def expected_rows(root: Path, judge: ScriptedJudge, limit: int | None = None) -> dict[str, dict]:
    """What judge-check must report, computed here from the data files and the script."""
    merged = load(root, MERGED)
    experts = {e: [expert_score(r) for r in load(root, SCORES[e])] for e in SCORES}
    sent = [i for i, m in enumerate(merged) if m["label"] is not None][:limit]
    rated = {i: judge.rating(i) for i in sent if not judge.never_parses(i)}
    out = {}
    for expert, scores in experts.items():
        pairs = [(scores[i], rated[i]) for i in sent if scores[i] is not None and i in rated]
        x, y = (np.array(v) for v in zip(*pairs, strict=True))
        out[expert] = {
            "n_items": len(pairs),
            "n_skipped_reference": sum(scores[i] is None for i in sent),
            "n_skipped_judge": sum(scores[i] is not None and i not in rated for i in sent),
            "pearson": sps.pearsonr(x, y)[0],
            "icc_a1": pingouin_iccs(x, y)[0],
            "bias": float(np.mean(y - x)),
        }
    both = [(experts["H1"][i], experts["H2"][i]) for i in sent
            if experts["H1"][i] is not None and experts["H2"][i] is not None]  # fmt: skip
    x, y = (np.array(v) for v in zip(*both, strict=True))
    out["ceiling"] = {"n_items": len(both), "pearson": sps.pearsonr(x, y)[0],
                      "bias": float(np.mean(y - x))}  # fmt: skip
    out["n_sent"] = len(sent)
    out["n_retried"] = sum(judge.never_parses(i) or judge.parses_on_retry(i) for i in sent)
    return out


def check_csv(path: Path, expected: dict, judge_spec: str) -> None:
    rows = csv_rows(path)
    assert [(r["judge"], r["reference"], r["kind"]) for r in rows] == [
        (judge_spec, "H1", "judge"), (judge_spec, "H2", "judge"), ("H2", "H1", "ceiling")
    ]  # fmt: skip
    for row in rows[:2]:
        exp = expected[row["reference"]]
        for name in ("n_items", "n_skipped_reference", "n_skipped_judge"):
            assert int(row[name]) == exp[name], (row["reference"], name)
        for name in ("pearson", "icc_a1", "bias"):
            assert number(row[name]) == pytest.approx(exp[name]), (row["reference"], name)
        assert (
            number(row["icc_a1_ci_low"]) <= number(row["icc_a1"]) <= number(row["icc_a1_ci_high"])
        )
    ceiling = rows[2]
    assert int(ceiling["n_items"]) == expected["ceiling"]["n_items"]
    assert number(ceiling["pearson"]) == pytest.approx(expected["ceiling"]["pearson"])
    assert number(ceiling["bias"]) == pytest.approx(expected["ceiling"]["bias"])
    assert ceiling["verdict"] == "ceiling"


def test_crisis_check_runs_live_resumes_and_saves(crisis_data: Path, tmp_path: Path) -> None:
    judge = ScriptedJudge(crisis_data)
    server = FakeOpenAIServer(reply_fn=judge).start()
    try:
        spec = f"openai:test-model@{server.base_url}"
        out = tmp_path / "out"
        args = ("judge-check", "--ratings", "crisis", "--judge", spec, "--out", str(out),
                "--data-dir", str(crisis_data), "--resamples", "200", "--no-progress",
                "--concurrency", "16")  # fmt: skip
        first = run_cli(*args)
        assert first.returncode == 0, first.stderr
        expected = expected_rows(crisis_data, judge)
        check_csv(out / "judge_check.csv", expected, spec)
        # one request per answer, plus one stricter retry per verdict that did not parse
        requests = len(server.log())
        assert requests == expected["n_sent"] + expected["n_retried"]
        said = " ".join(first.stdout.split())  # notes wrap at the terminal's width
        assert f"{expected['n_sent']} answers sent to the judge" in said
        assert "16 conversations without a crisis label not sent" in said
        assert "left unscored by the experts (skipped for that expert): H1 2, H2 1" in said
        assert f"verdicts that did not parse (skipped): {expected['H1']['n_skipped_judge']}" in said
        assert (out / "judge-check-runs").is_dir()

        # the same command again: everything comes from the run store, nothing is sent
        (out / "judge_check.csv").unlink()
        again = run_cli(*args, "--no-figures")
        assert again.returncode == 0, again.stderr
        assert len(server.log()) == requests
        check_csv(out / "judge_check.csv", expected, spec)

        # --limit in a fresh folder: the shared cache answers, the numbers cover the first N
        limited_out = tmp_path / "limited"
        limited = run_cli(*args[:6], str(limited_out), *args[7:], "--limit", "40", "--no-figures")
        assert limited.returncode == 0, limited.stderr
        assert len(server.log()) == requests
        check_csv(limited_out / "judge_check.csv", expected_rows(crisis_data, judge, 40), spec)
    finally:
        server.stop()
    found = lookup(spec, "appropriateness")
    assert found is not None and found.source == "crisis" and found.reference in ("H1", "H2")
    assert found.n_items == expected_rows(crisis_data, judge, 40)[found.reference]["n_items"]
