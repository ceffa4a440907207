"""The training loop: recipe in, run directory out.

Data sits on the device as uint8 tensors; every batch is an index into them and is augmented as a
whole (airbench-style, no DataLoader, no per-sample Python). Loss and accuracy are summed on the device and read once per
epoch; the live loss in the progress bar costs one read every ``REFRESH_EVERY`` steps.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from . import data as data_sources
from .data.dataset import Samples
from .data.memory import require
from .data.split import stratified_split
from . import metrics
from .augment import BatchOps, EpochPlan, EpochPlanner
from .callbacks import EarlyStopping
from .calibration import fit_logit_adjustment, tune_thresholds
from .decisions import ValidationMixtures
from .device import autocast, pick_device, seed_everything
from .errors import UserError, first_line
from .inference import predict_logits, targets_for
from .losses import SIGMOID_LOSSES, create_loss, probabilities
from .models import check_input_size, create_model
from .optim import Optimizer
from .progress import Silent
from .recipe import Recipe
from .rundir import RunDir
from .schedules import Schedule
from .weight_average import WeightAverage

REFRESH_EVERY = 10


@dataclass
class RunResult:
    path: Path
    status: str  # "completed", "early_stopped", "pruned" or "diverged"
    history: list[dict]
    metrics: dict


def batches_in(n: int, batch_size: int) -> int:
    """Batches an epoch of ``n`` visits takes; a last batch of one sample is dropped (batch norm)."""
    return n // batch_size if n % batch_size == 1 else math.ceil(n / batch_size)


@dataclass
class Learner:
    """What takes a training step: the model, its loss, optimizer, schedule and (optional) weight
    average. ``evaluated`` is what validation sees and checkpoints hold."""

    model: torch.nn.Module
    loss_fn: torch.nn.Module
    optimizer: Optimizer
    schedule: Schedule
    average: Optional[WeightAverage]
    amp: Any

    @property
    def evaluated(self) -> torch.nn.Module:
        return self.average.model if self.average else self.model

    def step(self, xb: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on a batch; returns its (detached) logits and loss."""
        with self.amp:
            logits = self.model(xb)
        loss = self.loss_fn(logits.float(), targets)  # the loss in full precision under bfloat16 autocast
        self.optimizer.zero_grad()
        (loss + self.optimizer.penalty()).backward()
        self.optimizer.step()
        self.schedule.batch_step()
        if self.average is not None:
            self.average.update()
        return logits.detach(), loss.detach()

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.torch.state_dict(),
                "schedule": self.schedule.state_dict(), "average": self.average.state_dict() if self.average else None}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.torch.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if self.average is not None:
            self.average.load_state_dict(state["average"])


def train_epoch(learner: Learner, data: Samples, plan: EpochPlan, augment: BatchOps, batch_size: int, reporter) -> tuple[float, float]:
    """One pass over ``data`` (on the device) in the plan's order, each batch augmented as a
    whole; returns (loss, accuracy) against the (possibly mixed) targets' top class."""
    learner.model.train()
    x, y, n_classes = data.x, data.y, len(data.classes)
    order, is_extra = plan.order.to(x.device), plan.is_extra.to(x.device)
    n_batches = batches_in(len(order), batch_size)
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device)
    seen = 0
    for step in range(n_batches):
        batch = slice(step * batch_size, (step + 1) * batch_size)
        index = order[batch]
        xb, targets = augment(x[index], targets_for(y[index], n_classes), is_extra[batch])
        logits, loss = learner.step(xb, targets)
        loss_sum += loss * len(index)
        correct += (logits.argmax(1) == targets.argmax(1)).sum()
        seen += len(index)
        if (step + 1) % REFRESH_EVERY == 0 or step + 1 == n_batches:
            reporter.batch_end(step + 1, loss_sum.item() / seen)
    return loss_sum.item() / seen, correct.item() / seen


