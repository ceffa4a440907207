"""What every command shares: progress or silence, ``--device`` as an override, and ``--json PATH``
(what the terminal shows, as standard JSON)."""

from __future__ import annotations

import dataclasses
import json
import math


def reporter_for(quiet: bool):
    from ..progress import Silent, Terminal

    return Silent() if quiet else Terminal()


def with_device(args) -> list[str]:
    """The command's overrides, plus ``train.device`` when ``--device`` was given."""
    return list(args.overrides) + ([f"train.device={args.device}"] if args.device else [])


def json_ready(value):
    """Dataclasses as mappings, NaN and infinities as null: standard JSON for any reader."""
    if dataclasses.is_dataclass(value):
        return json_ready(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_output(path, payload: dict) -> None:
    """``--json PATH``: what the command printed, as JSON."""
    from ..rundir import check_output, write_atomic

    target = check_output(path, "--json")
    write_atomic(target, lambda tmp: tmp.write_text(json.dumps(json_ready(payload), indent=2) + "\n"))
