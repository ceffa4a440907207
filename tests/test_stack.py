"""k seeds trained as one vectorized network (``reglab.training.stack``): each member ends where its own
run ends, and nothing couples the members."""

import pytest
import torch

from reglab.recipe import load_recipe
from reglab.training.stack import train_stack
from reglab.training.run import train

from .conftest import write_image_folder

MODELS = {
    "linear": "{name: linear}",
    "alexnet_like": "{name: alexnet_like, width: 0.25, lrn: true}",
    "resnet18": "{name: resnet18, width: 0.25}",
    "instrunet": "{name: instrunet, width: 0.25}",
}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """3 classes of 40 noisy 16x16 images (no flat regions: a tie, as in a ReLU or max-pool over
    equal values, would let float rounding pick different branches)."""
    return write_image_folder(tmp_path_factory.mktemp("stack") / "images", {f"c{k}": 40 for k in range(3)}, "{i:02d}.png", (16, 16))


@pytest.fixture
def float64():
    """Members and their own runs compared in float64: a grouped convolution rounds otherwise than
    k separate ones, and a few steps of SGD on a batch-norm network amplify float32 rounding to
    visible differences; in float64 the two agree to the last bits they are compared at."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def recipe(images, model: str, seed: int, *extra: str):
    return load_recipe(None, [
        f"data={{source: image_folder, path: {images}}}", f"model={model}", "optim={name: sgd, lr: 0.05, momentum: 0.9}",
        "train.epochs=5", "train.batch_size=24", f"train.seed={seed}",  # 96 training images: 4 steps an epoch, 20 in all
        "augment={hflip: 0.5, translate: {fraction: 0.1}, mix: {mixup_alpha: 0.2, cutmix_alpha: 1.0}}", *extra,
    ])  # fmt: skip


def weights(run) -> dict:
    return torch.load(run / "last.pt", weights_only=True)


@pytest.mark.parametrize("name", list(MODELS))
def test_each_member_ends_where_its_own_run_ends(images, tmp_path, float64, name):
    extra = ["schedule={name: plateau, monitor: val_loss, patience: 0, factor: 0.5}", "train.ema_decay=0.8"]
    if name != "linear":
        extra.append("train.early_stopping={monitor: val_loss, patience: 1, restore_best: true}")
    recipes = [recipe(images, MODELS[name], seed, *extra) for seed in (0, 1, 2)]
    stacked = train_stack(recipes, [tmp_path / f"member{seed}" for seed in (0, 1, 2)])
    for seed, member in enumerate(stacked):
        own = train(recipes[seed], tmp_path / f"own{seed}")
        assert member.status == own.status and len(member.history) == len(own.history)
        for a, b in zip(member.history, own.history):
            assert a["lr"] == b["lr"] and a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-9)
        mine, theirs = weights(member.path), weights(own.path)
        assert all(torch.allclose(mine[key].double(), theirs[key].double(), atol=1e-9) for key in theirs)
    first, second = weights(stacked[0].path), weights(stacked[1].path)
    assert max(float((first[k].double() - second[k].double()).abs().max()) for k in first) > 0.05  # members are seeds of their own


def test_a_float32_stack_step_matches_its_own_runs_to_float_tolerance(images, tmp_path):
    """One step in float32 (over more steps SGD amplifies the convolutions' rounding, as above)."""
    recipes = [recipe(images, MODELS["alexnet_like"], seed, "train.epochs=1", "train.batch_size=96", "train.amp=off") for seed in (0, 1)]
    stacked = train_stack(recipes, [tmp_path / "m0", tmp_path / "m1"])
    for seed, member in enumerate(stacked):
        mine, theirs = weights(member.path), weights(train(recipes[seed], tmp_path / f"own{seed}").path)
        assert all(torch.allclose(mine[key], theirs[key], atol=1e-5) for key in theirs)


def test_members_draw_their_own_dropout_masks(images, tmp_path):
    """Two members with the same seed: identical without dropout, apart with it."""
    for rate in (0.0, 0.5):
        model = f"{{name: alexnet_like, width: 0.25, dropout: {{rate: {rate}, where: head}}}}"
        recipes = [recipe(images, model, 0, "train.epochs=1", "optim={name: sgd, lr: 0.01}")] * 2
        twins = train_stack(recipes, [tmp_path / f"{rate}-a", tmp_path / f"{rate}-b"])
        a, b = weights(twins[0].path), weights(twins[1].path)
        apart = max(float((a[k] - b[k]).abs().max()) for k in a)
        assert apart < 1e-6 if rate == 0.0 else apart > 1e-3
