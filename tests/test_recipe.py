from pathlib import Path

import pytest

from reglab.errors import UserError
from reglab.recipe import apply_overrides, load_recipe

from .conftest import write_recipe


def test_defaults_and_overrides_reach_nested_keys(tmp_path):
    path = write_recipe(tmp_path, "model: {name: alexnet_like}\noptim: {lr: 0.1}\n")
    recipe = load_recipe(path, ["optim.lr=0.01", "model.dropout.rate=0.4", "loss.class_weights=[1, 2]", "data.classes=null"])
    assert recipe.optim.lr == 0.01
    assert recipe.model.dropout.rate == 0.4 and recipe.model.dropout.where == "head"
    assert recipe.loss.class_weights == [1.0, 2.0]
    assert recipe.model.name == "alexnet_like"


def test_dropout_number_is_shorthand_for_rate(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path, "model: {dropout: 0.3}\n"))
    assert recipe.model.dropout.rate == 0.3


def test_override_creates_missing_sections():
    assert apply_overrides({}, ["train.early_stopping.patience=3"]) == {"train": {"early_stopping": {"patience": 3}}}


@pytest.mark.parametrize(
    "text, overrides, expected",
    [
        ("optim: {lrr: 0.1}\n", [], "unknown key 'optim.lrr'; did you mean 'optim.lr'?"),
        ("", ["model.dropuot.rate=0.2"], "unknown key 'model.dropuot'; did you mean 'model.dropout'?"),
        ("optim: {lr: -0.1}\n", [], "optim.lr: Input should be greater than 0 (got -0.1)"),
        ("", ["model.dropout.rate=1.5"], "model.dropout.rate: Input should be less than 1 (got 1.5)"),
        ("train: {epochs: many}\n", [], "train.epochs: Input should be a valid integer"),
        ("model: {name: resnet19}\n", [], "model.name: unknown model 'resnet19'; did you mean 'resnet18'?"),
        ("train: {early_stopping: {monitor: val_macro_f}}\n", [], "did you mean 'val_macro_f1'?"),
        ("optim: {name: adam, nesterov: true}\n", [], "unknown key 'optim.nesterov' with optim.name=adam; valid keys:"),
        ("schedule: {name: step, patience: 3}\n", [], "unknown key 'schedule.patience' with schedule.name=step; valid keys: name, step_size, factor"),
        ("model: {name: linear, lrn: true}\n", [], "unknown key 'model.lrn' with model.name=linear; valid keys: input_norm, init, freeze, dropout, name"),
        ("loss: {name: bce}\n", ["loss.logit_adjustment=1"], "unknown key 'loss.logit_adjustment' with loss.name=bce"),
        ("loss: {name: focall}\n", [], "loss.name: unknown loss 'focall'; did you mean 'focal'?"),
        ("augment: {multicrop: {threshold: 40}}\n", [], "unknown key 'augment.multicrop.threshold'; it was renamed 'augment.multicrop.below'"),
        ("data: {source: image_folder}\n", [], "data.path is required for source 'image_folder'"),
    ],
)
def test_bad_recipes_name_the_key(tmp_path, text, overrides, expected):
    path = write_recipe(tmp_path, text)
    with pytest.raises(UserError) as caught:
        load_recipe(path, overrides)
    message = str(caught.value)
    assert message.startswith(str(path)) and expected in message
    assert "\n" not in message


def test_missing_file_and_invalid_yaml(tmp_path):
    with pytest.raises(UserError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")
    with pytest.raises(UserError, match=r"line \d+ is not valid YAML"):
        load_recipe(write_recipe(tmp_path, "data:\n  - [unclosed\n"))
    with pytest.raises(UserError, match="not of the form section.key=value"):
        load_recipe(None, ["lr0.1"])


def test_auto_mode_is_the_direction_in_which_each_epoch_metric_gets_better():
    from reglab.metrics import resolve_mode

    expected = {"train_loss": "min", "val_loss": "min", "train_accuracy": "max", "val_accuracy": "max",
                "val_macro_f1": "max", "val_micro_f1": "max", "val_macro_roc_auc": "max", "val_micro_roc_auc": "max",
                "gap_accuracy": "min",  # train − val accuracy grows as a model overfits
                "gap_loss": "max"}  # train − val loss falls below zero as a model overfits  # fmt: skip
    assert {metric: resolve_mode(metric, "auto") for metric in expected} == expected
    assert resolve_mode("gap_accuracy", "max") == "max"  # an explicit mode wins


def test_the_readme_block_of_defaults_matches_the_schema():
    import re
    from pathlib import Path

    import yaml

    from reglab.recipe import Recipe

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"## Recipes.*?```yaml\n(.*?)```", readme, re.S).group(1)
    documented, defaults = yaml.safe_load(block), Recipe().to_dict()

    def check(shown, actual, where):
        for key, value in shown.items():
            if isinstance(value, dict):
                check(value, actual[key], f"{where}{key}.")
            else:
                assert value == actual[key], f"README says {where}{key}: {value}, the default is {actual[key]}"

    check(documented, defaults, "")
    assert "eight sections" in readme and len([key for key in defaults if key not in ("name", "plugin_dirs", "imports")]) == 8


