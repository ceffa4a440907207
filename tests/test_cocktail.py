"""``search.cocktail: all``: every regularizer that applies to the base recipe's model and data, each
switched on and off by the sampler, every sampled configuration a valid recipe; a sweep over it
runs and its ranking says what each configuration switched on."""

import optuna
import yaml

from reglab.experiments.search_space import load_sweep_recipe
from reglab.recipe import with_overrides

from .conftest import run_cli, write_recipe

SEARCH = "search: {metric: val_accuracy, sampler: random, trials: 3, cocktail: all}\n"
DIGITS = "name: {name}\ndata: {{source: digits}}\nmodel: {model}\noptim: {{name: adam, lr: 0.003}}\ntrain: {{epochs: 1, batch_size: 64}}\n" + SEARCH.replace("{", "{{").replace("}", "}}")
AUDIO = ("name: audio\ndata: {source: irmas, path: unused, sample_rate: 16000, clip_seconds: 1.0}\nmodel: {name: instrunet}\n"
         "loss: {name: bce}\ntrain: {epochs: 4}\n" + SEARCH)  # fmt: skip
EVERY_IMAGE_MEMBER = {"optim.weight_decay", "optim.l2", "optim.l1", "optim.clip_grad_norm", "optim.max_norm", "optim.sam",
                      "model.dropout", "loss.label_smoothing", "augment.erasing"}  # fmt: skip


def test_all_switches_every_regularizer_that_applies_and_every_configuration_is_a_valid_recipe(tmp_path):
    path = write_recipe(tmp_path, DIGITS.format(name="resnet", model="{name: resnet18, width: 0.125}"))
    sweep, base, space = load_sweep_recipe(path)
    assert set(sweep.search.cocktail) == EVERY_IMAGE_MEMBER | {"model.drop_path", "model.dropblock"}  # ResNet-18's own two
    assert set(sweep.search.variants) == {"weight averaging", "mixing", "augmentation policy"}
    assert sweep.to_dict()["search"]["cocktail"] != "all"  # written out: a saved sweep keeps the cocktail it ran with

    proposer, seen = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)), {}
    for _ in range(40):
        trial = proposer.ask()
        point = space.suggest(trial)
        recipe = with_overrides(base, space.overrides(point), "test")  # raises on a configuration the schema refuses
        proposer.tell(trial, 0.0)
        for name, value in space.values(point).items():
            seen.setdefault(name, set()).add(value)
        assert not (recipe.train.swa and recipe.train.ema_decay)  # the two weight averages never together
        assert not (recipe.augment.randaugment and recipe.augment.trivialaugment)
    assert all(seen[f"{key}?"] == {False, True} for key in sweep.search.cocktail)  # each member both on and off
    assert seen["weight averaging"] == {"none", "ema", "swa"} and seen["mixing"] == {"none", "mixup", "cutmix"}


def test_all_leaves_out_what_a_model_or_the_data_does_not_take(tmp_path):
    linear, _, _ = load_sweep_recipe(write_recipe(tmp_path, DIGITS.format(name="linear", model="{name: linear}"), "linear.yaml"))
    assert "model.drop_path" not in linear.search.cocktail and "model.dropblock" not in linear.search.cocktail
    audio, _, _ = load_sweep_recipe(write_recipe(tmp_path, AUDIO, "audio.yaml"))
    assert "augment.specaugment" in audio.search.cocktail and "augment.erasing" not in audio.search.cocktail
    assert "augmentation policy" not in audio.search.variants  # RandAugment and TrivialAugment act on images


def test_a_sweep_over_the_whole_cocktail_runs_and_its_ranking_says_what_is_on(tmp_path, capsys):
    path = write_recipe(tmp_path, DIGITS.format(name="cocktail", model="{name: linear}"))
    assert run_cli(capsys, "sweep", path, "--out", tmp_path / "s", "--workers", "0")[0] == 0
    assert run_cli(capsys, "worker", tmp_path / "s", "--quiet")[0] == 0  # a worker in this process
    code, out, err = run_cli(capsys, "sweep", "show", tmp_path / "s")
    assert code == 0, err
    assert "configuration (what is on)" in out and "3/3 configurations run" in out
    header = (tmp_path / "s" / "best.yaml").read_text().splitlines()[1]
    assert header.startswith("# Searched values: ") and "?" not in header  # the members on, not every switch
    saved = yaml.safe_load((tmp_path / "s" / "sweep.yaml").read_text())
    assert "optim.sam" in saved["search"]["cocktail"]
