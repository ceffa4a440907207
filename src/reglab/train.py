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

import numpy as np
import torch
import torch.nn.functional as F

from . import data as data_sources
from .data.split import stratified_split
from . import logit_adjustment, metrics
from .augment import BatchAugment
from .callbacks import EarlyStopping
from .decisions import thresholds_from_validation
from .device import autocast, pick_device, seed_everything
from .errors import UserError
from .losses import SIGMOID_LOSSES, create_loss, probabilities
from .models import create_model
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
    status: str  # "completed", "early_stopped" or "diverged"
    history: list[dict]
    metrics: dict


def targets_for(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Soft targets ``[B, C]``: one-hot for class indices, unchanged for multi-hot rows."""
    return F.one_hot(y, n_classes).float() if y.dim() == 1 else y.float()


@torch.no_grad()
def predict_logits(model, x: torch.Tensor, batch_size: int, amp) -> torch.Tensor:
    model.eval()
    with amp:
        return torch.cat([model(x[i : i + batch_size]).float() for i in range(0, len(x), batch_size)])


def batches_in(n: int, batch_size: int) -> int:
    """Batches an epoch of ``n`` visits takes; a last batch of one sample is dropped (batch norm)."""
    return n // batch_size if n % batch_size == 1 else math.ceil(n / batch_size)


def train_epoch(model, x, y, n_classes, loss_fn, optimizer, schedule, augment, order, is_extra, batch_size, amp, reporter, average=None):
    """One pass over the training tensors in ``order`` (extra multicrop views flagged in
    ``is_extra``), updating the weight ``average`` after every step when there is one; returns
    (loss, accuracy) against the (possibly mixed) targets' top class."""
    model.train()
    n = len(order)
    order, is_extra = order.to(x.device), is_extra.to(x.device)
    n_batches = batches_in(n, batch_size)
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device)
    seen = 0
    for step in range(n_batches):
        batch = slice(step * batch_size, (step + 1) * batch_size)
        index = order[batch]
        xb, targets = augment(x[index], targets_for(y[index], n_classes), is_extra[batch])
        with amp:
            logits = model(xb)
        loss = loss_fn(logits, targets)
        optimizer.zero_grad()
        (loss + optimizer.penalty()).backward()
        optimizer.step()
        schedule.batch_step()
        if average is not None:
            average.update()
        loss_sum += loss.detach() * len(index)
        correct += (logits.detach().argmax(1) == targets.argmax(1)).sum()
        seen += len(index)
        if (step + 1) % REFRESH_EVERY == 0 or step + 1 == n_batches:
            reporter.batch_end(step + 1, loss_sum.item() / seen)
    return loss_sum.item() / seen, correct.item() / seen


def validate(model, loss_fn, loss_name, x, y, batch_size, amp) -> tuple[float, np.ndarray]:
    logits = predict_logits(model, x, batch_size, amp)
    loss = loss_fn(logits, targets_for(y, logits.shape[1])).item()
    return loss, probabilities(logits, loss_name).cpu().numpy()


def tune_thresholds(run, model, recipe, val_set, n_classes, amp) -> dict:
    """Per-class thresholds tuned on validation mixtures, saved as ``thresholds.json``; returns
    the mixtures' metrics at those thresholds."""
    device = next(model.parameters()).device

    def predict(x):
        logits = predict_logits(model, x.to(device), recipe.train.eval_batch_size, amp)
        return probabilities(logits, recipe.loss.name).cpu().numpy()

    thresholds, probs, targets = thresholds_from_validation(predict, val_set.x, targets_for(val_set.y, n_classes), recipe.evaluate)
    run.write_json("thresholds.json", dict(zip(val_set.classes, thresholds.tolist())))
    return metrics.summary(targets, probs, multilabel=True, threshold=thresholds)


def fit_logit_adjustment(run, setting, counts: torch.Tensor, val_probs: np.ndarray, val_set) -> dict:
    """τ (fitted on validation for ``setting`` 'fit', else as given) and the training split's class
    counts, saved as ``logit_adjustment.json``; returns τ and the adjusted validation scores."""
    prior = logit_adjustment.log_prior(counts.cpu().numpy())
    y = val_set.y.numpy()
    tau = logit_adjustment.fit_tau(val_probs, y, prior) if setting == "fit" else float(setting)
    run.write_json("logit_adjustment.json", {"tau": tau, "train_counts": dict(zip(val_set.classes, counts.tolist()))})
    adjusted = logit_adjustment.adjust(val_probs, prior, tau)
    scores = {"logit_adjustment_tau": tau, "val_balanced_log_loss": logit_adjustment.balanced_log_loss(val_probs, y),
              "adjusted_balanced_log_loss": logit_adjustment.balanced_log_loss(adjusted, y)}  # fmt: skip
    scores.update({f"adjusted_{k}": v for k, v in metrics.summary(y, adjusted).items()})
    return scores


def epoch_row(epoch, lr, seconds, train_loss, train_acc, val_loss, val_summary) -> dict:
    row = {"epoch": epoch, "lr": lr, "train_loss": train_loss, "train_accuracy": train_acc, "val_loss": val_loss}
    row.update({f"val_{k}": v for k, v in val_summary.items()})
    row["gap_loss"] = train_loss - val_loss  # train minus val
    row["gap_accuracy"] = train_acc - row["val_accuracy"]
    row["seconds"] = round(seconds, 3)
    return row


