import json

import pytest
import torch

from reglab.models import create_model
from reglab.recipe import load_recipe
from reglab.training.run import train
from reglab.training.weight_average import WeightAverage


def digits_recipe(*overrides):
    base = ["data.source=digits", "model.name=resnet18", "model.width=0.125", "optim.name=adam", "optim.lr=0.003",
            "train.epochs=2", "train.batch_size=64", "train.seed=3"]  # fmt: skip
    return load_recipe(None, base + list(overrides))


def without_time(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def test_same_recipe_and_seed_give_identical_histories(tmp_path):
    first = train(digits_recipe(), tmp_path / "a")
    second = train(digits_recipe(), tmp_path / "b")
    other_seed = train(digits_recipe("train.seed=4"), tmp_path / "c")
    assert without_time(first.history) == without_time(second.history)
    assert without_time(first.history) != without_time(other_seed.history)
    state_a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    state_b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_run_directory_holds_everything_for_a_report(tmp_path):
    result = train(digits_recipe("model={name: linear}", "train.epochs=3"), tmp_path / "run")
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"recipe.yaml", "meta.json", "history.jsonl", "history.csv", "metrics.json",
            "val_predictions.csv", "best.pt", "last.pt"} <= names  # fmt: skip
    assert result.status == "completed" and len(result.history) == 3
    rows = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    row = rows[-1]
    assert row["gap_loss"] == pytest.approx(row["train_loss"] - row["val_loss"])
    assert row["gap_accuracy"] == pytest.approx(row["train_accuracy"] - row["val_accuracy"])
    assert result.metrics["accuracy"] > 0.85  # a linear model on digits (chance: 0.1)
    assert len(result.metrics["per_class"]) == 10 and len(result.metrics["confusion_matrix"]) == 10
    # the resolved recipe reloads to the same recipe, and the checkpoint loads as weights only
    assert load_recipe(tmp_path / "run" / "recipe.yaml") == digits_recipe("model={name: linear}", "train.epochs=3")
    model = create_model(digits_recipe("model={name: linear}").model, (1, 8, 8), 10)
    model.load_state_dict(torch.load(tmp_path / "run" / "best.pt", weights_only=True))


def test_early_stopping_restores_the_best_epoch(tmp_path):
    # a learning rate that decays to almost nothing after epoch 1 cannot keep improving val_loss by 10
    recipe = digits_recipe("model={name: linear}", "train.epochs=6", "schedule.name=step", "schedule.step_size=1",
                           "schedule.factor=0.001", "train.early_stopping.patience=2",
                           "train.early_stopping.min_delta=10", "train.early_stopping.restore_best=true")  # fmt: skip
    result = train(recipe, tmp_path / "run")
    assert result.status == "early_stopped" and len(result.history) == 3
    assert result.metrics["best_epoch"] == 1
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["final_checkpoint"] == "best.pt"
    assert result.metrics["val_loss"] == pytest.approx(result.history[0]["val_loss"], rel=1e-5)


def test_early_stopping_waits_for_its_start_epoch(tmp_path):
    recipe = digits_recipe("model={name: linear}", "train.epochs=8", "schedule.name=step", "schedule.step_size=1",
                           "schedule.factor=0.001", "train.early_stopping.patience=2",
                           "train.early_stopping.min_delta=10", "train.early_stopping.start_epoch=4")  # fmt: skip
    result = train(recipe, tmp_path / "run")
    assert result.status == "early_stopped" and len(result.history) == 5  # epochs 4 and 5 count, not 2 and 3
    assert result.metrics["best_epoch"] == 1


def test_plateau_schedule_cuts_the_rate_on_a_stalled_monitor(tmp_path):
    recipe = digits_recipe("model={name: linear}", "train.epochs=4", "optim.lr=1.0e-6", "schedule.name=plateau",
                           "schedule.patience=0", "schedule.factor=0.5", "schedule.monitor=val_accuracy")  # fmt: skip
    history = train(recipe, tmp_path / "run").history
    assert history[0]["lr"] == 1e-6 and history[-1]["lr"] < 1e-6


def test_divergence_is_recorded_not_raised(tmp_path):
    result = train(digits_recipe("model={name: linear}", "optim.name=sgd", "optim.lr=1.0e38", "train.epochs=3"), tmp_path / "run")
    assert result.status == "diverged"
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "diverged"


def test_onecycle_warms_up_then_anneals_over_all_repeated_steps(tmp_path):
    recipe = digits_recipe("model={name: linear}", "train.epochs=4", "schedule.name=onecycle",
                           "schedule.warmup_fraction=0.3", "train.repeats=2")  # fmt: skip
    history = train(recipe, tmp_path / "run").history
    rates = [row["lr"] for row in history]  # the rate at each epoch's start
    assert rates[0] < rates[1] and rates[1] > rates[3]
    assert max(rates) <= 0.003 + 1e-12


