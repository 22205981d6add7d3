"""Agreement of MentalAlign's four recorded LLM judges with its human experts (protocol 11).

An item is one (conversation, response source) pair; each rater gave it one 1-5 score per
attribute. The two attribute groups are scored per item as the mean of their attributes
(CSS = Guidance, Informativeness, Relevance, Safety; ARS = Empathy, Helpfulness, Understanding),
over items where the rater scored every attribute of the group. Scores outside the 1-5 rubric
(the human file has some 0s and 6s) count as unscored. The bootstrap resamples conversations
(all ten replies of a drawn conversation come along), with one set of resamples shared by every
judge and attribute, so intervals of different judges are comparable.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from trustmh.data.loaders import mentalalign as ma
from trustmh.data.sources import DataContext
from trustmh.errors import UserError
from trustmh.judge_check.results import JudgeAgreement, Thresholds, compare_scores
from trustmh.judge_check.stats import DEFAULT_RESAMPLES, resample_weights

SOURCE = "mentalalign"
JUDGE_PREFIX = "mentalalign:"
HUMAN = "human"
GROUPS: dict[str, tuple[str, ...]] = {"CSS": ma.CSS, "ARS": ma.ARS}
ATTRIBUTES: tuple[str, ...] = (*ma.ATTRIBUTES, *GROUPS)
RECORDED_JUDGES: tuple[str, ...] = tuple(r for r in ma.RATERS if r != HUMAN)


def judge_key(rater: str) -> str:
    """The judge-check key of a recorded MentalAlign judge, e.g. `mentalalign:gpt-4o`."""
    return JUDGE_PREFIX + rater


def resolve_judges(selection: list[str] | None) -> list[str]:
    """Recorded judge names from `--judge` values (`gpt-4o` or `mentalalign:gpt-4o`); all four
    when none is given."""
    if not selection:
        return list(RECORDED_JUDGES)
    chosen = []
    for item in selection:
        name = item.removeprefix(JUDGE_PREFIX)
        if name not in RECORDED_JUDGES:
            raise UserError(
                f"--judge {item}: MentalAlign has recorded ratings only for "
                f"{', '.join(RECORDED_JUDGES)} (its reply texts are not available, so a new judge "
                "cannot be re-run on them); check a new judge live with --ratings crisis --judge SPEC"
            )
        chosen.append(name)
    return chosen


def score_cube(
    table: ma.RatingsTable, *, in_rubric_only: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Scores as an array (rater, conversation, response source, attribute), NaN where a rater
    gave no score inside the rubric (any score, with `in_rubric_only=False`); and the
    conversation ids along axis 1."""
    conv_ids, conv_index = np.unique(table.conv_id, return_inverse=True)
    cube = np.full(
        (len(ma.RATERS), len(conv_ids), len(ma.RESPONSE_SOURCES), len(ma.ATTRIBUTES)), np.nan
    )
    keep = table.in_rubric if in_rubric_only else np.ones(len(table), dtype=bool)
    cube[
        table.rater[keep],
        conv_index[keep],
        table.response_source[keep],
        table.attribute[keep],
    ] = table.score[keep]
    return cube, conv_ids


def attribute_scores(cube: np.ndarray, rater: int, attribute: str) -> np.ndarray:
    """One rater's scores of one attribute or group, shape (conversation, response source)."""
    if attribute in GROUPS:
        columns = [ma.ATTRIBUTES.index(a) for a in GROUPS[attribute]]
        return cube[rater][..., columns].mean(axis=-1)  # NaN unless every attribute is scored
    return cube[rater][..., ma.ATTRIBUTES.index(attribute)]


def check_mentalalign(
    ctx: DataContext,
    judges: list[str] | None = None,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    thresholds: Thresholds | None = None,
) -> list[JudgeAgreement]:
    """One row per recorded judge x attribute (seven attributes, then CSS and ARS)."""
    names = resolve_judges(judges)  # a bad --judge fails before the ratings are read
    return analyse(ma.read_ratings(ctx), names, resamples=resamples, seed=seed,
                   thresholds=thresholds)  # fmt: skip


def analyse(
    table: ma.RatingsTable,
    judges: list[str] | None = None,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    thresholds: Thresholds | None = None,
) -> list[JudgeAgreement]:
    """`check_mentalalign` on an already loaded ratings table."""
    thresholds = thresholds or Thresholds()
    cube, conv_ids = score_cube(table)
    n_conv, n_sources = cube.shape[1], cube.shape[2]
    cluster = np.broadcast_to(np.arange(n_conv)[:, None], (n_conv, n_sources))
    weights = resample_weights(n_conv, resamples, seed) if resamples else None
    created = datetime.now().isoformat(timespec="seconds")
    human = ma.RATERS.index(HUMAN)
    rows = []
    for name in resolve_judges(judges):
        rater = ma.RATERS.index(name)
        for attribute in ATTRIBUTES:
            rows.append(
                compare_scores(
                    attribute_scores(cube, human, attribute),
                    attribute_scores(cube, rater, attribute),
                    cluster,
                    n_conv,
                    judge=judge_key(name),
                    attribute=attribute,
                    reference=HUMAN,
                    source=SOURCE,
                    weights=weights,
                    thresholds=thresholds,
                    created=created,
                )
            )
    return rows