def random_state(generator: torch.Generator) -> dict:
    """Every random stream the loop draws from: the epoch order's generator and torch's global
    one (augmentation, mixing, dropout); nothing in the loop draws from numpy or ``random``."""
    state = {"order": generator.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(generator: torch.Generator, state: dict) -> None:
    generator.set_state(state["order"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def validate(model, loss_fn, loss_name, x, y, batch_size, amp) -> tuple[float, np.ndarray]:
    logits = predict_logits(model, x, batch_size, amp)
    loss = loss_fn(logits, targets_for(y, logits.shape[1])).item()
    return loss, probabilities(logits, loss_name).cpu().numpy()


def predictor(model, recipe: Recipe, amp):
    """Features → probabilities, as ``evaluate`` computes them."""

    def predict(x: torch.Tensor) -> np.ndarray:
        return probabilities(predict_logits(model, x, recipe.train.eval_batch_size, amp), recipe.loss.name).cpu().numpy()

    return predict


def is_polyphonic(recipe: Recipe) -> bool:
    """Judged on mixtures: trained on them, or with thresholds tuned on them."""
    return recipe.augment.mixtures is not None or recipe.evaluate.threshold == "tuned"


def epoch_row(epoch, lr, seconds, train_loss, train_acc, val_loss, val_summary, mix_summary) -> dict:
    row = {"epoch": epoch, "lr": lr, "train_loss": train_loss, "train_accuracy": train_acc, "val_loss": val_loss}
    row.update({f"val_{k}": v for k, v in val_summary.items()})
    row.update({f"val_mix_{k}": mix_summary[k] for k in ("micro_f1", "macro_f1") if mix_summary})
    row["gap_loss"] = train_loss - val_loss  # train minus val
    row["gap_accuracy"] = train_acc - row["val_accuracy"]
    row["seconds"] = round(seconds, 3)
    return row


def restore(run: RunDir, saved: dict, learner: Learner, stopper: EarlyStopping, generator: torch.Generator) -> None:
    """Put the loop back where the training state left it: weights, optimizer, schedule, average,
    early stopping and every random stream."""
    try:
        learner.load_state_dict(saved["learner"])
        stopper.load_state_dict(saved["stopper"])
        set_random_state(generator, saved["random"])
        if not isinstance(saved["epoch"], int):
            raise TypeError(f"epoch is {saved['epoch']!r}")
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise UserError(f"{run.path / 'training_state.pt'}: damaged ({first_line(exc)}); start the run again in another --out") from None


def check_trainable(recipe: Recipe, data: Samples) -> None:
    """Refuse, before anything trains, data and settings that cannot make sense together."""
    if len(data.classes) < 2:
        raise UserError(f"{recipe.data.path or recipe.data.source}: {len(data.classes)} class found; a classifier needs at least 2")
    multilabel = data.multilabel or is_polyphonic(recipe)
    if multilabel and recipe.loss.name not in SIGMOID_LOSSES:
        raise UserError(f"loss.name: {recipe.loss.name} is a softmax loss, but this recipe is multi-label "
                        "(multi-hot data, augment.mixtures or evaluate.threshold: tuned); use bce")  # fmt: skip
    monitors = {"train.early_stopping.monitor": recipe.train.early_stopping.monitor, "schedule.monitor": getattr(recipe.schedule, "monitor", "")}
    for key, monitor in monitors.items():
        if monitor.startswith("val_mix_") and not is_polyphonic(recipe):
            raise UserError(f"{key}: {monitor} scores validation mixtures, which this recipe has none of "
                            "(set augment.mixtures or evaluate.threshold: tuned)")  # fmt: skip
    if recipe.evaluate.logit_adjustment is not None and (multilabel or recipe.loss.name in SIGMOID_LOSSES):
        raise UserError(f"evaluate.logit_adjustment: needs single-label data and a softmax loss (loss.name={recipe.loss.name})")
    batch_bytes = recipe.train.batch_size * data.x[0].numel() * 4 * 3  # float32: the batch, its augmented and its mixed copy
    require(batch_bytes, f"train.batch_size: {recipe.train.batch_size} samples of {tuple(data.x.shape[1:])}")


def train(recipe: Recipe, out: str | Path, reporter=None, resume: bool = False) -> RunResult:
    """Train one run as the recipe says and write everything to ``out``; with ``resume``, continue
    the unfinished run there from its last completed epoch, to the numbers it would have reached
    had it never stopped."""
    reporter = reporter or Silent()
    if recipe.data.source == "test_folder":
        raise UserError("data.source: test_folder is unlabelled; train on image_folder, cifar, tiny_imagenet or digits")
    run = RunDir.reopen(out, recipe) if resume else RunDir.vacant(out)
    device = pick_device(recipe.train.device)
    amp = autocast(device, recipe.train.amp)
    generator = seed_everything(recipe.train.seed)

    full = data_sources.load(recipe.data, "train")
    check_trainable(recipe, full)
    train_set, val_set = stratified_split(full, recipe.data.val_fraction, recipe.data.split_seed)
    classes, input_shape = full.classes, tuple(full.x.shape[1:])
    train_data = Samples(train_set.x.to(device), train_set.y.to(device), classes, train_set.ids)
    x_val, y_val = val_set.x.to(device), val_set.y.to(device)
    mixtures = ValidationMixtures(x_val, targets_for(val_set.y, len(classes)), recipe.evaluate) if is_polyphonic(recipe) else None

    model = create_model(recipe.model, input_shape, len(classes))
    check_input_size(model, recipe.model, input_shape)
    model.fit(train_set.x)
    model.to(device)
    counts = train_set.class_counts()
    planner = EpochPlanner(counts, recipe.train.balanced_sampling, recipe.train.repeats, recipe.augment.multicrop)
    augment = BatchOps(recipe.augment, counts, input_shape, recipe.data).to(device)
    optimizer = Optimizer(recipe.optim, model)
    steps_per_epoch = batches_in(planner.visits_per_epoch(train_set.y), recipe.train.batch_size)
    learner = Learner(
        model, create_loss(recipe.loss, counts).to(device), optimizer,
        Schedule(recipe.schedule, optimizer.torch, recipe.train.epochs, steps_per_epoch),
        WeightAverage(model, recipe.train.ema_decay) if recipe.train.ema_decay else None, amp,
    )  # fmt: skip
    stopper = EarlyStopping(recipe.train.early_stopping)
    if not resume:
        run.start(recipe)

    history, status, batch = [], "completed", recipe.train.batch_size
    saved, resumed_after = run.training_state() if resume else None, []
    if saved is not None:
        restore(run, saved, learner, stopper, generator)
        resumed_after = run.read_json("meta.json").get("resumed_after", []) + [saved["epoch"]]
    history = run.keep_history(saved["epoch"] if saved else 0)
    meta = {"classes": classes, "input_shape": list(input_shape), "status": "running", "device": str(device),
            "n_train": len(train_set), "n_val": len(val_set), "train_counts": dict(zip(classes, counts.tolist())),
            "resumed_after": resumed_after}  # fmt: skip
    run.write_json("meta.json", meta)
    reporter.start(run.path, len(train_set), len(val_set), str(device))
    if history:
        reporter.resumed(history)

    evaluated = learner.evaluated
    predict = predictor(evaluated, recipe, amp)
    for epoch in range(len(history) + 1, recipe.train.epochs + 1):
        if stopper.should_stop:
            status = "early_stopped"
            break
        if history and reporter.pruned():
            status = "pruned"
            break
        started = time.perf_counter()
        plan = planner.epoch(train_set.y, generator)
        reporter.epoch_start(epoch, recipe.train.epochs, batches_in(len(plan.order), batch))
        lr = optimizer.lr
        train_loss, train_acc = train_epoch(learner, train_data, plan, augment, batch, reporter)
        if not math.isfinite(train_loss):
            status = "diverged"
            reporter.epoch_end({"epoch": epoch, "train_loss": train_loss, "seconds": time.perf_counter() - started}, "  diverged")
            break
        val_loss, val_probs = validate(evaluated, learner.loss_fn, recipe.loss.name, x_val, y_val, recipe.train.eval_batch_size, amp)
        val_summary = metrics.summary(val_set.y.numpy(), val_probs)
        mix_summary = mixtures.score(predict)[1] if mixtures else None
        row = epoch_row(epoch, lr, time.perf_counter() - started, train_loss, train_acc, val_loss, val_summary, mix_summary)
        history.append(row)
        run.append_history(row)
        improved = stopper.update(epoch, row)
        if improved:
            run.save_checkpoint(evaluated, "best.pt")
        run.save_checkpoint(evaluated, "last.pt")
        learner.schedule.step(row)
        run.save_training_state({"epoch": epoch, "learner": learner.state_dict(), "stopper": stopper.state_dict(),
                                 "random": random_state(generator)})  # fmt: skip
        reporter.epoch_end(row, "  *" if improved else "")

    final_checkpoint = "last.pt"  # after a divergence: the last finite epoch's weights
    if recipe.train.early_stopping.restore_best and stopper.best_epoch:
        final_checkpoint = "best.pt"
    if history and (final_checkpoint == "best.pt" or status == "diverged"):
        evaluated.load_state_dict(run.load_state(final_checkpoint))
    final = {"status": status, "epochs_run": len(history), "best_epoch": stopper.best_epoch,
             f"best_{stopper.monitor}": stopper.best_value}  # fmt: skip
    if history:
        val_loss, val_probs = validate(evaluated, learner.loss_fn, recipe.loss.name, x_val, y_val, recipe.train.eval_batch_size, amp)
        final.update({"val_loss": val_loss, **metrics.detailed(val_set.y.numpy(), val_probs, classes)})
        run.write_predictions("val_predictions.csv", val_set.ids, classes, val_probs, val_set.y.numpy())
        if recipe.evaluate.logit_adjustment is not None:
            final.update(fit_logit_adjustment(run, recipe.evaluate.logit_adjustment, counts, val_probs, val_set))
    if history and recipe.evaluate.threshold == "tuned":
        final["val_mixtures"] = tune_thresholds(run, predict, mixtures, classes)
    run.write_json("metrics.json", final)
    run.write_json("meta.json", {**meta, "status": status, "final_checkpoint": final_checkpoint})
    run.finish_training()
    reporter.finish(final, run.path, status)
    return RunResult(run.path, status, history, final)
