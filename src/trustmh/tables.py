"""Terminal tables that read at 80 columns: ids never break, long text folds onto more lines.

A table's key columns (subtask ids, model names, specs) never wrap: rich gives them the width of
their longest line and folds the other columns to fit the terminal. A key cell holding several ids
puts one per line (`"\\n".join(ids)`).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table


def folded_table(title: str | None, columns: Sequence[str], *, keep: Sequence[str] = (), **kwargs) -> Table:  # fmt: skip
    """A table with these columns: the `keep` ones never wrap (ids), the others fold long cells
    onto several lines rather than cut them."""
    table = Table(title=title, **kwargs)
    for name in columns:
        table.add_column(name, overflow="fold", no_wrap=name in keep)
    return table
