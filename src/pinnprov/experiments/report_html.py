"""A self-contained HTML report: sections of text, tables (with their CSV files) and figures (PNG, embedded).

Pure rendering, no queries: the paper driver hands over `Table`s it got from the named queries and the PNGs it
drew, so what the page shows is exactly what the CSVs next to it hold. Figures are embedded as data URIs (the
page opens on its own, e.g. as a mail attachment) and also linked to their files.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pinnprov.experiments.storeview import Table
from pinnprov.store.output import is_time_column, iso_time

SIGNIFICANT = 6

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; } th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: 0.3em; }
.note { color: #555; font-size: 0.9em; }
.estimate { background: #fff4d6; padding: 0.5em; border-left: 4px solid #e0a800; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
code { background: #f3f3f3; padding: 0 0.2em; }
"""


@dataclass(frozen=True)
class TableBlock:
    caption: str
    table: Table
    csv_name: str  # file next to the report
    note: str = ""  # e.g. the query that produced it


@dataclass(frozen=True)
class FigureBlock:
    caption: str
    png: Path


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)  # plain text, escaped
    facts: list[tuple[str, str]] = field(default_factory=list)  # key/value list
    blocks: list[TableBlock | FigureBlock] = field(default_factory=list)
    css_class: str = ""


def format_cell(column: str, value: Any) -> tuple[str, bool]:
    """(text, is_number): floats to 6 significant digits, `*_at` columns as ISO-8601 UTC, NULL empty."""
    if value is None:
        return "", False
    if isinstance(value, bool):
        return str(value).lower(), False
    if is_time_column(column) and isinstance(value, int | float):
        return (iso_time(float(value)) if math.isfinite(value) else repr(value)), False
    if isinstance(value, float):
        return (f"{value:.{SIGNIFICANT}g}" if math.isfinite(value) else repr(value)), True
    if isinstance(value, int):
        return str(value), True
    return str(value), False


def _table_html(block: TableBlock) -> str:
    table = block.table
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = []
    for row in table.rows:
        cells = []
        for column, value in zip(table.columns, row, strict=True):
            text, number = format_cell(column, value)
            cells.append(f'<td class="num">{html.escape(text)}</td>' if number else f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not table.rows:
        body.append(f'<tr><td colspan="{len(table.columns)}">(no rows)</td></tr>')
    note = f'<p class="note">{html.escape(block.note)} &middot; <a href="{html.escape(block.csv_name)}">CSV</a></p>'
    return (f"<table><caption>{html.escape(block.caption)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>{note}")


def _figure_html(block: FigureBlock, base: Path) -> str:
    data = base64.b64encode(block.png.read_bytes()).decode("ascii")
    link = html.escape(str(block.png.relative_to(base)) if block.png.is_relative_to(base) else str(block.png))
    return (f'<figure><img alt="{html.escape(block.caption)}" src="data:image/png;base64,{data}">'
            f'<figcaption>{html.escape(block.caption)} &middot; <a href="{link}">PNG</a></figcaption></figure>')


def render(title: str, sections: Sequence[Section], base: Path) -> str:
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    for section in sections:
        css = f' class="{section.css_class}"' if section.css_class else ""
        parts.append(f"<section{css}><h2>{html.escape(section.title)}</h2>")
        parts.extend(f"<p>{html.escape(text)}</p>" for text in section.paragraphs)
        if section.facts:
            rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in section.facts)
            parts.append(f"<table>{rows}</table>")
        for block in section.blocks:
            parts.append(_table_html(block) if isinstance(block, TableBlock) else _figure_html(block, base))
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "".join(parts)


def write_report(path: Path, title: str, sections: Sequence[Section]) -> Path:
    """Write the HTML (atomically: a reader never sees half a report)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(render(title, sections, path.parent), encoding="utf-8")
    temporary.replace(path)
    return path