def train(recipe: Recipe, out: str | Path, reporter=None) -> RunResult:
    """Train one run as the recipe says and write everything to ``out``."""
    reporter = reporter or Silent()
    if recipe.data.source == "test_folder":
        raise UserError("data.source: test_folder is unlabelled; train on image_folder, cifar, tiny_imagenet or digits")
    device = pick_device(recipe.train.device)
    amp = autocast(device, recipe.train.amp)
    generator = seed_everything(recipe.train.seed)

    full = data_sources.load(recipe.data, "train")
    if recipe.evaluate.logit_adjustment is not None and (full.multilabel or recipe.loss.name in SIGMOID_LOSSES):
        raise UserError(f"evaluate.logit_adjustment: needs single-label data and a softmax loss (loss.name={recipe.loss.name})")
    train_set, val_set = stratified_split(full, recipe.data.val_fraction, recipe.data.split_seed)
    classes, input_shape = full.classes, tuple(full.x.shape[1:])
    x_train, y_train = train_set.x.to(device), train_set.y.to(device)
    x_val, y_val = val_set.x.to(device), val_set.y.to(device)

    model = create_model(recipe.model, input_shape, len(classes))
    model.fit(train_set.x)
    model.to(device)
    counts = train_set.class_counts()
    loss_fn = create_loss(recipe.loss, counts).to(device)
    augment = BatchAugment(recipe.augment, counts, input_shape, recipe.train.balanced_sampling, recipe.train.repeats).to(device)
    optimizer = Optimizer(recipe.optim, model)
    steps_per_epoch = batches_in(augment.visits_per_epoch(train_set.y), recipe.train.batch_size)
    schedule = Schedule(recipe.schedule, optimizer.torch, recipe.train.epochs, steps_per_epoch)
    stopper = EarlyStopping(recipe.train.early_stopping)
    average = WeightAverage(model, recipe.train.ema_decay) if recipe.train.ema_decay else None
    evaluated = average.model if average else model  # what validation sees and checkpoints hold

    run = RunDir.create(out, recipe)
    meta = {"classes": classes, "input_shape": list(input_shape), "status": "running", "device": str(device),
            "n_train": len(train_set), "n_val": len(val_set)}  # fmt: skip
    run.write_json("meta.json", meta)
    reporter.start(run.path, len(train_set), len(val_set), str(device))

    history, status, batch = [], "completed", recipe.train.batch_size
    for epoch in range(1, recipe.train.epochs + 1):
        started = time.perf_counter()
        order, is_extra = augment.epoch(train_set.y, generator)
        reporter.epoch_start(epoch, recipe.train.epochs, batches_in(len(order), batch))
        lr = optimizer.lr
        train_loss, train_acc = train_epoch(
            model, x_train, y_train, len(classes), loss_fn, optimizer, schedule, augment, order, is_extra, batch, amp, reporter, average
        )
        if not math.isfinite(train_loss):
            status = "diverged"
            reporter.epoch_end({"epoch": epoch, "train_loss": train_loss, "seconds": time.perf_counter() - started}, "  diverged")
            break
        val_loss, val_probs = validate(evaluated, loss_fn, recipe.loss.name, x_val, y_val, recipe.train.eval_batch_size, amp)
        val_summary = metrics.summary(val_set.y.numpy(), val_probs)
        row = epoch_row(epoch, lr, time.perf_counter() - started, train_loss, train_acc, val_loss, val_summary)
        history.append(row)
        run.append_history(row)
        improved = stopper.update(epoch, row)
        if improved:
            run.save_checkpoint(evaluated, "best.pt")
        run.save_checkpoint(evaluated, "last.pt")
        reporter.epoch_end(row, "  *" if improved else "")
        schedule.step(row)
        if stopper.should_stop and epoch < recipe.train.epochs:
            status = "early_stopped"
            break

    final_checkpoint = "last.pt"  # after a divergence: the last finite epoch's weights
    if recipe.train.early_stopping.restore_best and stopper.best_epoch:
        final_checkpoint = "best.pt"
    if history and (final_checkpoint == "best.pt" or status == "diverged"):
        evaluated.load_state_dict(run.load_state(final_checkpoint))
    final = {"status": status, "epochs_run": len(history), "best_epoch": stopper.best_epoch,
             f"best_{stopper.monitor}": stopper.best_value}  # fmt: skip
    if history:
        val_loss, val_probs = validate(evaluated, loss_fn, recipe.loss.name, x_val, y_val, recipe.train.eval_batch_size, amp)
        final.update({"val_loss": val_loss, **metrics.detailed(val_set.y.numpy(), val_probs, classes)})
        run.write_predictions("val_predictions.csv", val_set.ids, classes, val_probs, val_set.y.numpy())
        if recipe.evaluate.logit_adjustment is not None:
            final.update(fit_logit_adjustment(run, recipe.evaluate.logit_adjustment, counts, val_probs, val_set))
    if history and recipe.evaluate.threshold == "tuned":
        final["val_mixtures"] = tune_thresholds(run, evaluated, recipe, val_set, len(classes), amp)
    run.write_json("metrics.json", final)
    run.write_json("meta.json", {**meta, "status": status, "final_checkpoint": final_checkpoint})
    reporter.finish(final, run.path, status)
    return RunResult(run.path, status, history, final)
