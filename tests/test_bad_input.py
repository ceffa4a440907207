"""Bad input as a user meets it, through the command line: a corrupt or hostile file, a typo in a
recipe, a wrong value, a missing path, a damaged run or study directory. Every case must end with
exit code 2 and one line on stderr that names the file or key, no traceback, and nothing written
or overwritten anywhere."""

import io
import os
import pickle
import shutil

import numpy as np
import pytest
import torch

from reglab.cli import main

from .conftest import write_image_folder, write_png, write_recipe


class Hostile:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Shared, read-only inputs: an image folder, a test folder, a CIFAR tree and a trained run."""
    root = tmp_path_factory.mktemp("world")
    write_image_folder(root / "images", {"red": 6, "green": 6, "blue": 6})
    rng = np.random.default_rng(1)
    for i in range(3):
        write_png(root / "test" / f"{i:04d}.png", rng, shade=i)
    (root / "labels.csv").write_text("id,label\n0000,red\n0001,green\n0002,blue\n")
    (root / "recipe.yaml").write_text(f"data: {{source: image_folder, path: {root / 'images'}, image_size: 12}}\n"
                                      "model: {name: linear}\ntrain: {epochs: 1, batch_size: 8}\n")  # fmt: skip
    assert main(["train", str(root / "recipe.yaml"), "--out", str(root / "run"), "--quiet"]) == 0
    return root


def recipe(tmp, body):
    return write_recipe(tmp, body, "bad.yaml")


def train(tmp, body, *overrides):
    return ["train", recipe(tmp, body), *overrides, "--out", tmp / "out", "--quiet"]


def images(world, tmp, damage):
    """A copy of the image folder with ``damage(folder)`` applied."""
    folder = tmp / "images"
    shutil.copytree(world / "images", folder)
    damage(folder)
    return folder


def on_images(folder, extra=""):
    return f"data: {{source: image_folder, path: {folder}, image_size: 12}}\nmodel: {{name: linear}}\ntrain: {{epochs: 1}}\n{extra}"


def damaged_run(world, tmp, name, content):
    run = tmp / "run"
    shutil.copytree(world / "run", run)
    target = run / name
    if isinstance(content, Hostile):
        with target.open("wb") as handle:
            pickle.dump(content, handle)
    else:
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    return run


def saved(state) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def truncate(path):
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def cifar(tmp, batch):
    root = tmp / "cifar"
    root.mkdir()
    with (root / "batches.meta").open("wb") as handle:
        pickle.dump({b"label_names": [b"a", b"b"]}, handle)
    with (root / "data_batch_1").open("wb") as handle:
        handle.write(batch) if isinstance(batch, bytes) else pickle.dump(batch, handle)
    return root


def study_dir(world, tmp, content):
    directory = tmp / "study"
    directory.mkdir()
    shutil.copy(world / "recipe.yaml", directory / "study.yaml")
    (directory / "study.json").write_text(content)
    return directory


MARKER = "hostile-marker"
LINEAR = "data: {source: digits}\nmodel: {name: linear}\ntrain: {epochs: 1}\n"

# (case, argv builder(world, tmp), text the one line must contain)
CASES = {
    # recipes
    "recipe missing": (lambda w, t: ["train", t / "nope.yaml", "--out", t / "out"], "nope.yaml: recipe file not found"),
    "recipe is a folder": (lambda w, t: ["train", w / "images", "--out", t / "out"], "images: recipe file not found"),
    "recipe not UTF-8": (lambda w, t: train(t, b"data: {source: digits}\n# caf\xe9\n"), "bad.yaml: not UTF-8"),
    "recipe not YAML": (lambda w, t: train(t, "data: {source: [digits\n"), "bad.yaml: line"),
    "recipe a list": (lambda w, t: train(t, "- data\n- model\n"), "bad.yaml: a recipe must be a mapping"),
    "unknown key": (lambda w, t: train(t, LINEAR + "optim: {lrr: 0.1}\n"), "optim.lrr"),
    "unknown section": (lambda w, t: train(t, LINEAR + "optimizer: {lr: 0.1}\n"), "optimizer"),
    "negative lr": (lambda w, t: train(t, LINEAR, "optim.lr=-1"), "optim.lr: Input should be greater than 0"),
    "epochs not a number": (lambda w, t: train(t, LINEAR, "train.epochs=many"), "train.epochs"),
    "unknown model": (lambda w, t: train(t, LINEAR, "model.name=vgg"), "model.name: unknown model 'vgg'"),
    "override without =": (lambda w, t: train(t, LINEAR, "optim.lr"), "optim.lr"),
    "unknown monitor": (lambda w, t: train(t, LINEAR, "train.early_stopping.monitor=val_f1"), "train.early_stopping.monitor"),
    "mixture monitor, no mixtures": (lambda w, t: train(t, LINEAR, "train.early_stopping.monitor=val_mix_macro_f1"),
                                     "train.early_stopping.monitor: val_mix_macro_f1 scores validation mixtures"),
    "parallel seeds in train": (lambda w, t: train(t, LINEAR, "train.parallel_seeds=4"), "unknown key 'train.parallel_seeds'; it moved to 'study.parallel_seeds'"),
    "audio augmentation on images": (lambda w, t: train(t, LINEAR, "augment.reverb={p: 0.5}"), "augment.reverb: acts on log-mel features"),
    "logit adjustment with bce": (lambda w, t: train(t, LINEAR, "loss.name=bce", "evaluate.logit_adjustment=fit"), "evaluate.logit_adjustment"),
    "softmax loss, multi-label recipe": (lambda w, t: train(t, LINEAR, "loss.name=focal", "evaluate.threshold=tuned"), "loss.name: focal"),
    "memory that does not exist": (lambda w, t: train(t, LINEAR, "data.image_size=1000000"), "data.image_size"),
    "image too small for the model": (lambda w, t: train(t, LINEAR, "model.name=resnet18", "model.stem=standard"), "data.image_size: 8x8 inputs are too small"),
    # data
    "data path missing": (lambda w, t: train(t, on_images(t / "missing")), "missing: image folder not found"),
    "data path a file": (lambda w, t: train(t, on_images(w / "labels.csv")), "labels.csv: image folder must be a folder"),
    "one class": (lambda w, t: train(t, on_images(images(w, t, lambda f: [shutil.rmtree(f / c) for c in ("green", "blue")]))), "1 class found"),
    "class without images": (lambda w, t: train(t, on_images(images(w, t, lambda f: (f / "empty").mkdir()))), "empty: class folder has no images"),
    "truncated PNG": (lambda w, t: train(t, on_images(images(w, t, lambda f: truncate(f / "red" / "0.png")))), "0.png: cannot decode image"),
    "not an image": (lambda w, t: train(t, on_images(images(w, t, lambda f: (f / "red" / "0.png").write_text("hello")))), "0.png: cannot decode image"),
    "unknown class asked for": (lambda w, t: train(t, on_images(w / "images"), "data.classes=[red,purple]"), "data.classes: no class 'purple'"),
    "CIFAR batch runs code": (lambda w, t: train(t, f"data: {{source: cifar, path: {cifar(t, {b'data': Hostile(t / MARKER), b'labels': [0]})}}}\n"),
                              "data_batch_1: not a CIFAR python batch (refused to load 'posix.system'"),
    "CIFAR batch garbage": (lambda w, t: train(t, f"data: {{source: cifar, path: {cifar(t, b'garbage' * 10)}}}\n"), "data_batch_1: not a CIFAR python batch"),
    "CIFAR batch a list": (lambda w, t: train(t, f"data: {{source: cifar, path: {cifar(t, [1, 2])}}}\n"), "data_batch_1: not a CIFAR python batch (holds a list"),
    "CIFAR batch without labels": (lambda w, t: train(t, f"data: {{source: cifar, path: {cifar(t, {b'data': b''})}}}\n"), "data_batch_1: CIFAR batch lacks"),
    # outputs
    "out is a file": (lambda w, t: ["train", w / "recipe.yaml", "--out", w / "labels.csv", "--quiet"], "labels.csv: exists and is not a folder"),
    "out holds a finished run": (lambda w, t: ["train", w / "recipe.yaml", "--out", w / "run", "--quiet"], "run: a run already exists there (completed)"),
    "resume without out": (lambda w, t: ["train", w / "recipe.yaml", "--resume", "--quiet"], "--resume needs --out"),
    "resume a finished run": (lambda w, t: ["train", w / "recipe.yaml", "--out", w / "run", "--resume", "--quiet"], "the run has finished"),
    "resume where no run is": (lambda w, t: ["train", w / "recipe.yaml", "--out", t / "none", "--resume", "--quiet"], "none: no run to resume"),
    "predict over the run's metrics": (lambda w, t: ["predict", w / "run", "--images", w / "test", "--out", w / "run" / "metrics.json"], "metrics.json: belongs to the run"),
    "predict over the run's checkpoint": (lambda w, t: ["predict", w / "run", "--images", w / "test", "--out", w / "run" / "best.pt"], "best.pt: belongs to the run"),
    "predict out a folder": (lambda w, t: ["predict", w / "run", "--images", w / "test", "--out", w / "images"], "images: is a folder"),
    "predict out under a file": (lambda w, t: ["predict", w / "run", "--images", w / "test", "--out", w / "labels.csv" / "s.csv"], "cannot create its folder"),
    "predict images missing": (lambda w, t: ["predict", w / "run", "--images", t / "nothing", "--out", t / "s.csv"], "nothing"),
    "predict labels missing": (lambda w, t: ["predict", w / "run", "--images", w / "test", "--out", t / "s.csv", "--labels", t / "no.csv"], "no.csv: labels file not found"),
    # damaged runs
    "not a run": (lambda w, t: ["evaluate", w / "images", "--data", w / "images"], "not a reglab run directory"),
    "meta.json garbage": (lambda w, t: ["evaluate", damaged_run(w, t, "meta.json", "{not json"), "--data", w / "images"], "meta.json: not valid JSON"),
    "meta.json a list": (lambda w, t: ["evaluate", damaged_run(w, t, "meta.json", "[1, 2]"), "--data", w / "images"], "meta.json: damaged (holds a JSON list"),
    "meta.json without classes": (lambda w, t: ["evaluate", damaged_run(w, t, "meta.json", '{"input_shape": [3, 12, 12]}'), "--data", w / "images"], "meta.json: damaged ('classes'"),
    "meta.json bad checkpoint name": (lambda w, t: ["evaluate", damaged_run(w, t, "meta.json", '{"classes": ["a", "b"], "input_shape": [3, 12, 12], "final_checkpoint": "../../x"}'), "--data", w / "images"], "final_checkpoint"),
    "checkpoint empty": (lambda w, t: ["evaluate", damaged_run(w, t, "last.pt", b""), "--data", w / "images"], "last.pt: damaged or not a reglab checkpoint"),
    "checkpoint truncated": (lambda w, t: ["evaluate", damaged_run(w, t, "last.pt", (w / "run" / "last.pt").read_bytes()[:300]), "--data", w / "images"], "last.pt: damaged or not a reglab checkpoint"),
    "checkpoint garbage": (lambda w, t: ["evaluate", damaged_run(w, t, "last.pt", b"\x00garbage" * 50), "--data", w / "images"], "last.pt: damaged or not a reglab checkpoint"),
    "checkpoint runs code": (lambda w, t: ["evaluate", damaged_run(w, t, "last.pt", Hostile(t / MARKER)), "--data", w / "images"], "last.pt: damaged or not a reglab checkpoint"),
    "checkpoint of another model": (lambda w, t: ["evaluate", damaged_run(w, t, "last.pt", saved({"w": torch.zeros(2)})), "--data", w / "images"], "last.pt: does not fit the run's model"),
    "run recipe damaged": (lambda w, t: ["evaluate", damaged_run(w, t, "recipe.yaml", "model: {name: [\n"), "--data", w / "images"], "recipe.yaml: line"),
    # evaluate and inspect
    "top-k zero": (lambda w, t: ["evaluate", w / "run", "--data", w / "images", "--top-k", "0"], "--top-k must be 1 or more"),
    "evaluate data missing": (lambda w, t: ["evaluate", w / "run", "--data", t / "gone"], "gone"),
    "evaluate as the wrong layout": (lambda w, t: ["evaluate", w / "run", "--data", w / "images", "--source", "cifar"], "images: no batches.meta"),
    "answer key without columns": (lambda w, t: ["predict", w / "run", "--images", w / "test", "--out", t / "s.csv", "--labels", w / "recipe.yaml"], "recipe.yaml: expected a CSV with the columns id,label"),
    "inspect truncated PNG": (lambda w, t: ["data", "inspect", images(w, t, lambda f: truncate(f / "blue" / "3.png"))], "3.png: cannot decode image"),
    "inspect missing folder": (lambda w, t: ["data", "inspect", t / "absent"], "absent"),
    # damaged studies
    "study show, not a study": (lambda w, t: ["study", "show", w / "images"], "not a reglab study directory (no study.json)"),
    "study.json garbage": (lambda w, t: ["study", "show", study_dir(w, t, "{oops")], "study.json: damaged"),
    "study.json without keys": (lambda w, t: ["study", "show", study_dir(w, t, '{"name": "x"}')], "study.json: damaged"),
    "study.json a list": (lambda w, t: ["study", "show", study_dir(w, t, "[]")], "study.json: damaged"),
    "study arm name a path": (lambda w, t: ["study", recipe(t, LINEAR + "study: {arms: {'../x': {}}, baseline: '../x', seeds: [0]}\n"), "--out", t / "s"], "arm name '../x' may hold only"),
    "study workers negative": (lambda w, t: ["study", recipe(t, LINEAR + "study: {arms: {a: {}}, baseline: a, seeds: [0]}\n"), "--workers", "-1", "--out", t / "s"], "--workers must be 0 or more"),
    "study arm key unknown": (lambda w, t: ["study", recipe(t, LINEAR + "study: {arms: {a: {optim.lrr: 1}}, baseline: a, seeds: [0]}\n"), "--out", t / "s"], "study.arms.a"),
    "study seeds min above max": (lambda w, t: ["study", recipe(t, LINEAR + "study: {arms: {a: {}}, baseline: a, seeds: {min: 5, max: 3}}\n"), "--out", t / "s"], "min 5 is above max 3"),
    "study margin zero": (lambda w, t: ["study", recipe(t, LINEAR + "study: {arms: {a: {}, b: {}}, baseline: a, margin: 0}\n"), "--out", t / "s"], "study.margin must be above 0"),
    "study margin negative": (lambda w, t: ["study", recipe(t, LINEAR + "study: {arms: {a: {}, b: {}}, baseline: a, margin: -0.1}\n"), "--out", t / "s"], "study.margin must be above 0"),
    "study margin beyond the range": (lambda w, t: ["study", recipe(t, LINEAR + "study: {arms: {a: {}, b: {}}, baseline: a, metric: val_accuracy, margin: 2}\n"), "--out", t / "s"],
                                      "study.margin 2.0 is not below val_accuracy's whole range"),
    "study also unknown": (lambda w, t: ["study", recipe(t, LINEAR + "study: {arms: {a: {}, b: {}}, baseline: a, also: [val_eec]}\n"), "--out", t / "s"], "did you mean 'val_ece'"),
    "study also not measured": (lambda w, t: ["study", recipe(t, LINEAR + "study: {arms: {a: {}, b: {}}, baseline: a, also: [val_mix_macro_f1]}\n"), "--out", t / "s"],
                                "study.also: val_mix_macro_f1 is measured only where validation mixtures are scored"),
    "study journal in a missing folder": (lambda w, t: ["study", recipe(t, LINEAR + "study: {arms: {a: {}}, baseline: a, seeds: [0]}\n"), "--storage", f"journal:{t / 'nope' / 'j.log'}",
                                           "--out", t / "s"], "nope does not exist"),
    "base names a folder": (lambda w, t: train(t, f"base: {w / 'images'}\n" + LINEAR), "bad.yaml: base: "),
    "study sam in stacks": (lambda w, t: ["study", recipe(t, LINEAR + "optim: {sam: {rho: 0.05}}\nstudy: {arms: {a: {}}, baseline: a, parallel_seeds: 2}\n"), "--out", t / "s"],
                            "optim.sam takes two passes a step"),
    "drop_path on a linear model": (lambda w, t: train(t, LINEAR, "model.drop_path=0.1"), "it applies with model.name=efficientnet_b0 or resnet18"),
    "randaugment magnitude": (lambda w, t: train(t, LINEAR, "augment.randaugment={n: 1, m: 40}"), "augment.randaugment.m"),
    "swa beyond the epochs": (lambda w, t: train(t, LINEAR, "train.swa={start_epoch: 5, lr: 0.01}"), "train.swa.start_epoch 5 is beyond train.epochs 1"),
    "search key unknown": (lambda w, t: sweep(t, "space: {optim.lrr: {choice: [0.1]}}"), "search.space.optim.lrr"),
    "search loguniform bound 0": (lambda w, t: sweep(t, "space: {optim.lr: {loguniform: [0, 0.1]}}"), "search.space.optim.lr: loguniform needs bounds above 0"),
    "search choice empty": (lambda w, t: sweep(t, "space: {model.dropout.rate: {choice: []}}"), "search.space.model.dropout.rate: choice needs a list of at least one value"),
    "search grid continuous": (lambda w, t: sweep(t, "sampler: grid\n  space: {optim.lr: {uniform: [0.01, 0.1]}}"), "search.space.optim.lr: search.sampler grid needs discrete values"),
    "search value out of range": (lambda w, t: sweep(t, "space: {model.dropout.rate: {choice: [0.5, 1.5]}}"), "search.space.model.dropout.rate"),
    "search not a distribution": (lambda w, t: sweep(t, "space: {optim.lr: 0.1}"), "search.space.optim.lr: a distribution is a mapping"),
    "search int not integer": (lambda w, t: sweep(t, "space: {train.batch_size: {int: [8.5, 64]}}"), "search.space.train.batch_size: int needs integer bounds"),
    "search cocktail key unknown": (lambda w, t: sweep(t, "cocktail: {augment.mixx: {mixup_alpha: {uniform: [0.1, 1]}}}"), "search.cocktail.augment.mixx"),
    "search cocktail bad range": (lambda w, t: sweep(t, "cocktail: {augment.mix: {mixup_alpha: {uniform: [1, 0.1]}}}"), "search.cocktail.augment.mix.mixup_alpha: uniform needs low < high"),
    "search empty": (lambda w, t: sweep(t, "sampler: random"), "search: nothing to search"),
    "sweep show, not a sweep": (lambda w, t: ["sweep", "show", w / "images"], "not a reglab sweep directory (no sweep.json)"),
    "sweep trials zero": (lambda w, t: sweep(t, "space: {optim.lr: {choice: [0.1]}}") + ["--trials", "0"], "search.trials"),
}


def sweep(tmp, search):
    return ["sweep", recipe(tmp, LINEAR + f"search:\n  {search}\n"), "--out", tmp / "s", "--workers", "0", "--quiet"]


def snapshot(*roots):
    """Every file under ``roots`` with its size and modification time."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for root in roots if root.exists() for p in root.rglob("*")}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(world, tmp_path, capsys, case):
    build, needle = CASES[case]
    argv = [str(a) for a in build(world, tmp_path)]
    before = snapshot(world, tmp_path)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert needle in err and "Traceback" not in err, err
    assert err.startswith("reglab: error: ") and err.count("\n") == 1, err
    assert snapshot(world, tmp_path) == before  # nothing written, nothing overwritten
    assert not (tmp_path / MARKER).exists()  # and nothing run from a data file


