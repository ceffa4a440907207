"""Pydantic's validation errors rewritten as one line that names the recipe key, as a user wrote
it: ``optim.lr: Input should be greater than 0 (got -1)``, ``unknown key 'optim.lrr'; did you
mean 'optim.lr'?``. Sections chosen by their ``name`` (tagged unions) are followed through the
tag pydantic adds to an error's location, which never shows in the key."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from types import UnionType
from typing import Optional, Union, get_args, get_origin

from pydantic import BaseModel

from .sections import tag_key

MOVED = {  # old key -> its new place in another section, kept only where that section is (a study's recipe)
    "train.parallel_seeds": "study.parallel_seeds",
}
RENAMED = {  # old key -> new key, for recipes written before a rename
    "augment.multicrop.threshold": "augment.multicrop.below",
    "augment.gain_db": "augment.random_gain_db",
    "evaluate.gain_db": "evaluate.tuning_gain_db",
    "evaluate.max_sources": "evaluate.tuning_max_sources",
}


@dataclass
class Place:
    keys: list[str]  # the key as the user wrote it
    tag: Optional[str]  # the name that chose the last tagged section walked into
    section: Optional[type[BaseModel]]  # the section the key ends in (None past a leaf)
    annotation: object  # the type of the last field walked
    rest: tuple  # location parts left over (a union member's tag)


def tags_of(annotation) -> dict[str, type[BaseModel]]:
    """Tag → schema of a tagged union's members (empty for any other type)."""
    members = {}
    for member in get_args(annotation):
        args = get_args(member)
        for meta in getattr(member, "__metadata__", ()):
            if getattr(meta, "tag", None) is not None and args:
                members[meta.tag] = args[0]
    return members


def walk(schema: type[BaseModel], loc: tuple) -> Place:
    section, keys, annotation, index, tag = schema, [], None, 0, None
    while index < len(loc) and section is not None:
        field = section.model_fields.get(loc[index]) if isinstance(loc[index], str) else None
        if field is None:
            break
        keys.append(loc[index])
        annotation, index = field.annotation, index + 1
        members = tags_of(annotation)
        if members and index < len(loc) and loc[index] in members:
            section, tag, index = members[loc[index]], loc[index], index + 1
            continue
        inner = [t for t in (annotation, *get_args(annotation)) if isinstance(t, type) and issubclass(t, BaseModel)]
        section = inner[0] if inner else None
    rest = tuple(loc[index:])
    if section is None and get_origin(annotation) is dict:  # a mapping's own keys (a study's arm names)
        keys += [part for part in rest if isinstance(part, str)][:1]
        rest = ()
    return Place(keys, tag, section, annotation, rest)


def is_value_union(annotation) -> bool:
    """A field typed as a union of values (``float | 'tuned'``), not of sections."""
    members = [a for a in get_args(annotation) if a is not type(None)]
    return get_origin(annotation) in (Union, UnionType) and len(members) > 1 and not tags_of(annotation)


def describe(errors: list[dict], schema: type[BaseModel]) -> str:
    error = errors[0]
    if error["type"] == "extra_forbidden":
        place = walk(schema, error["loc"][:-1])
        unknown = ".".join(place.keys + [str(error["loc"][-1])])
        if unknown in RENAMED:
            return f"unknown key '{unknown}'; it was renamed '{RENAMED[unknown]}'"
        if unknown in MOVED:
            return f"unknown key '{unknown}'; it moved to '{MOVED[unknown]}' (a setting of the study's workers)"
        valid = list(place.section.model_fields) if place.section else []
        members = tags_of(place.annotation)
        picked_by = ".".join(place.keys + [tag_key(members)]) if members else ""
        applies = f" with {picked_by}={place.tag}" if place.tag and len({m for t, m in members.items() if t != "plugin"}) > 1 else ""
        elsewhere = sorted({tag for tag, member in members.items() if str(error["loc"][-1]) in member.model_fields and tag != "plugin"})
        if applies and elsewhere:  # a key of another name's schema: say which names take it
            return f"unknown key '{unknown}'{applies}; valid keys: {', '.join(valid)}; it applies with {picked_by}={' or '.join(elsewhere)}"
        close = difflib.get_close_matches(str(error["loc"][-1]), valid, n=1, cutoff=0.5)
        if close:
            return f"unknown key '{unknown}'; did you mean '{'.'.join(place.keys + close)}'?"
        return f"unknown key '{unknown}'{applies}; valid keys: {', '.join(valid)}"
    place = walk(schema, error["loc"])
    key = ".".join(place.keys)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "union_tag_invalid":
        members = tags_of(place.annotation)
        tags = [tag for tag in members if tag != "plugin"]
        close = difflib.get_close_matches(str(error["ctx"]["tag"]), tags, n=1)
        user_code = ", or package.module:attribute" if "plugin" in members else ""
        hint = f"did you mean '{close[0]}'?" if close else f"one of {', '.join(tags)}{user_code}"
        noun = "data source" if tag_key(members) == "source" else key
        return f"{key}.{tag_key(members)}: unknown {noun} '{error['ctx']['tag']}'; {hint}"
    if place.rest and is_value_union(place.annotation):
        # a value that fits no member of a union: pydantic reports it once per member
        wanted = [e["msg"].removeprefix("Input should be ").split(",")[0] for e in errors if walk(schema, e["loc"]).keys == place.keys]
        message = "Input should be " + " or ".join(wanted)
    if error["type"] in ("value_error", "assertion_error") and (not key or message.startswith(key)):
        return message
    given = error.get("input")
    shown = "" if isinstance(given, dict) else f" (got {given!r})"
    return f"{key or 'recipe'}: {message}{shown}"
