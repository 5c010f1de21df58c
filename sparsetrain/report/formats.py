"""A DataFrame as markdown, csv or LaTeX text, numbers rounded for reading."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("markdown", "csv", "latex")
DIGITS = {"Sparsity": 3, "Improvement (%)": 2, "Backward ms/step": 2, "Backward speedup": 2,
          "Wall s": 0, "Backward ms": 3, "Speedup vs dense": 2, "Speedup vs cuDNN": 2}


def render(frame: pd.DataFrame, form: str) -> str:
    if form == "csv":
        return frame.to_csv(index=False)
    cells = [[_cell(column, value) for column, value in row.items()]
             for row in frame.to_dict("records")]
    columns = list(frame.columns)
    if form == "latex":
        body = [" & ".join(_latex(text) for text in row) + r" \\" for row in cells]
        return "\n".join([r"\begin{tabular}{" + "l" * len(columns) + "}", r"\toprule",
                          " & ".join(_latex(c) for c in columns) + r" \\", r"\midrule",
                          *body, r"\bottomrule", r"\end{tabular}", ""])
    from pandas.api.types import is_numeric_dtype  # pandas loads only when a table is made

    numeric = [is_numeric_dtype(frame[column]) for column in columns]
    lines = ["| " + " | ".join(columns) + " |",
             "| " + " | ".join("---:" if n else "---" for n in numeric) + " |"]
    lines += ["| " + " | ".join(text.replace("|", "\\|") for text in row) + " |"
              for row in cells]
    return "\n".join(lines) + "\n"


def _cell(column: str, value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        digits = DIGITS.get(column, 2)
        if column == "Improvement (%)":
            return f"{value:+.{digits}f}%"
        return f"{value:.{digits}f}"
    return str(value)


def _latex(text: str) -> str:
    for char in ("\\", "&", "%", "_", "#", "$"):
        text = text.replace(char, "\\" + char if char != "\\" else r"\textbackslash{}")
    return text.replace("–", "--")
