"""The loader registry: one loader per data source, imported only when used.

A loader is a function `load(ctx: DataContext) -> dict[str, Any]` returning named collections of
validated pydantic records (lists, or dicts of lists, or a compact table for very large files).
Each loader reads its files through `trustmh.data.records`, so a malformed file raises a one-line
`DataError` naming the file and the row or field.

`LOADERS` maps a source id (its folder name) to `"module:function"`. Modules are imported lazily:
a loader module that does not exist yet makes only its own source "loader not available", never
the others.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from trustmh.data.records import _validate
from trustmh.data.sources import SOURCES, DataContext, how_to_get
from trustmh.errors import DataError

R = TypeVar("R", bound=BaseModel)
Loader = Callable[[DataContext], dict[str, Any]]

LOADERS: dict[str, str] = {
    "trustmh": "trustmh.data.loaders.trustmh_sets:load",
    "trustmh_privacy": "trustmh.data.loaders.privacy:load_trustmh_privacy",
    "confaide": "trustmh.data.loaders.privacy:load_confaide",
    "ethicmh": "trustmh.data.loaders.ethicmh:load",
    "trustmh_recorded": "trustmh.data.loaders.recorded:load",
    "trustmh_prompts": "trustmh.data.loaders.prompts:load",
    "usmle_mental": "trustmh.data.loaders.usmle_mental:load",
    "emobench": "trustmh.data.loaders.emobench:load",
    "cpsycoune": "trustmh.data.loaders.cpsycoune:load",
    "esconv": "trustmh.data.loaders.esconv:load",
    "c_ssrs": "trustmh.data.loaders.c_ssrs:load",
    "mh_crisis": "trustmh.data.loaders.mh_crisis:load",
    "elephant": "trustmh.data.loaders.elephant:load",
    "mentalalign": "trustmh.data.loaders.mentalalign:load",
    "vera_mh": "trustmh.data.loaders.vera_mh:load",
}


class LoaderUnavailable(DataError):
    """The loader module of a source is not installed (not written yet)."""


def validate_record(model: type[R], data: Any, where: str) -> R:
    """Validate one record; a DataError naming `where` (file and row) and the field on failure."""
    return _validate(model, data, where)


def get_loader(source_id: str) -> Loader:
    """The loader function of a source; LoaderUnavailable when its module is absent."""
    if source_id not in LOADERS:
        raise DataError(f"no loader for data source {source_id!r}; known: {', '.join(LOADERS)}")
    module_name, _, func_name = LOADERS[source_id].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise LoaderUnavailable(
                f"{source_id}: loader not available ({module_name} is not installed)"
            ) from None
        raise
    loader = getattr(module, func_name or "load", None)
    if loader is None:
        raise LoaderUnavailable(
            f"{source_id}: loader not available ({module_name} has no {func_name or 'load'}())"
        )
    return loader


def load_source(ctx: DataContext, source_id: str) -> dict[str, Any]:
    """Load every record collection of one source."""
    return get_loader(source_id)(ctx)


@dataclass
class LoadReport:
    """What `load_all` found: records per source, and one line per source that failed."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no present source failed to load."""
        return not self.errors


def load_all(ctx: DataContext, sources: Iterable[str] | None = None) -> LoadReport:
    """Load every source that is present, collecting per-source errors without stopping.

    Sources whose folder is in no data root go to `missing` (with how to get them); sources whose
    loader module is absent go to `unavailable`; loading errors go to `errors` (one line each).
    """
    report = LoadReport()
    for source_id in sources if sources is not None else LOADERS:
        if ctx.root_of(source_id) is None:
            report.missing[source_id] = how_to_get(source_id)
            continue
        start = time.perf_counter()
        try:
            report.records[source_id] = load_source(ctx, source_id)
        except LoaderUnavailable as exc:
            report.unavailable[source_id] = str(exc)
        except DataError as exc:
            report.errors[source_id] = str(exc)
        finally:
            report.seconds[source_id] = time.perf_counter() - start
    return report


def count_records(collection: Any) -> int:
    """Number of records in a loaded collection (lists, dicts of lists, tables with len())."""
    if isinstance(collection, dict):
        return sum(count_records(v) for v in collection.values())
    if isinstance(collection, (str, bytes, BaseModel)):
        return 1
    try:
        return len(collection)
    except TypeError:
        return 1


__all__ = [
    "LOADERS",
    "SOURCES",
    "LoadReport",
    "LoaderUnavailable",
    "count_records",
    "get_loader",
    "load_all",
    "load_source",
    "validate_record",
]
