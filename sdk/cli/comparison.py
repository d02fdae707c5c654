"""The before/after table `edgeship prune` and `edgeship distill` print (teacher/student for
distill): params, non-zero params, MACs, size, zipped size, accuracy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from rich.table import Table

if TYPE_CHECKING:
    from edgeship.converters.evaluate import ModelStats


def comparison_table(before: ModelStats, after: ModelStats, title: str,
                     columns: tuple[str, str] = ("before", "after")) -> Table:
    """``before`` and ``after`` side by side, with their ratio."""
    table = Table(title=title, header_style="bold")
    for column in ("", *columns, f"{columns[1]} / {columns[0]}"):
        table.add_column(column, justify="right" if column else "left")

    def row(name: str, b: Optional[float], a: Optional[float], fmt: str = "{:,.0f}") -> None:
        ratio = f"{a / b:.1%}" if a is not None and b else "–"
        table.add_row(name, "–" if b is None else fmt.format(b), "–" if a is None else fmt.format(a),
                      ratio)

    row("params", before.params, after.params)
    row("non-zero params", before.nonzero_params, after.nonzero_params)
    row("MACs", before.macs, after.macs)
    row("size (bytes)", before.size_bytes, after.size_bytes)
    row("zip size (bytes)", before.compressed_bytes, after.compressed_bytes)
    if before.accuracy is not None and after.accuracy is not None:
        table.add_row("accuracy", f"{before.accuracy:.2%}", f"{after.accuracy:.2%}",
                      f"{100 * (after.accuracy - before.accuracy):+.2f} pt")
    return table
