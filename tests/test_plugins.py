"""The user's own model, data source, loss and batch operation — named by import path beside the
recipe, or registered by name from Python — go through everything reglab's own parts do: train,
evaluate, predict, report, resume after a kill, a study with two workers. Bad user code is a
one-line error naming the recipe key."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from .conftest import run_cli, write_recipe

PARTS = '''
import os, signal
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def build(input_shape, n_classes, hidden=16):
    c, h, w = input_shape
    return nn.Sequential(nn.Conv2d(c, hidden, 3, padding=1), nn.BatchNorm2d(hidden), nn.ReLU(),
                         nn.Flatten(), nn.Linear(hidden * h * w, n_classes))


def load(split, n=240, seed=0):
    """Three classes, each a bright row of an 8x8 noise image."""
    rng = np.random.default_rng(seed + (split == "test"))
    y = np.arange(n) % 3
    x = rng.normal(0, 1, (n, 1, 8, 8)).astype(np.float32)
    x[np.arange(n), 0, 2 * y + 1, :] += 2.5
    return x, y, ["row1", "row3", "row5"]


class SoftTargetLoss(nn.Module):
    def __init__(self, temperature=1.0):
        super().__init__()
        self.temperature = temperature

    def forward(self, logits, targets):
        return -(targets * F.log_softmax(logits / self.temperature, dim=1)).sum(1).mean()


class Noise:
    calls = 0

    def __init__(self, std=0.1):
        self.std = std

    def __call__(self, x, targets, is_extra):
        Noise.calls += 1
        if Noise.calls == int(os.environ.get("PARTS_KILL_AT", "0")):
            os.kill(os.getpid(), signal.SIGKILL)
        return x + self.std * torch.randn_like(x), targets
'''

REGISTERED = '''
import reglab
import parts

reglab.register_model("tiny_net", parts.build)
reglab.register_data("bright_rows", parts.load)
reglab.register_loss("soft_target", parts.SoftTargetLoss)
reglab.register_batch_op("noise", parts.Noise)
'''

RECIPES = {
    "reference": """
data: {source: "parts:load", n: 240}
model: {name: "parts:build", hidden: 16}
loss: {name: "parts:SoftTargetLoss", temperature: 1.0}
augment: {ops: [{name: "parts:Noise", std: 0.1}]}
""",
    "registered": """
