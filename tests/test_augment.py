import csv
import types

import numpy as np
import pytest
import torch
from scipy import stats

from reglab.augment import BatchContext, BatchOps, EpochPlanner
from reglab.augment.image import ColorJitter, HorizontalFlip
from reglab.augment.mix import Mix, per_class_probability
from reglab.augment.multicrop import MinorityCrop, MinorityViews
from reglab.augment.sampling import epoch_order
from reglab.errors import UserError
from reglab.inference.trained_run import TrainedRun
from reglab.recipe import AugmentConfig, MixConfig, MulticropConfig, load_recipe, section
from reglab.training.run import train


def constant_batch(n=8, size=16):
    """Sample i is an image filled with the value i, so every pixel says where it came from."""
    return torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, size, size).clone()


def test_mixup_targets_sum_to_one_and_lambda_is_beta_distributed():
    torch.manual_seed(0)
    mix = Mix(MixConfig(mixup_alpha=0.4), BatchContext(torch.ones(4), (3, 16, 16)))
    lambdas = []
    for _ in range(1500):
        x = constant_batch(2)
        targets = torch.eye(4)[[0, 1]]
        mixed_x, mixed_t = mix(x, targets)
        assert torch.allclose(mixed_t.sum(1), torch.ones(2))
        if not torch.equal(mixed_x, x):  # mixed with the other sample: pixel = (1 - λ) * 1 for sample 0
            lam = float(mixed_t[0, 0])
            assert float(mixed_x[0, 0, 0, 0]) == pytest.approx(1 - lam, abs=1e-6)
            lambdas.append(lam)
    assert len(lambdas) > 500
    assert stats.kstest(lambdas, stats.beta(0.4, 0.4).cdf).pvalue > 0.01


def test_cutmix_lambda_is_the_pasted_area():
    torch.manual_seed(1)
    mix = Mix(MixConfig(cutmix_alpha=1.0), BatchContext(torch.ones(8), (3, 16, 16)))
    for _ in range(50):
        x, targets = constant_batch(8), torch.eye(8)
        mixed_x, mixed_t = mix(x, targets)
        for i in range(8):
            own = float(mixed_t[i, i]) if mixed_t[i].max() < 1 else 1.0
            kept = float((mixed_x[i, 0] == i).float().mean())
            assert kept == pytest.approx(own, abs=1e-6)


def test_per_class_probability_is_the_formula():
    counts = torch.tensor([280, 100, 10, 55])
    p = per_class_probability(counts, 0.3, 0.7)
    expected = [0.3 + 0.4 * (1 - (n - 10) / 270) for n in counts.tolist()]
    assert torch.allclose(p, torch.tensor(expected))
    mix = Mix(MixConfig(mixup_alpha=1.0, per_class={"p_min": 0.3, "p_max": 0.7}), BatchContext(counts, (3, 16, 16)))
    targets = torch.eye(4)[[0, 2, 2, 3]]
    assert torch.allclose(mix.sample_probability(targets), torch.tensor([expected[i] for i in (0, 2, 2, 3)]))


def realized_mixing_rates(decide: str, counts: torch.Tensor, batches: int = 3000, batch_size: int = 64) -> torch.Tensor:
    """How often each class's samples were mixed, over balanced batches drawn like the longtail
    recipe's (every class equally often)."""
    torch.manual_seed(0)
    mix = Mix(MixConfig(mixup_alpha=0.2, per_class={"p_min": 0.1, "p_max": 0.5, "decide": decide}), BatchContext(counts, (3, 16, 16)))
    n_classes = len(counts)
    mixed, seen = torch.zeros(n_classes), torch.zeros(n_classes)
    for _ in range(batches):
        labels = torch.randint(0, n_classes, (batch_size,))
        chosen = mix.decide(torch.eye(n_classes)[labels]).float()
        mixed += torch.bincount(labels, weights=chosen, minlength=n_classes)
        seen += torch.bincount(labels, minlength=n_classes)
    return mixed / seen


def test_per_sample_mixing_realizes_each_class_probability():
    counts = torch.tensor([280, 200, 120, 60, 30, 10])  # the rarest class last
    per_sample = realized_mixing_rates("sample", counts)
    assert per_sample[-1] == pytest.approx(0.5, abs=0.02) and per_sample[0] == pytest.approx(0.1, abs=0.02)
    # the painter study's batch-level rule: with balanced batches every class is mixed about equally often
    per_batch = realized_mixing_rates("batch", counts)
    assert float(per_batch.max() - per_batch.min()) < 0.05


