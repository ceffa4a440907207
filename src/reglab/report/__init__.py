"""``reglab report PATH``: a run's, a study's or a sweep's report as self-contained HTML and
Markdown, rebuilt from what the directory stores (``run.py``, ``study.py`` and ``sweep.py`` decide
what is shown, ``figures.py`` draws, ``page.py`` lays out)."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..rundir import directory_kind
from .page import write_report


def build_report(path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` into the run, study or sweep directory ``path``."""
    directory = Path(path)
    kind = directory_kind(directory)
    if kind == "run":
        from .run import run_sections as sections
    elif kind == "study":
        from .study import study_sections as sections
    elif kind == "sweep":
        from .sweep import sweep_sections as sections
    else:
        raise UserError(f"{directory}: not a run directory (recipe.yaml and meta.json), a study (study.json) or a sweep (sweep.json)")
    return write_report(directory, *sections(directory))
