"""One run: recipe in, run directory out. ``Trainee`` is a run's state around its epochs (start or
resume, validation, checkpoints, early stopping, the final metrics); the steps of an epoch are
``epoch.run_epoch``'s, the same for one run and for a stack (``stack.py``)."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from .. import metrics
from ..augment import BatchOps, EpochPlan, EpochPlanner
from ..device import autocast, compiled, concrete_compile, pick_device, precision, seed_everything
from ..errors import UserError, first_line
from ..inference.calibration import fit_logit_adjustment, fit_thresholds
from ..inference.predictor import predict_logits, probabilities, targets_for
from ..models import check_input_size, create_model
from ..models.finetune import freeze, initialize
from ..models.folding import folded
from ..progress import Silent
from ..recipe import Recipe
from ..rundir import RunDir
from .callbacks import EarlyStopping
from .epoch import Member, batches_in, one_run, random_state, run_epoch, set_random_state
from .learner import Learner
from .losses import ViewConsistency, create_loss
from .optim import Optimizer
from .schedules import Schedule
from .split import Split
from .swa import StochasticWeightAverage
from .tracking import Tracking, check_available
from .weight_average import WeightAverage

@dataclass
class RunResult:
    path: Path
    status: str  # "completed", "early_stopped", "pruned" or "diverged"
    history: list[dict]
    metrics: dict


def validation_scores(model, loss_fn, sigmoid, x, y, batch_size, amp) -> tuple[float, np.ndarray]:
    """The validation loss and class probabilities of a (folded) model."""
    logits = predict_logits(model, x, batch_size, amp)
    loss = loss_fn(logits, targets_for(y, logits.shape[1])).item()
    return loss, probabilities(logits, sigmoid).cpu().numpy()


def predictor(model, recipe: Recipe, amp):
    """Features → probabilities, as ``evaluate`` computes them."""

    def predict(x: torch.Tensor) -> np.ndarray:
        return probabilities(predict_logits(model, x, recipe.train.eval_batch_size, amp), recipe.loss.sigmoid).cpu().numpy()

    return predict


def epoch_row(epoch, lr, seconds, train_loss, train_acc, train_penalty, val_loss, val_summary, mix_summary) -> dict:
    row = {"epoch": epoch, "lr": lr, "train_loss": train_loss, "train_accuracy": train_acc, "train_penalty": train_penalty,
           "train_cost": train_loss + train_penalty, "val_loss": val_loss}  # fmt: skip
    row.update({f"val_{k}": v for k, v in val_summary.items()})
    row.update({f"val_mix_{k}": mix_summary[k] for k in ("micro_f1", "macro_f1") if mix_summary})
    row["gap_loss"] = train_loss - val_loss  # train minus val
    row["gap_accuracy"] = train_acc - row["val_accuracy"]
    row["seconds"] = round(seconds, 3)
    return row


def start_weights(model, config, resume: bool) -> list[str]:
    """``model.init``'s weights (what did not fit is listed on stderr and returned; a resumed run
    has its own) and ``model.freeze``."""
    left_out = initialize(model, config.init) if config.init and not resume else []
    if left_out:
        print(f"reglab: warning: model.init: not loaded from {config.init.path}: {', '.join(left_out)}", file=sys.stderr)
    freeze(model, config.freeze)
    return left_out


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


@dataclass
class Trainee:
    """One run in training: its directory, learner, early stopping, random streams and history.
    ``begin_epoch`` and ``end_epoch`` frame each epoch's steps, whoever takes them (``train`` for
    one run, ``stack.train_stack`` for several seeds at once)."""

    recipe: Recipe
    run: RunDir
    split: Split
    learner: Learner
    stopper: EarlyStopping
    generator: torch.Generator  # the epoch order's stream
    planner: EpochPlanner
    augment: BatchOps
    reporter: Any
    history: list[dict]
    meta: dict
    tracking: Tracking
    status: str = "completed"
    started: float = 0.0
    steps: int = 0  # the current epoch's

    @classmethod
    def start(cls, recipe: Recipe, out, reporter=None, resume: bool = False, split: Optional[Split] = None,
              tags: Optional[dict] = None, stacked: bool = False) -> "Trainee":  # fmt: skip
        """Everything before the first epoch (or, with ``resume``, the run in ``out`` put back
        where its training state left it). ``tags``: what a tracker records the run as (a study's
        arm and seed, its parent MLflow run); ``stacked``: a member of a stack, which runs under
        vmap, uncompiled."""
        reporter = reporter or Silent()
        check_available(recipe)
        run = RunDir.reopen(out, recipe) if resume else RunDir.vacant(out)
        device = pick_device(recipe.train.device)
        amp = autocast(device, recipe.train.amp, recipe.model.name)
        generator = seed_everything(recipe.train.seed)
        split = split or Split.load(recipe, device)
        train_set, classes, input_shape = split.train_set, split.classes, split.input_shape

        model = create_model(recipe.model, input_shape, len(classes), recipe.data)
        check_input_size(model, recipe.model, input_shape)
        model.fit(train_set.x)
        left_out = start_weights(model, recipe.model, resume)
        model.to(device)
        counts = train_set.class_counts()
        planner = EpochPlanner(counts, recipe.train.balanced_sampling, recipe.train.repeats, recipe.augment.multicrop)
        augment = BatchOps(recipe.augment, counts, input_shape, recipe.data).to(device)
        optimizer = Optimizer(recipe.optim, model)
        visits = planner.visits_per_epoch(train_set.y)
        steps_per_epoch = batches_in(visits, recipe.train.batch_size)
        compiles = not stacked and concrete_compile(recipe.train.compile, device, recipe.model.name, visits * recipe.train.epochs)
        learner = Learner(
            model, create_loss(recipe.loss, counts).to(device), optimizer,
            Schedule(recipe.schedule, optimizer.torch, recipe.train.epochs, steps_per_epoch),
            WeightAverage(model, recipe.train.ema_decay) if recipe.train.ema_decay else None, amp,
            compiled(model, device) if compiles else None,
            StochasticWeightAverage(model, recipe.train.swa) if recipe.train.swa else None,
            consistency=ViewConsistency(recipe.data.consistency, recipe.loss.sigmoid) if recipe.data.consistency else None,
        )  # fmt: skip
        stopper = EarlyStopping(recipe.train.early_stopping)
        if not resume:
            run.start(recipe)

        saved, resumed_after = run.training_state() if resume else None, []
        if saved is not None:
            restore(run, saved, learner, stopper, generator)
            resumed_after = run.read_json("meta.json").get("resumed_after", []) + [saved["epoch"]]
        history = run.keep_history(saved["epoch"] if saved else 0)
        tracking = Tracking(recipe, run.path, tags, run.read_json("meta.json") if resume else None)
        meta = {"classes": classes, "input_shape": list(input_shape), "status": "running", "device": str(device),
                "precision": precision(device, recipe.train.amp, recipe.model.name), "compiled": compiles,
                "n_train": len(train_set), "n_val": len(split.val_set), "train_counts": dict(zip(classes, counts.tolist())),
                "resumed_after": resumed_after, **({"init_left_out": left_out} if recipe.model.init else {}), **tracking.state}  # fmt: skip
        run.write_json("meta.json", meta)
        reporter.start(run.path, len(train_set), len(split.val_set), f"{device} ({meta['precision']}{', compiled' if compiles else ''})")
        if history:
            reporter.resumed(history)
        return cls(recipe, run, split, learner, stopper, generator, planner, augment, reporter, history, meta, tracking)

    @property
    def epoch(self) -> int:
        """The next epoch's number."""
        return len(self.history) + 1

    @property
    def member(self) -> Member:
        """What the epoch's steps need of this run."""
        return Member(self.split.train_data, self.augment, self.learner, self.reporter)

    def wants_epoch(self) -> bool:
        """Whether another epoch runs: none past the last, after an early stop, a prune or a divergence."""
        if self.status != "completed" or self.epoch > self.recipe.train.epochs:
            return False
        if self.stopper.should_stop:
            self.status = "early_stopped"
        elif self.history and self.reporter.pruned():
            self.status = "pruned"
        return self.status == "completed"

    def begin_epoch(self) -> EpochPlan:
        self.started = time.perf_counter()
        swa = self.learner.swa
        if swa is not None and swa.applies(self.epoch):  # the averaging phase: a constant rate, no schedule
            swa.hold_rate(self.learner.optimizer.torch)
            self.learner.scheduled = False
        plan = self.planner.epoch(self.split.train_set.y, self.generator)
        self.steps, self.learner.penalties = batches_in(len(plan.order), self.recipe.train.batch_size), 0.0
        self.reporter.epoch_start(self.epoch, self.recipe.train.epochs, self.steps)
        return plan

    def end_epoch(self, lr: float, train_loss: float, train_acc: float) -> None:
        """Validate, record, checkpoint and save the training state after an epoch's steps taken
        at rate ``lr``; a non-finite training loss ends the run as diverged."""
        recipe, split, learner, epoch = self.recipe, self.split, self.learner, self.epoch
        evaluated = learner.evaluated
        inference = folded(evaluated)  # once for the validation split and the mixtures
        if math.isfinite(train_loss):
            val_loss, val_probs = validation_scores(inference, learner.loss_fn, recipe.loss.sigmoid, split.x_val, split.y_val, recipe.train.eval_batch_size, learner.amp)
        if not math.isfinite(train_loss) or not np.isfinite(val_probs).all():
            self.status = "diverged"
            self.reporter.epoch_end({"epoch": epoch, "train_loss": train_loss, "seconds": time.perf_counter() - self.started}, "  diverged")
            return
        val_summary = metrics.summary(split.val_set.y.numpy(), val_probs)
        mix_summary = split.mixtures.score(predictor(inference, recipe, learner.amp))[1] if split.mixtures else None
        penalty = float(learner.penalties) / max(1, self.steps)  # one read an epoch
        row = epoch_row(epoch, lr, time.perf_counter() - self.started, train_loss, train_acc, penalty, val_loss, val_summary, mix_summary)
        self.history.append(row)
        self.run.append_history(row)
        self.tracking.epoch(row)
        improved = self.stopper.update(epoch, row)
        if improved:
            self.run.save_checkpoint(evaluated, "best.pt")
        self.run.save_checkpoint(evaluated, "last.pt")
        if learner.scheduled:
            learner.schedule.step(row)
        if learner.swa is not None and learner.swa.applies(epoch):
            learner.swa.collect()
        self.run.save_training_state({"epoch": epoch, "learner": learner.state_dict(), "stopper": self.stopper.state_dict(),
                                      "random": random_state(self.generator)})  # fmt: skip
        self.reporter.epoch_end(row, "  *" if improved else "")

    def finish(self) -> RunResult:
        """The final weights (the best epoch's when the recipe restores them), the final
        validation metrics, thresholds or logit adjustment, and the run marked finished."""
        recipe, split, learner, stopper, run = self.recipe, self.split, self.learner, self.stopper, self.run
        evaluated, history, classes = learner.evaluated, self.history, split.classes
        final_checkpoint = "last.pt"  # after a divergence: the last finite epoch's weights
        if recipe.train.early_stopping.restore_best and stopper.best_epoch:
            final_checkpoint = "best.pt"
        if history and (final_checkpoint == "best.pt" or self.status == "diverged"):
            evaluated.load_state_dict(run.load_state(final_checkpoint))
        elif learner.swa is not None and learner.swa.count:  # the average, with batch-norm statistics of its own
            learner.swa.finalize(split.train_data.x, recipe.train.eval_batch_size, learner.amp)
            final_checkpoint = "swa.pt"
            run.save_checkpoint(evaluated, final_checkpoint)
        inference = folded(evaluated)
        final = {"status": self.status, "epochs_run": len(history), "best_epoch": stopper.best_epoch,
                 f"best_{stopper.monitor}": stopper.best_value}  # fmt: skip
        if history:
            val_loss, val_probs = validation_scores(inference, learner.loss_fn, recipe.loss.sigmoid, split.x_val, split.y_val, recipe.train.eval_batch_size, learner.amp)
            final.update({"val_loss": val_loss, **metrics.detailed(split.val_set.y.numpy(), val_probs, classes)})
            run.write_predictions("val_predictions.csv", split.val_set.ids, classes, val_probs, split.val_set.y.numpy())
            if recipe.evaluate.logit_adjustment is not None:
                counts = split.train_set.class_counts()
                final.update(fit_logit_adjustment(run, recipe.evaluate.logit_adjustment, counts, val_probs, split.val_set))
        if history and recipe.evaluate.threshold == "tuned":
            final["val_mixtures"] = fit_thresholds(run, predictor(inference, recipe, learner.amp), split.mixtures, classes)
        run.write_json("metrics.json", final)
        run.write_json("meta.json", {**self.meta, "status": self.status, "final_checkpoint": final_checkpoint})
        run.finish_training()
        self.tracking.finish(run.path, self.status)
        self.reporter.finish(final, run.path, self.status)
        return RunResult(run.path, self.status, history, final)


def train(recipe: Recipe, out: str | Path, reporter=None, resume: bool = False, tags: Optional[dict] = None) -> RunResult:
    """Train one run as the recipe says and write everything to ``out``; with ``resume``, continue
    the unfinished run there from its last completed epoch, to the numbers it would have reached
    had it never stopped. ``tags``: for the trackers (``tracking.py``)."""
    trainee = Trainee.start(recipe, out, reporter, resume, tags=tags)
    step = one_run(trainee.learner)
    while trainee.wants_epoch():
        plan = trainee.begin_epoch()
        lr = trainee.learner.optimizer.lr
        ((train_loss, train_acc),) = run_epoch([trainee.member], [plan], recipe.train.batch_size, step)
        trainee.end_epoch(lr, train_loss, train_acc)
    return trainee.finish()