imports: [registered]
data: {source: bright_rows, n: 240}
model: {name: tiny_net, hidden: 16}
loss: {name: soft_target, temperature: 1.0}
augment: {ops: [{name: noise, std: 0.1}]}
""",
}
TRAINING = "optim: {name: adam, lr: 0.02}\ntrain: {epochs: 4, batch_size: 32, seed: 3}\n"


def cli(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "reglab.cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd)  # fmt: skip


def history(run):
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in (run / "history.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def user_code(tmp_path_factory):
    """A folder with the user's parts, a module registering them, and a recipe per way of naming
    them; each recipe trained once, from another folder than its own."""
    folder = tmp_path_factory.mktemp("mine")
    (folder / "parts.py").write_text(PARTS)
    (folder / "registered.py").write_text(REGISTERED)
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    runs = {}
    for way, body in RECIPES.items():
        recipe = write_recipe(folder, body + TRAINING, f"{way}.yaml")
        done = cli("train", recipe, "--out", elsewhere / way, "--quiet", cwd=elsewhere)
        assert done.returncode == 0, done.stderr
        runs[way] = (recipe, elsewhere / way)
    return folder, runs


@pytest.mark.slow
@pytest.mark.parametrize("way", list(RECIPES))
def test_users_parts_train_evaluate_predict_and_report(user_code, way, tmp_path, capsys):
    import reglab

    folder, runs = user_code
    recipe, run = runs[way]
    assert json.loads((run / "metrics.json").read_text())["accuracy"] > 0.8  # the rows were learnt
    saved = (run / "recipe.yaml").read_text()
    assert ("parts:build" in saved and str(folder) in saved) if way == "reference" else "tiny_net" in saved

    code, _, err = run_cli(capsys, "evaluate", run, "--data", "test", "--json", tmp_path / "eval.json")  # the loader's test split
    assert code == 0, err
    scores = json.loads((tmp_path / "eval.json").read_text())
    assert scores["samples"] == 240 and scores["accuracy"] > 0.8 and (run / "eval_test.json").is_file()

    code, _, err = run_cli(capsys, "report", run)
    assert code == 0, err
    assert "Evaluated on test" in (run / "report.md").read_text()

    sys.path.insert(0, str(folder))
    try:
        import parts

        x, y, _ = parts.load("test")
    finally:
        sys.path.remove(str(folder))
    code, _, err = run_cli(capsys, "predict", run, "--data", "test", "--out", tmp_path / "predictions.csv", "--probabilities")
    assert code == 0, err
    rows = (tmp_path / "predictions.csv").read_text().splitlines()
    assert rows[0].startswith("id,label,p_row1") and len(rows) == 241
    probs = reglab.load_run(run).predict(x)
    assert probs.shape == (240, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == y).mean() == pytest.approx(scores["accuracy"])


@pytest.mark.slow
@pytest.mark.parametrize("way", list(RECIPES))
def test_a_run_of_users_parts_killed_mid_training_resumes_to_the_uninterrupted_run(user_code, way, tmp_path, capsys):
    _, runs = user_code
    recipe, whole = runs[way]
    killed = cli("train", recipe, "--out", tmp_path / "run", "--quiet", env={"PARTS_KILL_AT": "16"})  # in epoch 3 (6 steps an epoch)
    assert killed.returncode == -9, killed.stderr
    assert 1 <= len(history(tmp_path / "run")) < 4
    code, _, err = run_cli(capsys, "train", recipe, "--out", tmp_path / "run", "--resume", "--quiet")
    assert code == 0, err
    assert history(tmp_path / "run") == history(whole)


@pytest.mark.slow
def test_a_study_of_the_users_parts_by_path_and_by_name_with_two_workers(user_code, tmp_path):
    """One study through ``reglab.study``: one arm names the parts by import path, the other by
    their registered names; each arm also varies the user's own arguments."""
    import reglab

    folder, _ = user_code
    named = "{model.name: tiny_net, model.hidden: 8, data.source: bright_rows, loss.name: soft_target, augment.ops: [{name: noise, std: 0.2}]}"
    study = (RECIPES["reference"] + "imports: [registered]\noptim: {name: adam, lr: 0.02}\ntrain: {epochs: 2, batch_size: 32}\n"
             f"study: {{arms: {{by_path: {{model.hidden: 12}}, by_name: {named}}}, baseline: by_path, seeds: [0, 1], metric: val_accuracy}}\n")  # fmt: skip
    table = reglab.study(write_recipe(folder, study, "study.yaml"), tmp_path / "study", workers=2)
    assert table["finished"] == 4 and {arm["arm"] for arm in table["arms"]} == {"by_path", "by_name"}
    assert {(row["arm"], row["seed"]) for row in table["runs"]} == {("by_path", 0), ("by_path", 1), ("by_name", 0), ("by_name", 1)}
    saved = yaml.safe_load((tmp_path / "study" / "runs" / "by_name-seed0" / "recipe.yaml").read_text())
    assert saved["model"] == {"name": "tiny_net", "input_norm": "dataset", "init": None, "freeze": [], "channels_last": True, "hidden": 8}


def test_the_python_api_trains_a_recipe_given_as_a_dict_with_overrides(tmp_path):
    import reglab

    recipe = {"data": {"source": "digits", "image_size": 8, "classes": 3}, "model": {"name": "linear"}, "train": {"epochs": 1}}
    result = reglab.train(recipe, tmp_path / "run", optim={"lr": 0.05}, **{"train.seed": 2})
    assert result.status == "completed" and (tmp_path / "run" / "report.html").is_file()
    saved = reglab.load(tmp_path / "run" / "recipe.yaml")
    assert saved.optim.lr == 0.05 and saved.train.seed == 2
    text = "data: {source: digits, image_size: 8, classes: 3}\nmodel: {name: linear}\ntrain: {epochs: 1}\n"
    assert reglab.load(text).data.classes == 3


def test_a_section_given_whole_is_merged_under_its_name_and_replaced_when_the_name_changes():
    """``reglab train R 'schedule={name: cosine}'`` (the README's way to switch a section) and
    ``reglab.train(R, optim={"lr": 0.05})`` (a value changed, the rest kept) both hold."""
    import reglab

    recipe = "schedule: {name: plateau, monitor: val_loss, patience: 3}\noptim: {name: sgd, lr: 0.1, momentum: 0.5}\n"
    loaded = reglab.load(recipe, schedule={"name": "cosine"}, optim={"lr": 0.05}, **{"train.early_stopping": {"patience": 2}})
    assert loaded.schedule.name == "cosine" and loaded.optim.lr == 0.05 and loaded.optim.momentum == 0.5
    assert loaded.train.early_stopping.patience == 2