def test_weight_average_is_an_exponential_moving_average_with_warmup():
    model = torch.nn.Linear(2, 1)
    average = WeightAverage(model, decay=0.9)
    start = model.weight.detach().clone()
    assert average.current_decay() == pytest.approx(1 / 10)  # warm-up: the first updates follow the model
    with torch.no_grad():
        model.weight.add_(1.0)
    average.update()
    assert torch.allclose(average.model.weight, 0.1 * start + 0.9 * (start + 1))
    average.updates = 1000
    assert average.current_decay() == 0.9
    before = average.model.weight.detach().clone()
    average.update()
    assert torch.allclose(average.model.weight, 0.9 * before + 0.1 * model.weight)


def test_weight_average_changes_what_is_validated_not_how_the_model_trains(tmp_path):
    plain = train(digits_recipe("train.epochs=3"), tmp_path / "plain")
    averaged = train(digits_recipe("train.epochs=3", "train.ema_decay=0.99"), tmp_path / "ema")
    assert [r["train_loss"] for r in averaged.history] == [r["train_loss"] for r in plain.history]
    assert [r["val_loss"] for r in averaged.history] != [r["val_loss"] for r in plain.history]
    kept = torch.load(tmp_path / "ema" / "last.pt", weights_only=True)
    trained = torch.load(tmp_path / "plain" / "last.pt", weights_only=True)
    assert not torch.equal(kept["net.head.1.weight"], trained["net.head.1.weight"])


def test_bf16_autocast_on_the_cpu_is_a_recipe_option(tmp_path):
    from reglab.device import cpu_has_bf16
    from reglab.errors import UserError

    assert digits_recipe("train.amp=true").train.amp == "auto" and digits_recipe("train.amp=false").train.amp == "off"  # older recipes
    recipe = digits_recipe("train.amp=bf16", "model.name=instrunet", "model.width=0.25")
    if not cpu_has_bf16():
        with pytest.raises(UserError, match="train.amp: bf16 needs a CPU with bfloat16"):
            train(recipe, tmp_path / "bf16")
        return
    full = train(digits_recipe("model.name=instrunet", "model.width=0.25", "train.amp=off"), tmp_path / "fp32").history
    half = train(recipe, tmp_path / "bf16").history
    assert without_time(half) != without_time(full)  # it ran in bfloat16 ...
    assert abs(half[-1]["val_accuracy"] - full[-1]["val_accuracy"]) < 0.1  # ... and learnt as well
    assert without_time(train(recipe, tmp_path / "again").history) == without_time(half)  # deterministic in bfloat16 too


def test_auto_takes_bf16_for_models_shown_to_learn_as_well_in_it_and_compiles_only_long_runs_of_families_it_pays_for(tmp_path, monkeypatch):
    """``train.amp: auto`` on the CPU: bfloat16 where the CPU has bfloat16 instructions and the
    model family was shown equivalent in it (AlexNet-like, ResNet-18, InstruNet), float32 for the
    rest; ``train.compile: auto``: only families measured faster compiled, on runs long enough to
    repay the compile, on the CPU kind where that was measured (AMX)."""
    from reglab import device
    from reglab.device import concrete_amp, concrete_compile, cpu_has_amx, cpu_has_native_bf16

    alexnet = train(digits_recipe("model={name: alexnet_like, width: 0.25}", "data.image_size=32", "train.epochs=1"), tmp_path / "a")
    linear = train(digits_recipe("model={name: linear}", "train.epochs=1"), tmp_path / "l")
    meta = {name: json.loads((tmp_path / name / "meta.json").read_text()) for name in ("a", "l")}
    assert meta["a"]["precision"] == ("bfloat16" if cpu_has_native_bf16() else "float32") and meta["l"]["precision"] == "float32"
    assert not meta["a"]["compiled"] and not meta["l"]["compiled"] and alexnet.status == linear.status == "completed"
    cpu = torch.device("cpu")
    shown = ("bf16" if cpu_has_native_bf16() else "off")
    assert concrete_amp("auto", cpu, "resnet18") == concrete_amp("auto", cpu, "alexnet_like") == concrete_amp("auto", cpu, "instrunet") == shown
    assert concrete_amp("auto", cpu, "efficientnet_b0") == "off" and concrete_amp("off", cpu, "resnet18") == "off"
    assert concrete_compile("auto", cpu, "instrunet", 250_000) == cpu_has_amx() and not concrete_compile("auto", cpu, "instrunet", 20_000)
    assert not concrete_compile("auto", cpu, "alexnet_like", 10**9) and concrete_compile(True, cpu, "alexnet_like", 1)
    for amx in (False, True):  # the rule on either CPU kind, whichever this one is
        monkeypatch.setattr(device, "cpu_has_amx", lambda: amx)
        assert concrete_compile("auto", cpu, "instrunet", 250_000) == amx and concrete_compile("auto", cpu, "resnet18", 400_000) == amx
    monkeypatch.setenv("PATH", str(tmp_path))  # no C++ compiler: auto does not compile, where true is an error
    monkeypatch.delenv("CXX", raising=False)
    assert not concrete_compile("auto", cpu, "instrunet", 250_000)


