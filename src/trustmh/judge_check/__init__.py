"""Judge reliability (protocol 11): how far a judge-scored number can be trusted.

- `mentalalign.check_mentalalign`: agreement of MentalAlign's four recorded LLM judges with its
  human experts, per attribute and attribute group.
- `crisis.check_crisis`: a candidate judge rates the crisis answers that two experts scored
  (LLMs-Mental-Health-Crisis), run live through the normal runner; agreement with each expert and
  the expert-expert ceiling.
- `stats`: the statistics (ICC(A,1), ICC(C,1), bias, MSE, Pearson, Spearman, weighted kappa,
  Krippendorff's alpha, exact / within-one agreement) with a conversation bootstrap.
- `lookup(judge_spec, attribute) -> JudgeAgreement | None`: the saved result reports show beside
  every judge-scored number; `assess(judge_spec, attribute)` gives the verdict that applies to a
  subtask's numbers (falling back, for an attribute never checked, to "not trusted" when the
  judge failed every check it had) and `describe` that as one line.
"""

from trustmh.judge_check.results import JudgeAgreement, Thresholds
from trustmh.judge_check.store import (
    assess,
    describe,
    how_to_measure,
    lookup,
    results_dir,
    save_results,
)

__all__ = [
    "JudgeAgreement",
    "Thresholds",
    "assess",
    "describe",
    "how_to_measure",
    "lookup",
    "results_dir",
    "save_results",
]
