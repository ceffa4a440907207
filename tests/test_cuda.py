"""The CUDA path, for a machine with a GPU (``benchmarks/cuda_check.py`` runs these first; on a
CPU-only machine they are skipped): bfloat16 autocast, fused optimizers, channels-last, compiled
training, the stack's member-by-member equivalence and prediction on the device."""

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

DIGITS = ["data.source=digits", "train.batch_size=64"]


def recipe(*overrides):
    from reglab.recipe import load_recipe

    return load_recipe(None, [*DIGITS, *overrides])


def test_a_run_trains_on_the_gpu_in_bf16_with_fused_steps_and_channels_last(tmp_path):
    from reglab.training.run import Trainee, train

    chosen = recipe("model={name: resnet18, width: 0.125}", "train.epochs=2")
    trainee = Trainee.start(chosen, tmp_path / "look")
    model, optimizer = trainee.learner.model, trainee.learner.optimizer.torch
    assert next(model.parameters()).device.type == "cuda"
    assert optimizer.defaults["fused"] is True
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert trainee.learner.amp.fast_dtype == torch.bfloat16  # train.amp auto: bfloat16 on CUDA
    result = train(chosen, tmp_path / "run")
    assert result.metrics["accuracy"] > 0.5 and all(np.isfinite(row["val_loss"]) for row in result.history)


def test_compiled_training_on_the_gpu_learns(tmp_path):
    from reglab.training.run import train

    result = train(recipe("model={name: instrunet, width: 0.25}", "train.epochs=2", "train.compile=true"), tmp_path / "run")
    assert result.metrics["accuracy"] > 0.5


def test_a_stack_on_the_gpu_ends_where_its_members_own_runs_end(tmp_path):
    from reglab.training.run import train
    from reglab.training.stack import train_stack

    members = [recipe("model={name: linear}", "train.epochs=3", f"train.seed={seed}", "train.amp=off") for seed in (0, 1)]
    stacked = train_stack(members, [tmp_path / f"stack{seed}" for seed in (0, 1)])
    for seed, result in enumerate(stacked):
        alone = train(members[seed], tmp_path / f"alone{seed}")
        assert [row["val_loss"] for row in result.history] == pytest.approx([row["val_loss"] for row in alone.history], abs=1e-4)


def test_predictions_on_the_gpu_match_the_cpus(tmp_path):
    from reglab.inference.trained_run import TrainedRun
    from reglab.training.run import train

    train(recipe("model={name: alexnet_like, width: 0.25}", "train.epochs=1", "train.amp=off"), tmp_path / "run")
    on_gpu, on_cpu = TrainedRun(tmp_path / "run", "cuda"), TrainedRun(tmp_path / "run", "cpu")
    x = np.random.default_rng(0).integers(0, 255, (16, *on_cpu.meta["input_shape"]), dtype=np.uint8)
    assert np.allclose(on_gpu.predict(x), on_cpu.predict(x), atol=1e-4)
