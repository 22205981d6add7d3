"""Bad task options stop a run before anything is sent, with one line that names the option, the
value and what to write instead; good values are read back as given."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustmh.data.sources import DataContext
from trustmh.errors import UserError
from trustmh.tasks.options import choice_option, positive_int_option, positive_number_option
from trustmh.tasks.registry import get_task

BAD = [
    ("reliability.emotion_recognition", {"primary_metric": "median"}, "use one of joint, mean"),
    ("reliability.psychological_diagnosis", {"diagnosis_sets": "x"}, "use one of auto, paper"),
    ("reliability.psychological_diagnosis", {"max_items_per_set": "abc"}, "whole number"),
    ("reliability.psychological_diagnosis", {"max_items_per_set": -1}, "whole number"),
    ("reliability.emotional_support", {"n_contexts": 0}, "whole number"),
    ("reliability.emotional_support", {"n_contexts": True}, "whole number"),
    ("crisis.crisis_identification", {"split": "val"}, "use one of human, test"),
    ("crisis.severity_identification", {"max_words": "many"}, "whole number"),
    ("crisis.escalation_decision", {"input_join": "comma"}, "use one of space, pipe"),
    ("safety.jailbreak_resistance", {"refusal_detector": "x"}, "use one of auto, judge"),
    ("safety.antitoxic", {"toxicity_scorer": "x"}, "use one of auto, perspective"),
    ("safety.antitoxic", {"perspective_qps": 0}, "number above 0"),
    ("fairness.overall", {"attributes": "race,height"}, "use one or more of race"),
    ("fairness.overall", {"attributes": 3}, "use attribute names"),
    ("fairness.overall", {"demographics_file": "no/such.toml"}, "no such file"),
    ("privacy.awareness", {"rating_parser": "x"}, "use one of exact, strict"),
    ("privacy.awareness", {"awareness_aggregate": "x"}, "use one of mean3, tier_mean"),
    ("privacy.awareness", {"tiers": ["9"]}, "use a list of tiers"),
    ("privacy.leakage", {"leakage_aggregate": "x"}, "use one of mean_of_errors"),
    ("ethics.ethical_reasoning", {"n_items": "x"}, "whole number"),
]


@pytest.mark.parametrize(("task_id", "options", "fix"), BAD, ids=lambda v: str(v)[:40])
def test_bad_option_is_one_line_before_any_sample(
    real_data: Path, monkeypatch: pytest.MonkeyPatch, task_id: str, options: dict, fix: str
) -> None:
    monkeypatch.delenv("PERSPECTIVE_API_KEY", raising=False)
    ctx = DataContext((real_data,))
    [(name, value)] = options.items()
    with pytest.raises(UserError) as caught:
        next(iter(get_task(task_id).samples(ctx, {"seed": 0, **options})))  # type: ignore[misc]
    message = str(caught.value)
    assert message.startswith(f"options.{name} = {value!r}: ") and fix in message
    assert "\n" not in message


def test_option_readers_return_good_values_and_defaults() -> None:
    options = {"split": "test", "n": 3, "qps": 2}
    assert choice_option(options, "split", ("human", "test")) == "test"
    assert choice_option({}, "split", ("human", "test")) == "human"
    assert positive_int_option(options, "n", 5) == 3
    assert positive_int_option({}, "n", None) is None
    assert positive_number_option(options, "qps", 1.0) == 2.0
    assert positive_number_option({}, "qps", 0.5) == 0.5
    with pytest.raises(UserError, match=r"^options\.n = 2\.5: use a whole number"):
        positive_int_option({"n": 2.5}, "n", 1)


@pytest.mark.parametrize("options", [{"seed": "x"}, {"smoke": {"seed": 1.5}}, {"seed": True}])
def test_a_seed_option_must_be_a_whole_number(options) -> None:
    from trustmh.engine import check_options
    from trustmh.tasks.registry import get_task

    with pytest.raises(UserError, match="a seed is a whole number"):
        check_options(options, [get_task("smoke")])
