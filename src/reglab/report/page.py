"""A report as one self-contained HTML page (figures as data URIs, CSS inline, no script, nothing
fetched) and as Markdown with the figures as PNG files beside it. Everything shown comes from the
run or study directory; jinja2 escapes every string, so class names and paths stay text."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import jinja2

from ..rundir import write_atomic


@dataclass
class Figure:
    name: str  # file stem in the Markdown folder
    png: bytes
    caption: str


@dataclass
class Section:
    title: str
    text: str = ""
    headers: list[str] = field(default_factory=list)
    rows: list[list] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    columns: int = 0  # figures laid out in a grid of this many columns (arms beside arms); 0: as they fit


ENVIRONMENT = jinja2.Environment(autoescape=True)
ENVIRONMENT.filters["b64"] = lambda data: base64.b64encode(data).decode("ascii")
HTML = ENVIRONMENT.from_string("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.scroll { overflow-x: auto; }
table.wide { font-size: 0.72em; } table.wide th, table.wide td { padding: 0.2em 0.35em; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; vertical-align: top; }
figcaption { font-size: 0.85em; color: #555; max-width: 640px; }
img { max-width: 100%; }
.note { color: #555; }
.grid { display: grid; gap: 0.5em 1em; } .grid figure { margin: 0; }
</style></head><body>
<h1>{{ title }}</h1>
<p class="note">{{ subtitle }}</p>
{% for section in sections %}
<h2>{{ section.title }}</h2>
{% if section.text %}<p>{{ section.text }}</p>{% endif %}
{% if section.rows %}<div class="scroll"><table{% if section.headers | length > 11 %} class="wide"{% endif %}><thead><tr>{% for h in section.headers %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in section.rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</tbody></table></div>{% endif %}
{% if section.columns %}<div class="grid" style="grid-template-columns: repeat({{ section.columns }}, 1fr)">{% endif %}
{% for figure in section.figures %}<figure><img alt="{{ figure.caption }}" src="data:image/png;base64,{{ figure.png | b64 }}"><figcaption>{{ figure.caption }}</figcaption></figure>{% endfor %}
{% if section.columns %}</div>{% endif %}
{% endfor %}
</body></html>
""")


def markdown_cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def write_report(directory: Path, title: str, subtitle: str, sections: list[Section]) -> tuple[Path, Path]:
    """``report.html`` and ``report.md`` (+ ``report_files/*.png``) in ``directory``."""
    html = HTML.render(title=title, subtitle=subtitle, sections=sections)
    write_atomic(directory / "report.html", lambda tmp: tmp.write_text(html, encoding="utf-8"))
    files = directory / "report_files"
    files.mkdir(exist_ok=True)
    lines = [f"# {markdown_cell(title)}", "", markdown_cell(subtitle), ""]
    for section in sections:
        lines += [f"## {markdown_cell(section.title)}", ""]
        if section.text:
            lines += [markdown_cell(section.text), ""]
        if section.rows:
            lines.append("| " + " | ".join(map(markdown_cell, section.headers)) + " |")
            lines.append("|" + "---|" * len(section.headers))
            lines += ["| " + " | ".join(map(markdown_cell, row)) + " |" for row in section.rows]
            lines.append("")
        for figure in section.figures:
            write_atomic(files / f"{figure.name}.png", lambda tmp, data=figure.png: tmp.write_bytes(data))
            lines += [f"![{markdown_cell(figure.caption)}](report_files/{figure.name}.png)", ""]
    write_atomic(directory / "report.md", lambda tmp: tmp.write_text("\n".join(lines), encoding="utf-8"))
    return directory / "report.html", directory / "report.md"


def fmt(value: Optional[float], digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)
