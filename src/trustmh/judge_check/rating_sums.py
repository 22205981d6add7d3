"""Counts and sums of the MentalAlign ratings: all the model-level tables need (protocol 11.2).

MentalBench-Align's reliability, bias and human-evaluation tables are functions of, per rater x
response source x attribute:

- the rater's own scores: their count, sum and sum of squares (the experts' mean per model; a
  judge's mean per model, to place a new model among the recorded ones);
- a judge's scores paired with the experts' on the same (conversation, reply): the count, both
  sums, both sums of squares and the sum of products (both raters' model means over the same
  items; bias and MSE over the pooled pairs).

So the 13 MB `ratings.csv` reduces to 350 rows, `model_sums.csv`, which the package bundles so
`trustmh reproduce` rebuilds those tables with no data folder. `tools/build_bundle.py` writes it
from `ratings.csv` with `from_ratings` + `to_csv`, and a test checks the bundled copy against the
real data. Scores are counted as recorded, the experts' out-of-rubric 0s and 6s included, as the
paper's analysis code reads them (its `_parse_rating` takes any number); leaving them out moves
the published human means by up to 0.09 (see protocol 11.2).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from trustmh.data.loaders import mentalalign as ma
from trustmh.data.records import FIX_HINT, existing, open_text
from trustmh.data.sources import DataContext
from trustmh.errors import DataError
from trustmh.judge_check.mentalalign import score_cube

SUMS_FILE = "model_sums.csv"
HUMAN = "human"
# the rater's own scores, then its scores paired with the experts' (empty for the experts' rows)
OWN = ("n", "sum", "sum_sq")
PAIRED = (
    "n_paired",
    "sum_paired_human",
    "sum_paired_rater",
    "sum_sq_paired_human",
    "sum_sq_paired_rater",
    "sum_paired_product",
)
COLUMNS = ("rater", "response_source", "attribute", *OWN, *PAIRED)


@dataclass(frozen=True, eq=False)
class RatingSums:
    """Arrays indexed (rater, response source, attribute) in the loader's orders (`ma.RATERS`,
    `ma.RESPONSE_SOURCES`, `ma.ATTRIBUTES`). The paired arrays of the experts' own row are 0."""

    n: np.ndarray
    sum: np.ndarray
    sum_sq: np.ndarray
    n_paired: np.ndarray
    sum_paired_human: np.ndarray
    sum_paired_rater: np.ndarray
    sum_sq_paired_human: np.ndarray
    sum_sq_paired_rater: np.ndarray
    sum_paired_product: np.ndarray

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RatingSums) and all(
            np.array_equal(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)
        )

    def to_csv(self) -> str:
        """The CSV text of `model_sums.csv` (one row per rater x source x attribute)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        human = ma.RATERS.index(HUMAN)
        for r, rater in enumerate(ma.RATERS):
            for s, source in enumerate(ma.RESPONSE_SOURCES):
                for a, attribute in enumerate(ma.ATTRIBUTES):
                    own = [_number(getattr(self, name)[r, s, a]) for name in OWN]
                    paired = (
                        [""] * len(PAIRED)
                        if r == human
                        else [_number(getattr(self, name)[r, s, a]) for name in PAIRED]
                    )
                    writer.writerow([rater, source, attribute, *own, *paired])
        return out.getvalue()


def _number(value: float) -> str:
    """Counts and sums of integer scores print as integers; anything else exactly (repr)."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def from_ratings(table: ma.RatingsTable) -> RatingSums:
    """The sums of a ratings table, every recorded score counted."""
    cube, _ = score_cube(table, in_rubric_only=False)  # (rater, conversation, source, attribute)
    scored = np.isfinite(cube)
    values = np.where(scored, cube, 0.0)
    human = ma.RATERS.index(HUMAN)
    both = scored & scored[human][None]  # a rater's item the experts scored too
    both[human] = False
    paired_human = np.where(both, values[human][None], 0.0)
    paired_rater = np.where(both, values, 0.0)
    return RatingSums(
        n=scored.sum(axis=1).astype(np.float64),
        sum=values.sum(axis=1),
        sum_sq=(values**2).sum(axis=1),
        n_paired=both.sum(axis=1).astype(np.float64),
        sum_paired_human=paired_human.sum(axis=1),
        sum_paired_rater=paired_rater.sum(axis=1),
        sum_sq_paired_human=(paired_human**2).sum(axis=1),
        sum_sq_paired_rater=(paired_rater**2).sum(axis=1),
        sum_paired_product=(paired_human * paired_rater).sum(axis=1),
    )


def read_sums(path: Path) -> RatingSums:
    """`model_sums.csv` back into arrays; DataError naming the row of anything malformed."""
    reader = csv.reader(io.StringIO(open_text(path), newline=""))
    header = tuple(next(reader, []))
    if header != COLUMNS:
        raise DataError(
            f"{path}: columns must be {list(COLUMNS)} (found {list(header)}); {FIX_HINT}"
        )
    shape = (len(ma.RATERS), len(ma.RESPONSE_SOURCES), len(ma.ATTRIBUTES))
    arrays = {name: np.zeros(shape) for name in (*OWN, *PAIRED)}
    seen = np.zeros(shape, dtype=bool)
    for rowno, row in enumerate(reader, 2):
        try:
            r = ma.RATERS.index(row[0])
            s = ma.RESPONSE_SOURCES.index(row[1])
            a = ma.ATTRIBUTES.index(row[2])
            names = OWN if row[0] == HUMAN else (*OWN, *PAIRED)
            for name, cell in zip(names, row[3 : 3 + len(names)], strict=True):
                arrays[name][r, s, a] = float(cell)
        except (ValueError, IndexError):
            raise DataError(
                f"{path}: row {rowno}: expected a known rater, source and attribute followed by "
                f"numbers in the columns {list(COLUMNS)[3:]}; {FIX_HINT}"
            ) from None
        seen[r, s, a] = True
    if not seen.all():
        r, s, a = (int(i[0]) for i in np.nonzero(~seen))
        raise DataError(
            f"{path}: no row for {ma.RATERS[r]}, {ma.RESPONSE_SOURCES[s]}, {ma.ATTRIBUTES[a]}; "
            f"rebuild it with `python tools/build_bundle.py DATA_DIR`"
        )
    return RatingSums(**arrays)


@dataclass(frozen=True)
class LoadedSums:
    """The sums and where they came from (shown beside every table built from them)."""

    sums: RatingSums
    origin: str


def load_sums(ctx: DataContext) -> LoadedSums:
    """The sums from `mentalalign/ratings.csv` when a data root has it, else from the bundled
    `mentalalign/model_sums.csv`; DataError saying what is missing otherwise."""
    ratings = ctx.file(ma.SOURCE, "ratings.csv")
    if _exists(ratings):
        return LoadedSums(from_ratings(ma.read_ratings(ctx)), f"{ratings}")
    sums = ctx.file(ma.SOURCE, SUMS_FILE)
    if _exists(sums):
        return LoadedSums(
            read_sums(sums), f"{sums} (counts and sums of ratings.csv, bundled with trustmh)"
        )
    raise DataError(
        "MentalAlign data not available: neither mentalalign/ratings.csv nor its bundled sums "
        f"({SUMS_FILE}) was found in {', '.join(map(str, ctx.roots))}; reinstall trustmh or pass "
        "--data-dir with the data folder laid out as in docs/data.md"
    )


def _exists(path: Path) -> bool:
    try:
        existing(path)
    except DataError:
        return False
    return True