@pytest.mark.slow  # compiles a model (the second compiled run finds its kernels cached)
def test_compiled_training_learns_as_eager_does_and_repeats_itself(tmp_path):
    # 1,344 training digits: 21 full batches of 64 and one graph to build (a last, smaller batch
    # would compile a second: 46 s instead of 27 with a cold kernel cache, checking nothing more)
    shape = ("model.name=instrunet", "model.width=0.25", "data.val_fraction=0.2519")
    recipe = digits_recipe("train.compile=true", *shape)
    eager = train(digits_recipe(*shape), tmp_path / "eager").history
    fused = train(recipe, tmp_path / "compiled").history
    assert without_time(fused) != without_time(eager)  # generated kernels, other rounding ...
    assert abs(fused[-1]["val_accuracy"] - eager[-1]["val_accuracy"]) < 0.05  # ... the same learning
    assert without_time(train(recipe, tmp_path / "again").history) == without_time(fused)  # and deterministic
    state = torch.load(tmp_path / "compiled" / "last.pt", weights_only=True)
    assert state and not any("_orig_mod" in key for key in state)  # checkpoints hold the model itself


@pytest.mark.slow  # compiles five runs
def test_every_compiled_run_of_a_process_is_compiled_not_only_the_first_few(tmp_path):
    """torch keeps compiled code per Python function across models and, past its recompile limit
    (8), runs eager without a word: a study worker trains run after run in one process."""
    from torch._dynamo.utils import counters

    graphs = []
    for run in range(5):  # two shapes a run (full and last batch): without a fresh start the 5th would be eager
        train(digits_recipe("train.compile=true", "model={name: linear}", "train.epochs=1", f"train.seed={run}"), tmp_path / str(run))
        graphs.append(counters["stats"]["unique_graphs"])
    assert all(later > earlier for earlier, later in zip(graphs, graphs[1:]))


def test_compile_without_a_cpp_compiler_is_a_one_line_error(tmp_path, monkeypatch):
    from reglab.errors import UserError

    monkeypatch.setenv("PATH", str(tmp_path))  # nothing to run there
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(UserError, match="train.compile: .* no compiler"):
        train(digits_recipe("train.compile=true"), tmp_path / "run")
    assert not (tmp_path / "run" / "last.pt").exists()


def test_compile_and_a_stack_of_seeds_do_not_combine(tmp_path):
    from reglab.errors import UserError
    from reglab.recipe import load_study_recipe

    from .conftest import write_recipe

    recipe = write_recipe(tmp_path, "data: {source: digits}\nmodel: {name: linear}\ntrain: {compile: true}\n"
                                    "study: {arms: {a: {}}, baseline: a, parallel_seeds: 2}\n")  # fmt: skip
    with pytest.raises(UserError, match="train.compile compiles one network; study.parallel_seeds stacks seeds"):
        load_study_recipe(recipe)


def test_predictions_run_in_inference_mode_batch_by_batch_and_equal_one_pass():
    from reglab.inference.predictor import predict_logits

    torch.manual_seed(0)
    model = create_model(load_recipe(None, ["model={name: resnet18, width: 0.125}"]).model, (3, 16, 16), 5)
    x = torch.randint(0, 256, (37, 3, 16, 16), dtype=torch.uint8)
    logits = predict_logits(model, x, 8, torch.autocast("cpu", enabled=False))
    assert torch.is_inference(logits) and not logits.requires_grad  # no autograd bookkeeping at all
    with torch.no_grad():
        assert torch.allclose(logits, model.eval()(x), atol=1e-5)