def test_per_sample_mixing_leaves_unchosen_samples_untouched():
    torch.manual_seed(1)
    counts = torch.tensor([100, 10])
    mix = Mix(MixConfig(mixup_alpha=1.0, per_class={"p_min": 0.0, "p_max": 1.0}), BatchContext(counts, (3, 16, 16)))  # class 1 always, class 0 never
    x, targets = constant_batch(8), torch.eye(2)[[0, 1] * 4]
    mixed_x, mixed_t = mix(x, targets)
    common = torch.arange(8) % 2 == 0
    assert torch.equal(mixed_x[common], x[common]) and torch.equal(mixed_t[common], targets[common])
    assert torch.allclose(mixed_t.sum(1), torch.ones(8))


def test_multicrop_adds_views_only_for_classes_under_the_threshold():
    labels = torch.tensor([0] * 30 + [1] * 5 + [2] * 3)
    counts = torch.bincount(labels)
    views = MinorityViews(MulticropConfig(below=10, views=3), counts)
    order, is_extra = views.expand(torch.randperm(38), labels, torch.Generator().manual_seed(0))
    visits = torch.bincount(order, minlength=38)
    assert visits[:30].tolist() == [1] * 30 and visits[30:].tolist() == [4] * 8
    assert int(is_extra.sum()) == 3 * 8 and bool(torch.all(labels[order[is_extra]] > 0))


def stretch_of_crops(ratio, n=64, size=32):
    """Width over height of the regions ``n`` multicrop views took, read from an image whose pixel
    values are their own coordinates (channel 0 the column, channel 1 the row)."""
    torch.manual_seed(0)
    columns, rows = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="xy")
    image = torch.stack([columns, rows, rows]).expand(n, 3, size, size)
    crop = MinorityCrop(MulticropConfig(below=10, scale=(0.3, 0.6), ratio=ratio), BatchContext(torch.tensor([1]), (3, size, size)))
    crops = crop(image, None, torch.ones(n, dtype=torch.bool))[0][..., 2:-2, 2:-2]
    per_column = (crops[:, 0, :, 1:] - crops[:, 0, :, :-1]).mean(dim=(1, 2))
    per_row = (crops[:, 1, 1:, :] - crops[:, 1, :-1, :]).mean(dim=(1, 2))
    return per_column / per_row


def test_multicrop_with_ratio_one_keeps_shapes_unstretched():
    """A horizontally condensed typeface stays condensed with ``ratio: [1, 1]``; the default range
    stretches crops by up to 4/3 either way."""
    assert torch.allclose(stretch_of_crops((1.0, 1.0)), torch.ones(64), atol=0.02)
    default = stretch_of_crops(MulticropConfig().ratio)
    assert float(default.max()) > 1.1 and float(default.min()) < 0.9


def test_epoch_length_is_fixed_with_balanced_sampling_multicrop_and_repeats():
    labels = torch.tensor([0] * 30 + [1] * 5 + [2] * 3)
    config = AugmentConfig(multicrop={"below": 10, "views": 2})
    planner = EpochPlanner(torch.bincount(labels), balanced_power=1.0, repeats=2, multicrop=config.multicrop)
    generator = torch.Generator().manual_seed(0)
    lengths = {len(planner.epoch(labels, generator).order) for _ in range(20)}
    assert lengths == {planner.visits_per_epoch(labels)} == {38 * 2 + 8 * 2 * 2}


def test_balanced_sampler_class_frequencies_converge_to_uniform():
    labels = torch.tensor([0] * 280 + [1] * 40 + [2] * 10)
    generator = torch.Generator().manual_seed(0)
    drawn = torch.cat([epoch_order(labels, 3, 1.0, generator) for _ in range(200)])
    share = torch.bincount(labels[drawn], minlength=3).float() / len(drawn)
    assert torch.allclose(share, torch.full((3,), 1 / 3), atol=0.01)
    plain = epoch_order(labels, 3, 0.0, generator)
    assert sorted(plain.tolist()) == list(range(330))  # power 0: a permutation


def test_flip_with_probability_one_mirrors_every_image():
    flip = HorizontalFlip(1.0, BatchContext(torch.ones(2), (3, 4, 4)))
    x = torch.rand(5, 3, 4, 4)
    assert torch.equal(flip(x, None, None)[0], x.flip(-1))


def test_hue_on_grey_images_is_a_user_error():
    with pytest.raises(UserError, match="augment.color_jitter"):
        ColorJitter(AugmentConfig(color_jitter={"hue": 0.1}).color_jitter, BatchContext(torch.ones(2), (1, 8, 8)))