def test_every_registry_holds_exactly_the_names_the_recipe_schema_knows():
    import reglab  # noqa: F401  (registers the built-ins)
    from reglab.plugins import BATCH_OPS, DATA_SOURCES, LOSSES, MODELS
    from reglab.recipe import AugmentConfig, Recipe
    from reglab.recipe.errors import tags_of

    def schema_names(key):
        return sorted(tag for tag in tags_of(Recipe.model_fields[key].annotation) if tag != "plugin")

    assert sorted(MODELS.builtins()) == schema_names("model")
    assert sorted(DATA_SOURCES.builtins()) == schema_names("data")
    assert sorted(LOSSES.builtins()) == schema_names("loss")
    assert sorted(BATCH_OPS.builtins()) == sorted(key for key in AugmentConfig.model_fields if key != "ops")
    with pytest.raises(ValueError, match="registered already"):
        reglab.register_model("resnet18", lambda input_shape, n_classes: None)


BAD = {  # case: (the module's source, the recipe, what the one line must say)
    "module not found": ("", "model: {name: 'no_such_module_x:build'}", "model.name: no module 'no_such_module_x'"),
    "attribute missing": ("def build(input_shape, n_classes): pass\n", "model: {name: '{mod}:bulid'}", "has no attribute 'bulid'"),
    "not callable": ("build = 3\n", "model: {name: '{mod}:build'}", "is not callable"),
    "unknown argument": ("def build(input_shape, n_classes, depth=2): pass\n", "model: {name: '{mod}:build', depht: 3}",
                         "model.depht: {mod}:build takes no argument 'depht' (it takes depth)"),
    "missing argument": ("def build(input_shape, n_classes, depth): pass\n", "model: {name: '{mod}:build'}", "model.depth:"),
    "module raises on import": ("raise RuntimeError('broken setup')\n", "model: {name: '{mod}:build'}", "RuntimeError: broken setup"),
    "callable raises": ("def build(input_shape, n_classes):\n    raise ValueError('width must be even')\n",
                        "model: {name: '{mod}:build'}", "model.name: {mod}:build raised ValueError: width must be even"),
    "wrong output shape": ("from torch import nn\ndef build(input_shape, n_classes):\n    return nn.Flatten()\n",
                           "model: {name: '{mod}:build'}", "not [batch, n_classes]"),
    "lengths differ": ("import numpy as np\ndef load(split):\n    return np.zeros((10, 1, 4, 4), np.float32), np.zeros(9, int), ['a', 'b']\n",
                       "data: {source: '{mod}:load'}", "x has 10 samples but y has 9"),
    "label out of range": ("import numpy as np\ndef load(split):\n    return np.zeros((10, 1, 4, 4), np.float32), np.arange(10) % 3, ['a', 'b']\n",
                           "data: {source: '{mod}:load'}", "y holds class 2, outside 0..1"),
    "unsupported dtype": ("import numpy as np\ndef load(split):\n    return np.zeros((10, 1, 4, 4), np.int32), np.arange(10) % 2, ['a', 'b']\n",
                          "data: {source: '{mod}:load'}", "x has dtype torch.int32"),
    "loss argument": ("class L:\n    def __init__(self, gamma=2.0): pass\n", "loss: {name: '{mod}:L', gama: 1}", "loss.gama:"),
    "batch op argument": ("class Op:\n    def __init__(self, p=0.5): pass\n", "augment: {ops: [{name: '{mod}:Op', q: 1}]}", "augment.ops.q:"),
    "registered name missing": ("", "model: {name: wide_resnet_x}", "model.name: unknown model 'wide_resnet_x'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_user_code_is_one_line_naming_the_key_exit_2_and_nothing_written(case, tmp_path, capsys):
    source, recipe, expected = BAD[case]
    module = "user_" + "".join(c if c.isalnum() else "_" for c in case)
    (tmp_path / f"{module}.py").write_text(source)
    path = write_recipe(tmp_path, recipe.replace("{mod}", module) + "\ndata: {source: digits, image_size: 8}\n"
                        if not recipe.startswith("data") else recipe.replace("{mod}", module) + "\nmodel: {name: linear}\n")  # fmt: skip
    code, out, err = run_cli(capsys, "train", path, "--out", tmp_path / "run", "--quiet", "train.epochs=1")
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert expected.replace("{mod}", module) in err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_the_plugins_example_runs_as_written_on_a_data_file_it_writes(tmp_path, capsys):
    from .conftest import ROOT

    example = ROOT / "examples" / "plugins"
    wrote = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(example)!r}); import shapes; "
                            f"shapes.write({str(tmp_path / 'shapes.npz')!r}, n_train=120, n_test=40)"], capture_output=True, text=True)  # fmt: skip
    assert wrote.returncode == 0, wrote.stderr
    code, _, err = run_cli(capsys, "study", example / "study.yaml", "train.epochs=1", "study.seeds=[0]", f"data.file={tmp_path / 'shapes.npz'}",
                           "--out", tmp_path / "study", "--workers", "0", "--quiet")  # fmt: skip
    assert code == 0, err
    from reglab.experiments.study import Study

    Study(tmp_path / "study").work()  # this process as its worker
    table = Study(tmp_path / "study").table_data()
    assert table["finished"] == 3 and {arm["arm"] for arm in table["arms"]} == {"none", "dropout", "augmentation"}
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "study" / "runs" / "dropout-seed0", "--data", "test", "--json", tmp_path / "eval.json")
    assert code == 0, err
    assert json.loads((tmp_path / "eval.json").read_text())["samples"] == 40


