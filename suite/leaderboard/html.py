"""``index.html``: the leaderboard as one self-contained page.

No scripts, no external style sheets or fonts, every image a ``data:image/png;base64`` URI — the file
works when opened alone, mailed, or served from any static host, and a browser has nothing to fetch.
"""

from __future__ import annotations

import base64
import re
from html import escape
from pathlib import Path

import pandas as pd

from gsibench.leaderboard.data import BatteryRuns
from gsibench.leaderboard.markdown import (
    Table,
    arrow,
    findings,
    how_to_read,
    links_cells,
    mechanism_cells,
    outcome_cells,
    overall_cells,
    scale_cells,
    seeds_line,
    worked_example,
)

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1250px;
       padding: 0 1em; color: #1b1b1b; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.84em; }
td.spec { white-space: normal; overflow-wrap: anywhere; max-width: 14em; text-align: left; font-size: 0.95em; }
th, td { border: 1px solid #d6d6d6; padding: 0.25em 0.55em; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #fafafa; }
td.best { font-weight: 600; background: #e8f4ea !important; }
figure { margin: 1em 0 1.6em; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.88em; color: #444; max-width: 1100px; }
code, pre { background: #f5f5f5; padding: 0.1em 0.3em; border-radius: 3px; font-size: 0.92em; }
pre { padding: 0.7em; overflow-x: auto; } .note { color: #555; font-size: 0.9em; }
"""


def emphasis(text: str) -> str:
    """Escaped ``text`` with Markdown ``**strong**``, ``*emphasis*`` and ```code``` as HTML."""
    html = re.sub(r"[*][*]([^*]+)[*][*]", r"<strong>\1</strong>", escape(text))
    html = re.sub(r"[*]([^*]+)[*]", r"<em>\1</em>", html)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html)


def image_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def table_html(header: list[str], rows: list[list[str]], best: list[set[int]] | None = None,
               spec_column: int | None = None) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for r, row in enumerate(rows):
        marks = best[r] if best else set()
        cells = []
        for c, value in enumerate(row):
            classes = " ".join(n for n, on in (("best", c in marks), ("spec", c == spec_column)) if on)
            cells.append(f'<td class="{classes}">{escape(value)}</td>' if classes else f"<td>{escape(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def overall_html(data: BatteryRuns, overall: pd.DataFrame) -> str:
    header, rows = overall_cells(data, overall)
    best = [{1} if rank == 1 else set() for rank in overall["robust_rank"]]
    return table_html(header, rows, best)


def _marked(table: Table) -> str:
    """A per-task table with every rank-1 cell highlighted (cells that end in ``(1)`` or ``(1=)``)."""
    header, rows = table
    best = [{c for c, cell in enumerate(row) if cell.endswith(("(1)", "(1=)"))} for row in rows]
    return table_html(header, rows, best)


def page(data: BatteryRuns, cells: pd.DataFrame, overall: pd.DataFrame, links: pd.DataFrame,
         figures: list[tuple[str, Path, str]], commands: list[str], provenance: dict[str, str],
         common: list[int]) -> str:
    """The whole page; ``figures`` are (title, png path, caption)."""
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>gsibench leaderboard</title>", f"<style>{STYLE}</style></head><body>",
        "<h1>gsibench leaderboard</h1>",
        f'<p class="note">MLflow experiment <code>{escape(data.experiment)}</code>, {len(data.runs)} runs; '
        + escape(", ".join(f"{k} {v}" for k, v in provenance.items())) + ".</p>",
        "<h2>Overall (sorted by robust quality)</h2>", overall_html(data, overall),
        f'<p class="note">{escape(seeds_line(data, common))}</p>',
        "<h2>How to read it</h2>", f"<p>{emphasis(how_to_read(data))}</p>", table_html(*scale_cells(data)),
        f"<p>{emphasis(worked_example(data, cells))}</p>",
    ]
    found = findings(data, cells)
    if found:
        parts += ["<h2>Findings</h2>", "<ul>" + "".join(f"<li>{emphasis(line)}</li>" for line in found) + "</ul>"]
    if not links.empty:
        parts += ["<h2>What the robustness numbers predict</h2>",
                  "<p>Spearman's ρ between a mechanism metric and the quality drop (clean minus perturbed normalised "
                  "score) across the perturbed cells; the pooled row ranks within each task first; 95% bootstrap "
                  "intervals.</p>", table_html(*links_cells(links))]
    parts += ["<p>Regenerate:</p><pre>" + escape("\n".join(commands)) + "</pre>", "<h2>Plots</h2>"]
    for title, path, caption in figures:
        parts.append(f"<figure><h3>{escape(title)}</h3>{image_tag(path, title)}"
                     f"<figcaption>{escape(caption)}</figcaption></figure>")
    parts.append("<h2>Per task</h2>")
    for task in data.tasks:
        score = data.scores.get(task)
        subtitle = f"{score.name} {arrow(score.higher_is_better)}" if score else "no validation score"
        parts.append(f"<h3>{escape(task)} ({escape(subtitle)})</h3>")
        if task in data.normalisers:
            parts += ["<p>Outcome: normalised score (rank) per perturbation; †n = n seeds diverged or collapsed.</p>",
                      _marked(outcome_cells(data, cells, task))]
        parts += ["<p>Mechanism: update sensitivity per perturbation.</p>",
                  table_html(*mechanism_cells(data, cells, task))]
    parts.append("</body></html>")
    return "\n".join(parts)