def test_there_are_at_least_40_cases():
    assert len(CASES) >= 40


def test_a_damaged_feature_cache_entry_is_computed_again_with_a_warning(tmp_path, capsys):
    from reglab.data.feature_cache import FeatureCache

    cache = FeatureCache(tmp_path)
    cache.put("k", {"x": torch.ones(2)})
    assert torch.equal(cache.get("k", ("x",))["x"], torch.ones(2))
    truncate(tmp_path / "k.pt")
    assert cache.get("k", ("x",)) is None
    assert "k.pt: damaged feature-cache entry" in capsys.readouterr().err
    cache.put("k", {"y": torch.ones(2)})  # an entry without the fields asked for is damaged too
    assert cache.get("k", ("x",)) is None
    assert "lacks x" in capsys.readouterr().err


def test_markup_in_paths_and_class_names_is_shown_as_text(world, tmp_path, capsys):
    folder = tmp_path / "data"
    for name in ("[bold]x", "<script>alert(1)"):  # a file name cannot hold '/': [bold]x opens a tag on its own
        shutil.copytree(world / "images" / "red", folder / name)
    out = tmp_path / "[/]run[red]"
    body = f"data: {{source: image_folder, path: {folder}, image_size: 12}}\nmodel: {{name: linear}}\ntrain: {{epochs: 1, batch_size: 4}}\n"
    assert main(["train", str(recipe(tmp_path, body)), "--out", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "[/]run[red]" in shown
    assert main(["evaluate", str(out), "--data", str(folder)]) == 0
    shown = capsys.readouterr().out
    assert "[bold]x" in shown and "<script>alert(1)" in shown
    assert main(["data", "inspect", str(folder)]) == 0
    assert "[bold]x" in capsys.readouterr().out