def test_full_stack_keeps_shape_and_range():
    config = AugmentConfig(hflip=0.5, resized_crop={}, translate={}, rotation={}, erasing={},
                           color_jitter={"brightness": 0.4, "contrast": [0.8, 1.2], "saturation": [0.7, 1.3]},
                           mix={"mixup_alpha": 0.2, "cutmix_alpha": 1.0})  # fmt: skip
    augment = BatchOps(config, torch.tensor([10, 20]), (3, 16, 16))
    x = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8)
    out, targets = augment(x, torch.eye(2)[[0, 1, 0, 1, 0, 1]], torch.zeros(6, dtype=torch.bool))
    assert out.shape == (6, 3, 16, 16) and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert torch.allclose(targets.sum(1), torch.ones(6))


def test_augmentation_never_touches_evaluation_data(tmp_path, image_tree):
    recipe = load_recipe(None, [
        "data.source=image_folder", f"data.path={image_tree}", "data.val_fraction=0.3", "model.name=linear",
        "train.epochs=2", "train.batch_size=8", "augment.hflip=1.0", "augment.erasing.p=1.0",
        "augment.color_jitter.brightness=0.5", "augment.mix.mixup_alpha=1.0",
    ])  # fmt: skip
    train(recipe, tmp_path / "run")
    trained = TrainedRun(tmp_path / "run")
    rows = list(csv.DictReader((tmp_path / "run" / "val_predictions.csv").open()))
    ids = [r["id"] for r in rows]
    images = trained.load(image_tree, "image_folder")
    picked = [images.ids.index(i) for i in ids]
    clean = trained.probabilities(images.subset(torch.tensor(picked)))
    saved = np.array([[float(r[f"p_{c}"]) for c in trained.classes] for r in rows])
    assert np.allclose(clean, saved, atol=1e-5)


def test_repeats_visit_every_sample_that_many_times_an_epoch():
    labels = torch.tensor([0] * 6 + [1] * 4)
    plan = EpochPlanner(torch.bincount(labels), repeats=3).epoch(labels, torch.Generator().manual_seed(0))
    assert torch.bincount(plan.order, minlength=10).tolist() == [3] * 10 and not bool(plan.is_extra.any())


def test_randaugment_and_trivialaugment_draw_operations_uniformly_per_sample_and_magnitude_grows_the_change():
    from reglab.augment.autoaugment import OPERATIONS, RandAugment, TrivialAugment, apply_drawn, draw

    torch.manual_seed(0)
    counts = torch.bincount(draw(14000, "cpu"), minlength=len(OPERATIONS))
    assert stats.chisquare(counts.numpy()).pvalue > 0.01  # each sample's operation uniform over the 14
    x = torch.rand(6, 3, 16, 16)
    for index in range(len(OPERATIONS)):  # every operation runs on a batch and keeps the image range
        out = apply_drawn(x, torch.full((6,), index), torch.full((6,), 0.5))
        assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    images = torch.rand(512, 3, 16, 16)
    changes = []
    for m in (0, 5, 10, 20, 30):
        torch.manual_seed(1)  # the same operations and signs drawn at each magnitude
        out, _ = RandAugment(types.SimpleNamespace(n=1, m=m), BatchContext(torch.ones(3), (3, 16, 16)))(images, None, None)
        changes.append((out - images).abs().mean().item())
    assert all(a < b for a, b in zip(changes, changes[1:])), changes  # a larger magnitude changes the images more
    torch.manual_seed(2)
    trivial, _ = TrivialAugment(True, BatchContext(torch.ones(3), (3, 16, 16)))(images, None, None)
    assert changes[0] < (trivial - images).abs().mean().item() < changes[-1]  # magnitudes drawn from 0 to 30
    with pytest.raises(UserError, match="augment.randaugment: acts on images"):
        RandAugment(types.SimpleNamespace(n=1, m=9), BatchContext(torch.ones(3), (1, 64, 100), section("data", source="irmas", path="x")))


def test_minority_operations_touch_only_the_rare_classes_samples():
    from reglab.augment.image import MinorityOnly
    from reglab.recipe import MinorityConfig

    config = MinorityConfig(below=10, ops={"rotation": {"degrees": 30.0}, "color_jitter": {"brightness": 0.5}})
    op = MinorityOnly(config, BatchContext(torch.tensor([100, 5, 50]), (3, 16, 16)))
    torch.manual_seed(0)
    x = torch.rand(60, 3, 16, 16)
    labels = torch.arange(60) % 3
    out, targets = op(x, torch.eye(3)[labels], torch.zeros(60, dtype=torch.bool))
    changed = (out - x).abs().flatten(1).amax(1) > 1e-6
    assert torch.equal(changed, labels == 1)  # every sample of the rare class, no other
    assert torch.equal(targets, torch.eye(3)[labels])
    recipe = load_recipe(None, ["augment.minority={below: 40, ops: {rotation: {degrees: 15}}}"])
    assert BatchOps(recipe.augment, torch.tensor([100, 5]), (3, 16, 16)).ops[0].__class__ is MinorityOnly