def test_swa_averages_the_epochs_snapshots_and_recomputes_batch_norm():
    from torch import nn

    from reglab.device import autocast
    from reglab.recipe import section
    from reglab.training.swa import StochasticWeightAverage

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    swa = StochasticWeightAverage(model, section("train", swa={"start_epoch": 2, "lr": 0.01}).swa)
    assert not swa.applies(1) and swa.applies(2)
    snapshots = []
    for value in (1.0, 2.0, 6.0):  # three epochs' weights
        with torch.no_grad():
            for k, p in enumerate(model.parameters()):
                p.fill_(value * (k + 1))
        snapshots.append([p.detach().clone() for p in model.parameters()])
        swa.collect()
    x = torch.rand(50, 3, 8, 8)
    swa.finalize(x, 16, autocast(torch.device("cpu"), "off", "resnet18"))
    for k, p in enumerate(model.parameters()):
        assert torch.allclose(p, torch.stack([s[k] for s in snapshots]).mean(0))  # the mean of the snapshots
    with torch.no_grad():
        features = model[0](x)  # what the batch norm sees with the averaged weights
    assert torch.allclose(model[1].running_mean, features.mean((0, 2, 3)), atol=1e-4)  # recomputed, not averaged
    assert torch.allclose(model[1].running_var, features.var((0, 2, 3)), rtol=0.05)  # batches' variances, weighted by size
    assert not model.training


def test_a_run_with_swa_holds_its_rate_and_ends_on_the_average(tmp_path):
    recipe = digits_recipe("train.epochs=3", "schedule={name: cosine}", "train.swa={start_epoch: 2, lr: 0.0005}")
    result = train(recipe, tmp_path / "run")
    assert [row["lr"] for row in result.history] == [0.003, 0.0005, 0.0005]  # cosine until the averaging, then constant
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["final_checkpoint"] == "swa.pt" and (tmp_path / "run" / "swa.pt").is_file()
    averaged = torch.load(tmp_path / "run" / "swa.pt", weights_only=True)
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert any(not torch.equal(averaged[k], last[k]) for k in averaged if averaged[k].is_floating_point())
    from reglab.inference.trained_run import TrainedRun

    assert TrainedRun(tmp_path / "run").model is not None  # evaluate and predict load the average
    with pytest.raises(Exception, match="train.swa and train.ema_decay"):
        digits_recipe("train.swa={start_epoch: 2, lr: 0.001}", "train.ema_decay=0.99")


def test_the_history_shows_the_penalties_beside_the_loss(tmp_path):
    """train_loss is the data loss; train_penalty the l2/l1 terms added to it (mean over the
    epoch's steps) and train_cost their sum, the loss Keras would report."""
    lam = 0.01
    result = train(load_recipe(None, ["data.source=digits", "model.name=linear", f"optim.l2={lam}", "train.epochs=2"]), tmp_path / "l2")
    last = result.history[-1]
    weights = torch.load(tmp_path / "l2" / "last.pt", weights_only=True)
    end = lam * sum(t.pow(2).sum().item() for k, t in weights.items() if k.endswith("weight") and t.dim() == 2)
    assert last["train_penalty"] > 0 and abs(last["train_penalty"] - end) < 0.25 * end  # about λ·Σw² of the epoch's weights
    assert last["train_cost"] == last["train_loss"] + last["train_penalty"]
    plain = train(load_recipe(None, ["data.source=digits", "model.name=linear", "train.epochs=1"]), tmp_path / "plain")
    assert plain.history[-1]["train_penalty"] == 0.0 and plain.history[-1]["train_cost"] == plain.history[-1]["train_loss"]


def test_train_cost_is_the_data_loss_plus_the_l2_penalty_computed_by_hand(tmp_path):
    """One step an epoch (the whole training split as one batch) at a rate too small to move the
    weights: the history's values equal cross-entropy and λ·‖W‖² computed from the saved weights."""
    import torch.nn.functional as F

    from reglab.training.split import Split

    lam = 0.05
    recipe = load_recipe(None, ["data.source=digits", "model.name=linear", f"optim.l2={lam}", "optim.lr=1e-12", "optim.momentum=0",
                                "train.epochs=1", "train.batch_size=4096"])  # fmt: skip
    row = train(recipe, tmp_path / "run").history[0]
    model = create_model(recipe.model, (1, 8, 8), 10)
    model.load_state_dict(torch.load(tmp_path / "run" / "last.pt", weights_only=True))
    split = Split.load(recipe, torch.device("cpu"))
    with torch.no_grad():
        loss = F.cross_entropy(model.train()(split.train_set.x), split.train_set.y).item()
    penalty = lam * model.net.fc.weight.pow(2).sum().item()  # dense weights only: biases are not penalized by default
    assert row["train_loss"] == pytest.approx(loss, rel=1e-5)
    assert row["train_penalty"] == pytest.approx(penalty, rel=1e-5)
    assert row["train_cost"] == pytest.approx(loss + penalty, rel=1e-5)