def test_data_inspect_reads_the_data_a_recipe_names_through_the_users_loader(tmp_path, capsys):
    (tmp_path / "rows.py").write_text("import numpy as np\ndef load(split, n=30):\n"
                                      "    return np.zeros((n, 1, 4, 4), np.uint8), np.arange(n) % 3, ['a', 'b', 'c']\n")  # fmt: skip
    recipe = write_recipe(tmp_path, "data: {source: 'rows:load', n: 30}\nmodel: {name: linear}\n")
    code, out, err = run_cli(capsys, "data", "inspect", recipe, "--json", tmp_path / "data.json")
    assert code == 0, err
    summary = json.loads((tmp_path / "data.json").read_text())
    assert summary["counts"] == {"a": 10, "b": 10, "c": 10} and summary["image_sizes"] == {"4x4": 30}


@pytest.mark.slow
def test_a_sweep_searches_the_users_own_argument(user_code, tmp_path, capsys):
    folder, _ = user_code
    search = "search:\n  metric: val_accuracy\n  sampler: grid\n  space:\n    model.hidden: {choice: [4, 12]}\n"
    recipe = write_recipe(folder, RECIPES["reference"] + "optim: {name: adam, lr: 0.02}\ntrain: {epochs: 1, batch_size: 32}\n" + search,
                          "sweep_reference.yaml")  # fmt: skip
    code, _, err = run_cli(capsys, "sweep", recipe, "--out", tmp_path / "sweep", "--workers", "0", "--quiet")
    assert code == 0, err
    from reglab.experiments.sweep import Sweep

    Sweep(tmp_path / "sweep").work()  # this process as its worker
    code, _, err = run_cli(capsys, "sweep", "show", tmp_path / "sweep", "--json", tmp_path / "sweep.json")
    assert code == 0, err
    ranking = json.loads((tmp_path / "sweep.json").read_text())["runs"]
    assert sorted(run["params"]["model.hidden"] for run in ranking) == [4, 12]


def test_a_study_refuses_a_name_registered_only_in_the_calling_script(tmp_path):
    """A study's workers are other processes: a name registered in ``__main__`` would be unknown
    there, so ``reglab.study`` says so before anything runs."""
    import reglab
    from reglab.errors import UserError

    def build(input_shape, n_classes):
        return None

    build.__module__ = "__main__"  # as in a notebook
    reglab.register_model("notebook_net_x", build)
    recipe = {"model": {"name": "notebook_net_x"}, "study": {"arms": {"a": {}}, "baseline": "a", "seeds": [0]}}
    with pytest.raises(UserError, match="model 'notebook_net_x' is registered in this script or notebook only"):
        reglab.study(recipe, tmp_path / "s", workers=1)
    assert not (tmp_path / "s").exists()
