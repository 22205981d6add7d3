"""fairness.overall end to end: the installed CLI against the loopback OpenAI-compatible server, with
scripted model replies and judge verdicts that differ by group; every reported number is
recomputed here from the scripted verdicts and the stored samples."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from conftest import NO_DATA, data_dir
from live import query, run_live
from openai_server import FakeOpenAIServer
from scipy import stats

ATTRIBUTES = ("Guidance", "Informativeness", "Relevance", "Safety", "Empathy", "Helpfulness",
              "Understanding")  # fmt: skip
SHIPPED = tomllib.loads(
    (resources.files("trustmh") / "transforms" / "data" / "demographics.toml").read_text("utf-8")
)
IDENTITY = {
    f"{attribute}={group['name']}": group["identity"]
    for attribute, table in SHIPPED["attributes"].items()
    for group in table["groups"]
}
VARIANTS = ["neutral", *IDENTITY]
REFUSING = "religion=atheist"  # the scripted model refuses this group
UNJUDGED = ("race=Asian", 3)  # the judge's verdict never parses for this group at 3 seeker messages
TAG = re.compile(r"\[variant (?P<variant>[^\]]+)\]")
REPLY_SECTION = re.compile(r"## Reply to evaluate[^\n]*\n(?P<reply>.*?)\n## Attributes", re.S)
LIMIT = 3


def variant_of(messages: list[dict]) -> str:
    """The group whose statement the seeker made (the model side of the script)."""
    said = "\n".join(m["content"] for m in messages if m["role"] == "user")
    found = [
        v for v, identity in IDENTITY.items() if re.search(rf"I'm {re.escape(identity)}\.", said)
    ]
    assert len(found) <= 1, found
    return found[0] if found else "neutral"


def model_reply(messages: list[dict]) -> str:
    """Longer replies for later groups; a refusal for one group; the group tagged for the judge."""
    variant = variant_of(messages)
    if variant == REFUSING:
        return f"I can't help with that. [variant {variant}]"
    return "That sounds hard" + " really" * VARIANTS.index(variant) + f". [variant {variant}]"


def seeker_lines(dialogue: str) -> int:
    return len(re.findall(r"^Seeker: ", dialogue, re.M))


def verdict(variant: str, seekers: int) -> dict[str, int] | None:
    """The scripted judge scores: by group, plus an item effect (seeker messages so far)."""
    if (variant, seekers) == UNJUDGED:
        return None
    index = VARIANTS.index(variant)
    scores = {a: 1 + (index + k) % 5 for k, a in enumerate(ATTRIBUTES)}
    scores["Relevance"] = 1 + (index * seekers) % 5
    return scores


def reply(messages: list[dict], model: str) -> str:
    prompt = messages[-1]["content"]
    section = REPLY_SECTION.search(prompt)
    if section is None:
        return model_reply(messages)
    scores = verdict(TAG.search(section["reply"])["variant"], seeker_lines(prompt))
    if scores is None:
        return "I would rather not rate this."
    return "```json\n" + json.dumps({**scores, "Explanation": "scripted"}) + "\n```"


def run(tmp: Path, *extra: str, limit: int = LIMIT) -> tuple[Path, subprocess.CompletedProcess]:
    run_dir = tmp / "run"
    with FakeOpenAIServer(reply_fn=reply) as server:
        result = run_live(server, run_dir, "--tasks", "fairness", "--limit", str(limit),
                          "--concurrency", "16", *extra, judge="test-model")  # fmt: skip
    return run_dir, result


def results(run_dir: Path) -> dict[str, tuple]:
    rows = query(run_dir, "SELECT metric, value, n, ci_low, ci_high, is_primary FROM results")
    return {metric: rest for metric, *rest in rows}


def expected_matrix(run_dir: Path) -> tuple[list[str], dict[tuple[str, str], float | None]]:
    """Per (item, variant), the mean of the scripted verdict for the reply the script gave."""
    rows = query(run_dir, "SELECT sample_id, variant, messages FROM samples")
    values: dict[tuple[str, str], float | None] = {}
    for sample_id, variant, messages in rows:
        sent = json.loads(messages)
        assert variant_of(sent) == variant
        scores = verdict(variant, sum(m["role"] == "user" for m in sent))
        values[sample_id, variant] = (
            None if scores is None else float(np.mean(list(scores.values())))
        )
    return sorted({item for item, _ in values}), values


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> tuple[Path, str]:
    if data_dir() is None:
        pytest.skip(NO_DATA)
    run_dir, result = run(tmp_path_factory.mktemp("fair"))
    return run_dir, result.stdout


def test_limit_keeps_every_variant_of_each_item(live) -> None:
    run_dir, _ = live
    rows = query(run_dir, "SELECT sample_id, variant FROM scores")
    items = {item for item, _ in rows}
    assert len(items) == LIMIT and len(rows) == LIMIT * len(VARIANTS)
    assert {v for _, v in rows} == set(VARIANTS)
    statuses = dict(query(run_dir, "SELECT status, COUNT(*) FROM scores GROUP BY status"))
    assert statuses == {"ok": LIMIT * len(VARIANTS) - 1, "unparsed": 1}


def test_fairness_score_recomputed_from_the_scripted_verdicts(live) -> None:
    run_dir, stdout = live
    items, values = expected_matrix(run_dir)
    got = results(run_dir)
    stds = []
    for attribute, table in SHIPPED["attributes"].items():
        groups = [f"{attribute}={g['name']}" for g in table["groups"]]
        complete = [i for i in items if all(values[i, g] is not None for g in groups)]
        assert len(complete) == (LIMIT - 1 if attribute == "race" else LIMIT)
        means = [np.mean([values[i, g] for i in complete]) for g in groups]
        std = float(np.std(means))
        # protocol 6.3: the variance of the group means minus its expectation when group labels
        # are permuted within items (sum of the items' variances / n^2), back on the std scale
        expected = (
            sum(np.var([values[i, g] for g in groups]) for i in complete) / len(complete) ** 2
        )
        excess = np.var(means) - expected
        corrected = float(np.sign(excess) * np.sqrt(abs(excess)))
        stds.append(corrected)
        assert got[f"std_observed[attribute={attribute}]"][0] == pytest.approx(std)
        value, n, low, high, primary = got[f"std[attribute={attribute}]"]
        assert value == pytest.approx(corrected) and n == len(complete) and not primary
        assert low <= value <= high
        assert 0 < got[f"permutation_p[attribute={attribute}]"][0] <= 1
        assert got[f"gap[attribute={attribute}]"][0] == pytest.approx(max(means) - min(means))
        for group, mean in zip(table["groups"], means, strict=True):
            assert got[f"score[{attribute}={group['name']}]"][0] == pytest.approx(mean)
        blocks = [[values[i, g] for i in complete] for g in groups]
        p = stats.friedmanchisquare(*blocks).pvalue
        assert got[f"friedman_p[attribute={attribute}]"][0] == pytest.approx(p)
    value, n, low, high, primary = got["fairness"]
    assert primary and value == pytest.approx(np.mean(stds)) and n == LIMIT
    assert low is not None and low <= value <= high
    neutral = [values[i, "neutral"] for i in items]
    assert got["score[variant=neutral]"][0] == pytest.approx(np.mean(neutral))
    # the terminal shows the overall score and one line per breakdown, group names included
    assert "fairness" in stdout and "std by attribute" in stdout and "score by race" in stdout
    assert "friedman_p by attribute" in stdout


def test_refusal_rate_and_length_per_group(live) -> None:
    run_dir, _ = live
    got = results(run_dir)
    for variant in VARIANTS:
        attribute, _, group = variant.partition("=")
        name = f"[{attribute}={group}]" if group else "[variant=neutral]"
        text = (
            model_reply([{"role": "user", "content": f"I'm {IDENTITY[variant]}."}])
            if group
            else model_reply([])
        )
        assert tuple(got["refusal_rate" + name][:2]) == (float(variant == REFUSING), LIMIT)
        assert got["length" + name][0] == pytest.approx(len(text.split()))
    lengths = [len(model_reply([{"role": "user", "content": f"I'm {IDENTITY[v]}."}]).split())
               for v in VARIANTS if v.startswith("age=")]  # fmt: skip
    assert got["length_gap[attribute=age]"][0] == pytest.approx(max(lengths) - min(lengths))


def test_attribute_option_varies_only_that_attribute(tmp_path: Path) -> None:
    if data_dir() is None:
        pytest.skip(NO_DATA)
    config = tmp_path / "run.toml"
    config.write_text('[options]\nattributes = ["age"]\n', encoding="utf-8")
    run_dir, _ = run(tmp_path, "--config", str(config), limit=1)
    assert {v for (v,) in query(run_dir, "SELECT DISTINCT variant FROM samples")} == {
        "neutral",
        "age=19",
        "age=45",
        "age=72",
    }
    [item], values = expected_matrix(run_dir)
    std = np.std([values[item, f"age={age}"] for age in ("19", "45", "72")])
    got = results(run_dir)
    # one item: the group means are its own scores, whose whole spread is what permuting the
    # labels within the item would give, so the corrected spread is 0 (protocol 6.3)
    assert std > 0 and got["std_observed[attribute=age]"][0] == pytest.approx(std)
    assert got["fairness"][0] == pytest.approx(0.0, abs=1e-9)
    assert got["std[attribute=age]"][0] == pytest.approx(0.0, abs=1e-9)
    assert not any("race" in metric for metric in got)


def scored_sample(item: str, variant: str, value: float | None, reply: str = "ok then"):
    from trustmh.types import SampleScore, ScoredSample

    status = "ok" if value is not None else "unparsed"
    return ScoredSample(item, variant, None, {}, reply, SampleScore(value, status=status))


def test_aggregate_without_any_verdict_or_any_difference() -> None:
    from trustmh.tasks.fairness import fairness_aggregate

    options = {"seed": 0, "attributes": ["gender"]}
    names = ["neutral", "gender=man", "gender=woman", "gender=non-binary"]
    nothing = [scored_sample(i, v, None) for i in ("a", "b") for v in names]
    got = {m.name: m for m in fairness_aggregate(nothing, options)}
    assert got["fairness"].value is None and got["fairness"].n_unparsed == 8
    assert got["refusal_rate[gender=woman]"].value == 0.0
    alike = [scored_sample(i, v, 3.0) for i in ("a", "b") for v in names]
    got = {m.name: m for m in fairness_aggregate(alike, options)}
    assert got["fairness"].value == 0.0 and got["gap[attribute=gender]"].value == 0.0
    assert got["friedman_p[attribute=gender]"].value is None


def test_without_a_judge_the_judge_free_breakdowns_are_still_reported(tmp_path: Path) -> None:
    if data_dir() is None:
        pytest.skip(NO_DATA)
    run_dir = tmp_path / "run"
    with FakeOpenAIServer(reply_fn=reply) as server:
        result = run_live(server, run_dir, "--tasks", "fairness", "--limit", "1")
        n_samples = len(query(run_dir, "SELECT 1 FROM samples"))
        assert n_samples == len(VARIANTS)
        assert len(server.log()) == n_samples  # the model's replies only: no judge request
    got = results(run_dir)
    assert got["fairness"][0] is None
    assert "not scored: no judge" in result.stdout
    assert got[f"refusal_rate[{REFUSING}]"][0] == 1.0  # the scripted model refuses that group
    assert got["refusal_rate[religion=Christian]"][0] == 0.0
    assert "refusal_rate by religion" in result.stdout
