"""Reading recipes: YAML files (a ``base:`` recipe laid under one), dotted command-line overrides
(``train.epochs=3``, the value read as YAML; ``key=null`` restores the default), validation into
the schema with one-line errors, recipes reglab saved upgraded to today's keys."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import UserError
from ..plugins import REFERENCE, add_search_dirs, import_module
from .errors import MOVED, RENAMED, describe, tags_of
from .sections import tag_key
from .plans import StudyRecipe
from .schema import Recipe

# loading


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr=0.01"`` -> ``(["optim", "lr"], 0.01)``; the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise UserError(f"override '{text}' is not of the form section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def set_dotted(tree: dict, keys: list[str], value: Any) -> None:
    """``tree[k1][k2]… = value``, creating sections on the way; ``None`` restores the default
    (which turns optional blocks off)."""
    node = tree
    for depth, key in enumerate(keys[:-1]):
        child = node.get(key)
        if not isinstance(child, dict):
            if child is not None:
                raise UserError(f"override of '{'.'.join(keys)}': '{'.'.join(keys[: depth + 1])}' is not a section")
            child = node[key] = {}
        node = child
    if value is None:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = value


def apply_overrides(tree: dict, overrides: list[str]) -> dict:
    for text in overrides:
        set_dotted(tree, *parse_override(text))
    return tree


def validate(tree: Any, origin: str, schema: type[BaseModel] = Recipe) -> BaseModel:
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise UserError(f"{origin}: a recipe must be a mapping of sections, got {type(tree).__name__}")
    dirs = tree.get("plugin_dirs", [])
    add_search_dirs([folder for folder in dirs if isinstance(folder, str)] if isinstance(dirs, list) else [])
    modules = tree.get("imports", [])
    for module in modules if isinstance(modules, list) else []:
        if isinstance(module, str):
            try:
                import_module(module)
            except ValueError as exc:
                raise UserError(f"{origin}: {exc}") from None
    try:
        return schema.model_validate(tree)
    except ValidationError as exc:
        raise UserError(f"{origin}: {describe(exc.errors(), schema)}") from None


def read_yaml(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: recipe file not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start}); save the recipe as UTF-8") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}:{where} is not valid YAML ({getattr(exc, 'problem', exc)})") from None


def read_recipe_tree(path: str | Path, _within: tuple = ()) -> Any:
    """A recipe file's tree; one that names ``base: other.yaml`` (relative to itself) is that
    recipe with this file's keys laid over it, section by section (a section that changes its
    ``name`` replaces the base's whole)."""
    tree = with_own_folder(read_yaml(path), path)
    if not isinstance(tree, dict) or "base" not in tree:
        return tree
    base = tree.pop("base")
    if not isinstance(base, str):
        raise UserError(f"{path}: base: must be the path of a recipe file, relative to this one")
    base_path = Path(path).parent / base
    if not base_path.is_file():
        raise UserError(f"{path}: base: {base} is not a recipe file ({base_path} not found)")
    if base_path.resolve() in _within:
        raise UserError(f"{path}: base: {base} leads back to itself")
    under = read_recipe_tree(base_path, _within + (Path(path).resolve(),))
    if not isinstance(under, dict):
        raise UserError(f"{base_path}: a recipe must be a mapping of sections")
    return laid_over(under, tree)


def names_user_code(tree: Any) -> bool:
    """Whether some value of the tree is a reference ``package.module:attribute``."""
    if isinstance(tree, dict):
        return any(names_user_code(value) for value in tree.values())
    if isinstance(tree, list):
        return any(names_user_code(value) for value in tree)
    return isinstance(tree, str) and bool(REFERENCE.match(tree))


def with_own_folder(tree: Any, path: str | Path) -> Any:
    """A recipe that names user code and no ``plugin_dirs`` searches its own folder for it (kept in
    ``plugin_dirs``, so a run's saved recipe finds the module again wherever it is read)."""
    if isinstance(tree, dict) and "plugin_dirs" not in tree and (names_user_code(tree) or tree.get("imports")):
        tree["plugin_dirs"] = [str(Path(path).resolve().parent)]
    return tree


def laid_over(under: dict, over: dict) -> dict:
    merged = copy.deepcopy(under)
    for key, value in over.items():
        below = merged.get(key)
        same_kind = isinstance(value, dict) and isinstance(below, dict) and value.get("name", below.get("name")) == below.get("name")
        merged[key] = laid_over(below, value) if same_kind else copy.deepcopy(value)
    return merged


