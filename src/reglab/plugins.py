"""The user's own parts beside reglab's: one registry per kind of part (models, data sources, losses,
batch operations) holding the built-ins and whatever a user registers (timm's ``register_model``),
and references ``package.module:attribute`` imported wherever a name is chosen (Hydra's
``_target_``). A reference's module is looked for on ``sys.path`` and in the folders a recipe
names (``plugin_dirs``: the recipe file's own folder), which join ``sys.path`` for the process."""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

from .errors import UserError, first_line

REFERENCE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass(frozen=True)
class Entry:
    target: Callable
    builtin: bool  # reglab's own: built from its recipe section, not from keyword arguments


class Registry:
    """Names → parts of one kind, in the order they were registered; ``home`` is the module that
    registers reglab's own, imported when they are first needed (so ``import reglab`` stays light)."""

    def __init__(self, kind: str, home: str):
        self.kind, self.home, self.entries = kind, home, {}

    def load_builtins(self) -> None:
        importlib.import_module(self.home)

    def register(self, name: str, target: Optional[Callable] = None, builtin: bool = False):
        """``register(name, fn)``, or ``@register(name)`` above a function or class."""
        if not builtin:
            self.load_builtins()  # a user's name may not take a built-in's

        def add(target: Callable) -> Callable:
            if not callable(target):
                raise TypeError(f"{self.kind} '{name}': {target!r} is not callable")
            if name in self.entries and self.entries[name].target is not target:
                raise ValueError(f"{self.kind} '{name}' is registered already")
            self.entries[name] = Entry(target, builtin)
            return target

        return add if target is None else add(target)

    def builtins(self) -> list[str]:
        self.load_builtins()
        return [name for name, entry in self.entries.items() if entry.builtin]

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def resolve(self, name: str, key: str) -> Callable:
        """The part a recipe names at ``key``: a registered name or a reference (``ValueError``
        with a one-line message naming ``key`` when neither works)."""
        if name not in self.entries:
            self.load_builtins()
        if name in self.entries:
            return self.entries[name].target
        if not REFERENCE.match(name):
            close = difflib.get_close_matches(name, list(self.entries), n=1)
            hint = f"did you mean '{close[0]}'?" if close else (f"one of {', '.join(self.entries)}, package.module:attribute, or a name "
                                                                 "registered by a module the recipe lists under imports")  # fmt: skip
            raise ValueError(f"{key}: unknown {self.kind} '{name}'; {hint}")
        return import_reference(name, key)


MODELS = Registry("model", "reglab.models")
DATA_SOURCES = Registry("data source", "reglab.data")
LOSSES = Registry("loss", "reglab.training.losses")
BATCH_OPS = Registry("batch operation", "reglab.augment")


def is_plugin(name: Any, registry: Registry) -> bool:
    """A name that picks user code: a reference, or a name registered from Python."""
    return isinstance(name, str) and (bool(REFERENCE.match(name)) or (name in registry and not registry.entries[name].builtin))


def add_search_dirs(dirs: Iterable[str]) -> None:
    """Let the folders' modules be imported (after everything already on ``sys.path``)."""
    for folder in dirs:
        if folder not in sys.path:
            sys.path.append(folder)


def import_module(module_name: str, key: str = "imports"):
    """The user's module, or a ``ValueError`` whose one line names ``key`` and what went wrong."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ValueError(f"{key}: no module '{exc.name}' (looked on sys.path and in the recipe's folder)") from None
        raise ValueError(f"{key}: importing {module_name} failed ({first_line(exc)})") from None
    except Exception as exc:  # the user's module raising as it runs
        raise ValueError(f"{key}: importing {module_name} failed ({type(exc).__name__}: {first_line(exc)})") from None


def import_reference(reference: str, key: str) -> Callable:
    module_name, _, attribute = reference.partition(":")
    module = import_module(module_name, key)
    target = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"{key}: module {module_name} has no attribute '{attribute}'")
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"{key}: {reference} is not callable (it is a {type(target).__name__})")
    return target


def check_arguments(target: Callable, given: dict, section: str, name: str, supplied: tuple[str, ...] = ()) -> None:
    """Refuse keyword arguments ``target`` does not take, and required ones neither ``given`` nor
    ``supplied`` (passed by reglab itself) hold, naming the recipe key and the callable."""
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return  # a builtin without a signature: its own call will say
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    named = {n for n, p in parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    for key in given:
        if key not in named and not takes_any:
            takes = ", ".join(sorted(named - set(supplied))) or "no arguments"
            raise ValueError(f"{section}.{key}: {name} takes no argument '{key}' (it takes {takes})")
    for arg, parameter in parameters.items():
        required = parameter.default is inspect.Parameter.empty and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
        if required and arg not in given and arg not in supplied:
            raise ValueError(f"{section}.{arg}: {name} needs the argument '{arg}'; set {section}.{arg}")


def call(target: Callable, key: str, *args, **kwargs) -> Any:
    """``target(*args, **kwargs)``, its exception turned into a one-line ``UserError`` naming the key."""
    try:
        return target(*args, **kwargs)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"{key}: {describe(target)} raised {type(exc).__name__}: {first_line(exc)}") from None


def describe(target: Callable) -> str:
    return f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', repr(target))}"
