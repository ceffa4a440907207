"""The machinery every recipe section is built from: a section refuses unknown keys, a metric name
is checked against the per-epoch values, and a section whose ``name`` picks its schema is a tagged
union."""

from __future__ import annotations

import difflib
from typing import Annotated, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Tag

from ..metrics import EPOCH_METRICS

MonitorMode = Literal["auto", "min", "max"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _check_monitor(name: str) -> str:
    if name not in EPOCH_METRICS:
        close = difflib.get_close_matches(name, EPOCH_METRICS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; one of {', '.join(EPOCH_METRICS)}"
        raise ValueError(f"unknown metric '{name}'{hint}")
    return name


Monitor = Annotated[str, AfterValidator(_check_monitor)]


def tagged_union(default: str, members: dict[str, type[BaseModel]]):
    """A section whose ``name`` picks its schema among ``members`` (a pydantic discriminated
    union); a section without ``name`` takes ``default``'s."""
    choose = Discriminator(lambda value: value.get("name", default) if isinstance(value, dict) else getattr(value, "name", default))
    return Annotated[Union[tuple(Annotated[schema, Tag(name)] for name, schema in members.items())], choose]
