"""The machinery every recipe section is built from: a section refuses unknown keys, a metric name
is checked against the per-epoch values, and a section whose ``name`` picks its schema is a tagged
union."""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Tag

from ..metrics import EPOCH_METRICS
from ..plugins import Registry, is_plugin

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


def tagged_union(default: str, members: dict[str, type[BaseModel]], key: str = "name", plugins: Optional[Registry] = None):
    """A section whose ``key`` (``name``) picks its schema among ``members`` (a pydantic discriminated
    union); a section without it takes ``default``'s. A value naming user code (a reference or a
    name registered in ``plugins``) picks the ``plugin`` member."""

    def choose(value) -> str:
        name = value.get(key, default) if isinstance(value, dict) else getattr(value, key, default)
        return "plugin" if name not in members and plugins is not None and is_plugin(name, plugins) else name

    return Annotated[Union[tuple(Annotated[schema, Tag(name)] for name, schema in members.items())], Discriminator(choose)]


def tag_key(members: dict[str, type[BaseModel]]) -> str:
    """The key that picks a tagged union's member: ``name``, or ``source`` for data."""
    return "name" if all("name" in member.model_fields for member in members.values()) else "source"


class PluginSection(Section):
    """A section whose part is user code: every key the section does not define is a keyword
    argument of the callable (checked against its signature)."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})
