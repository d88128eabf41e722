"""A person's file name shown as what it is: text, never markup or a formula.

A file may be named `**bold**.wav`, `<b>x</b>.png` or `![t](https://host/x.png).mp3`. In a Markdown
message the last one was an <img> that made the person's browser contact that host; in a chart's
labels Plotly reads a subset of HTML; in a spreadsheet a cell starting with `=` is a formula. Each
function here makes a name safe for one of those places.
"""

from __future__ import annotations

import html
import re

import pandas as pd

# OWASP's CSV injection list: a cell that begins with one of these is read as a formula (or, for
# tab and carriage return, can make the next character begin one).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def markdown_code(text: str) -> str:
    """`text` as a Markdown code span, shown literally by Markdown (Streamlit's too): no emphasis,
    link, image, HTML, LaTeX, emoji or colour directive is read inside one. The fence is one
    backtick longer than the longest run of backticks in the text, and a space on each side (which
    Markdown removes) keeps a backtick at either end from touching the fence. A line break
    becomes a space."""
    text = text.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
    fence = "`" * (1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    return f"{fence} {text} {fence}"


def plotly_text(text: str) -> str:
    """`text` for a Plotly label, legend or hover text, which read <b>, <a href=…> and other tags
    and entities: each of < > & as its entity, so the label shows it. Pass a name to a
    hovertemplate as data (`meta`, `text`), never inside the template, where %{…} is read too."""
    return html.escape(text, quote=False)


def spreadsheet_cell(value: str) -> str:
    """A text cell that a spreadsheet will not read as a formula: one that begins with =, +, -, @,
    tab or carriage return gets a ' before it (OWASP's CSV injection advice)."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def csv_text(table: pd.DataFrame) -> str:
    """The table as CSV (no index), every text cell made safe with `spreadsheet_cell`; numbers stay
    numbers (a negative number is not text and is left as it is)."""
    safe = table.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(lambda v: spreadsheet_cell(v) if isinstance(v, str) else v)
    return safe.to_csv(index=False)