def test_a_recipe_saved_by_an_earlier_version_still_loads(tmp_path):
    """Earlier versions saved every key for every ``name`` and keys since renamed; reglab reads
    its own saved files in today's keys, while a user's recipe with such keys is refused."""
    saved = tmp_path / "recipe.yaml"
    saved.write_text("model: {name: resnet18, width: 0.25, lrn: false, stem: small}\n"
                     "loss: {name: bce, logit_adjustment: 0.0, alpha: 1.0, gamma: 2.0}\n"
                     "schedule: {name: onecycle, step_size: 10, patience: 3, warmup_fraction: 0.2}\n"
                     "augment: {gain_db: 3.0, multicrop: {threshold: 40}}\n"
                     "evaluate: {gain_db: 4.0, max_sources: 2}\n")  # fmt: skip
    recipe = load_recipe(saved, saved=True)
    assert recipe.model.width == 0.25 and recipe.schedule.warmup_fraction == 0.2
    assert recipe.augment.random_gain_db == 3.0 and recipe.augment.multicrop.below == 40
    assert recipe.evaluate.tuning_gain_db == 4.0 and recipe.evaluate.tuning_max_sources == 2
    with pytest.raises(UserError, match="unknown key 'model.lrn' with model.name=resnet18"):
        load_recipe(saved)


def test_a_recipe_on_a_base_recipe_lays_its_sections_over_the_base(tmp_path):
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "base.yaml").write_text(
        "model: {name: resnet18, width: 0.5, dropout: {rate: 0.3}}\noptim: {name: sgd, lr: 0.1, momentum: 0.9}\ntrain: {epochs: 7}\n"
    )
    (tmp_path / "study.yaml").write_text("base: common/base.yaml\nmodel: {width: 0.25}\noptim: {name: adam, lr: 0.001}\n")
    recipe = load_recipe(tmp_path / "study.yaml")
    assert (recipe.model.name, recipe.model.width, recipe.model.dropout.rate) == ("resnet18", 0.25, 0.3)  # merged key by key
    assert (recipe.optim.name, recipe.optim.lr) == ("adam", 0.001)  # another name: the section is replaced whole
    assert recipe.train.epochs == 7


def test_a_base_that_leads_back_to_itself_is_refused_naming_the_file(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(UserError, match=r"b.yaml: base: a.yaml leads back to itself"):
        load_recipe(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: [1]\n")
    with pytest.raises(UserError, match=r"c.yaml: base: must be the path of a recipe file"):
        load_recipe(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("base: missing.yaml\n")
    with pytest.raises(UserError, match=r"d.yaml: base: missing.yaml is not a recipe file"):
        load_recipe(tmp_path / "d.yaml")


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_recipe_loads(path):
    import yaml

    from reglab.recipe import load_study_recipe
    from reglab.experiments.search_space import load_sweep_recipe

    tree = yaml.safe_load(path.read_text())
    if "study" in tree:
        _, arms = load_study_recipe(path)
        assert arms
    elif "search" in tree:
        load_sweep_recipe(path)
    else:
        load_recipe(path)


def test_recipes_saved_with_train_parallel_seeds_still_load(tmp_path):
    """Saved before the stack size became the study's setting: a run's recipe.yaml drops it, a
    study's study.yaml takes it to study.parallel_seeds."""
    from reglab.recipe import load_study_recipe

    run = write_recipe(tmp_path, "data: {source: digits}\ntrain: {epochs: 2, parallel_seeds: 1}\n", "run.yaml")
    assert load_recipe(run, saved=True).train.epochs == 2
    study = write_recipe(tmp_path, "data: {source: digits}\ntrain: {parallel_seeds: 4}\nstudy: {arms: {a: {}}, baseline: a}\n", "study.yaml")
    assert load_study_recipe(study, saved=True)[0].study.parallel_seeds == 4
    assert load_recipe(run).train.epochs == 2  # a run's recipe.yaml from before the move still trains
    stacked = write_recipe(tmp_path, "data: {source: digits}\ntrain: {parallel_seeds: 4}\n", "stacked.yaml")
    with pytest.raises(UserError, match="it moved to 'study.parallel_seeds'"):
        load_recipe(stacked)  # stacking in a run's recipe: the key names its new place
    moved = write_recipe(tmp_path, "data: {source: digits}\ntrain: {parallel_seeds: 3}\nstudy: {arms: {a: {}}, baseline: a}\n", "s2.yaml")
    assert load_study_recipe(moved)[0].study.parallel_seeds == 3  # a study of the user's: taken to its place