def upgrade(tree: dict) -> dict:
    """A recipe that reglab saved (a run's recipe.yaml, a study's study.yaml), in today's keys:
    renamed and moved keys put in their places, and the keys that do not apply to a section's ``name`` dropped (earlier
    versions saved every key for every name). Recipes a user writes are never upgraded: a key
    that does not apply there is an error."""
    tree = copy.deepcopy(tree)
    for old, new in {**RENAMED, **MOVED}.items():
        *parents, leaf = old.split(".")
        node = tree
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node:
            value = node.pop(leaf)
            if old in RENAMED or isinstance(tree.get(new.split(".")[0]), dict):
                set_dotted(tree, new.split("."), value)
    for key, field in Recipe.model_fields.items():
        members, value = tags_of(field.annotation), tree.get(key)
        if members and isinstance(value, dict):
            picked_by = tag_key(members)
            schema = members.get(value.get(picked_by, getattr(field.default, picked_by)))
            if schema is not None and schema.model_config.get("extra") != "allow":
                tree[key] = {k: v for k, v in value.items() if k in schema.model_fields}
    return tree


def settle_moved(tree: dict) -> dict:
    """A user's recipe with a key that moved (``MOVED``): the default value is dropped (every run
    saved before the move wrote it, and its recipe.yaml still trains), a study's setting taken to
    its new place; any other value stays, for validation to name the new place."""
    for old, new in MOVED.items():
        section, leaf = old.split(".")
        node = tree.get(section)
        if not isinstance(node, dict) or leaf not in node:
            continue
        if node[leaf] == 1:
            node.pop(leaf)
        elif isinstance(tree.get(new.split(".")[0]), dict):
            set_dotted(tree, new.split("."), node.pop(leaf))
    return tree


def load_recipe(path: str | Path | None, overrides: list[str] = (), saved: bool = False) -> Recipe:
    """Read a recipe file (or the defaults when ``path`` is None) and apply the overrides;
    ``saved``: a file reglab wrote, upgraded to today's keys first."""
    tree = read_recipe_tree(path) if path is not None else {}
    if tree is not None and not isinstance(tree, dict):
        raise UserError(f"{path}: a recipe must be a mapping of sections")
    tree = settle_moved(apply_overrides(upgrade(tree) if saved and tree else tree or {}, list(overrides)))
    return validate(tree, str(path) if path is not None else "recipe")


def load_base_recipe(path: str | Path) -> Recipe:
    """The recipe a file trains, whether a run's, a study's or a sweep's: its plan section
    (``study`` or ``search``) left aside."""
    tree = read_recipe_tree(path)
    if not isinstance(tree, dict):
        raise UserError(f"{path}: a recipe must be a mapping of sections")
    return validate({key: value for key, value in tree.items() if key not in ("study", "search")}, str(path))


def load_plan(path: str | Path, overrides: list[str], saved: bool, schema: type[Recipe], key: str) -> tuple[Recipe, dict]:
    """A recipe with a plan section (``study`` or ``search``) and the base recipe's tree without
    it. Overrides apply to the base recipe; ``saved`` as for ``load_recipe``."""
    tree = read_recipe_tree(path)
    if not isinstance(tree, dict):
        raise UserError(f"{path}: a {key} recipe must be a mapping of sections")
    tree = settle_moved(apply_overrides(upgrade(tree) if saved else tree, list(overrides)))
    plan = validate(tree, str(path), schema)
    return plan, {name: value for name, value in tree.items() if name != key}


def with_overrides(base: dict, overrides: dict[str, Any], origin: str, saved: bool = False) -> Recipe:
    """The base recipe's tree with dotted ``key: value`` overrides (``None``: the default) set,
    validated. ``saved``: the base is a resolved recipe that reglab wrote, holding every key of
    each section, so the keys that do not apply once an override changes a section's ``name``
    are dropped (a user's own recipe never has them dropped: they are errors there)."""
    tree = copy.deepcopy(base)
    for key, value in overrides.items():
        set_dotted(tree, key.split("."), copy.deepcopy(value))
    return validate(upgrade(tree) if saved else tree, origin)


def load_study_recipe(path: str | Path, overrides: list[str] = (), saved: bool = False) -> tuple[StudyRecipe, dict[str, Recipe]]:
    """A study file: a recipe plus a ``study`` section. Returns the study and each arm's recipe
    (before its seed is set)."""
    study, base = load_plan(path, overrides, saved, StudyRecipe, "study")
    if study.study.split_follows_seed is None:  # saved by a version whose seeds all shared split 0: kept so
        follows = not saved and not sets_split_seed(base.get("data"), study.study.arms.values())
        study = study.model_copy(update={"study": study.study.model_copy(update={"split_follows_seed": follows})})
    arms = {arm: with_overrides(base, arm_overrides, f"{path}: study.arms.{arm}", saved) for arm, arm_overrides in study.study.arms.items()}
    return study, arms


def sets_split_seed(data: Any, arms) -> bool:
    """Whether a study's own recipe pins ``data.split_seed``, in its base or in an arm."""
    def names(section: Any) -> bool:
        return isinstance(section, dict) and "split_seed" in section

    return names(data) or any(key == "data.split_seed" or (key == "data" and names(value)) for arm in arms for key, value in arm.items())


def save_recipe(recipe: Recipe, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False), encoding="utf-8")
    tmp.replace(path)
