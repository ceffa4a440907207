"""``reglab report PATH``: a run's or a study's report as self-contained HTML and Markdown, rebuilt
from what the directory stores (``run.py`` and ``study.py`` decide what is shown, ``figures.py``
draws, ``page.py`` lays out). Sweep reports are to come with sweeps."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..rundir import is_run_dir
from .page import write_report


def build_report(path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` into the run or study directory ``path``."""
    directory = Path(path)
    if is_run_dir(directory):
        from .run import run_sections as sections
    elif (directory / "study.json").is_file():
        from .study import study_sections as sections
    else:
        raise UserError(f"{directory}: neither a run directory (recipe.yaml and meta.json) nor a study directory (study.json)")
    return write_report(directory, *sections(directory))
