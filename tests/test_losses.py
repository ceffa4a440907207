import math

import pytest
import torch
import torch.nn.functional as F

from reglab.training.losses import SigmoidLoss, SoftmaxLoss, class_weights
from reglab.recipe import section
from reglab.training.losses import create_loss


def batch(n=16, c=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g) * 3
    labels = torch.randint(0, c, (n,), generator=g)
    return logits, labels, F.one_hot(labels, c).float()


def test_focal_with_gamma_0_alpha_1_is_cross_entropy():
    logits, labels, targets = batch()
    focal = create_loss(section("loss", name="focal", alpha=1.0, gamma=0.0), torch.ones(5))
    assert torch.allclose(focal(logits, targets), F.cross_entropy(logits, labels), atol=1e-6)


def test_focal_down_weights_easy_examples_by_hand():
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    targets = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    p = torch.softmax(logits, 1)[:, 0]
    expected = (0.25 * (1 - p) ** 2 * -torch.log(p)).mean()
    assert torch.allclose(SoftmaxLoss(alpha=0.25, gamma=2.0)(logits, targets), expected)


def test_class_weights_scale_each_sample_keras_style():
    logits, labels, targets = batch()
    weight = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    expected = (F.cross_entropy(logits, labels, reduction="none") * weight[labels]).mean()
    assert torch.allclose(SoftmaxLoss(weight)(logits, targets), expected)


def test_label_smoothing_matches_torch():
    logits, labels, targets = batch()
    assert torch.allclose(SoftmaxLoss(label_smoothing=0.1)(logits, targets), F.cross_entropy(logits, labels, label_smoothing=0.1))


def test_inverse_frequency_weights_are_sklearn_balanced():
    counts = torch.tensor([10, 30, 60])
    weights = class_weights("inverse_frequency", counts)
    assert torch.allclose(weights, torch.tensor([100 / 30, 100 / 90, 100 / 180]))
    assert torch.allclose((weights * counts).sum(), torch.tensor(100.0))  # total weight is preserved


def test_bce_with_pos_weight_by_hand():
    logits = torch.tensor([[0.0, 1.0]])
    targets = torch.tensor([[1.0, 0.0]])
    loss = SigmoidLoss(pos_weight=torch.tensor([3.0, 1.0]))(logits, targets)
    expected = (3.0 * -torch.log(torch.sigmoid(torch.tensor(0.0))) - torch.log(1 - torch.sigmoid(torch.tensor(1.0)))) / 2
    assert torch.allclose(loss, expected)


def test_effective_number_weights_follow_cui_et_al():
    counts = torch.tensor([10, 100, 1000])
    beta = 0.99
    raw = torch.tensor([(1 - beta) / (1 - beta**n) for n in (10, 100, 1000)])
    weights = class_weights("effective_number", counts, beta)
    assert torch.allclose(weights, raw * 3 / raw.sum())
    assert weights[0] > weights[1] > weights[2]


def test_logit_adjusted_loss_adds_tau_log_prior_to_the_logits():
    logits, labels, targets = batch(c=3)
    counts = torch.tensor([60, 30, 10])
    loss = create_loss(section("loss", name="cross_entropy", logit_adjustment=1.5), counts)
    shifted = logits + 1.5 * torch.log(counts / 100.0)
    assert torch.allclose(loss(logits, targets), F.cross_entropy(shifted, labels), atol=1e-6)


def test_view_consistency_is_the_jensen_shannon_divergence_of_the_two_halves():
    """Identical views cost nothing; opposite certain predictions cost log 2 per class (sigmoid)
    or per sample (softmax), the divergence's bound; it is symmetric and scales with its weight."""
    from reglab.training.losses import ViewConsistency, js_divergence

    for sigmoid in (True, False):
        same = torch.tensor([[2.0, -1.0], [0.5, 0.3]]).repeat(2, 1)
        assert ViewConsistency(3.0, sigmoid)(same).item() == pytest.approx(0.0, abs=1e-6)
        certain = torch.tensor([[30.0, -30.0]])
        assert js_divergence(certain, -certain, sigmoid).item() == pytest.approx(math.log(2), rel=1e-4)
        a, b = torch.randn(2, 8, 5, generator=torch.Generator().manual_seed(1))
        assert js_divergence(a, b, sigmoid).item() == pytest.approx(js_divergence(b, a, sigmoid).item()) and js_divergence(a, b, sigmoid) > 0
        assert ViewConsistency(3.0, sigmoid)(torch.cat([a, b])).item() == pytest.approx(3.0 * js_divergence(a, b, sigmoid).item())
