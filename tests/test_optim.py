"""The penalties and step constraints against their definitions, on a model small enough to do by hand."""

import torch
from torch import nn

from reglab.training.optim import Optimizer, penalized_parameters
from reglab.recipe import section


def tiny_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2), nn.Linear(2, 1))


def one_step(config):
    model = tiny_model()
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    optimizer = Optimizer(config, model)
    x = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.1, -1.0]])
    data_loss = model(x).pow(2).mean()
    grads = dict(zip(before, torch.autograd.grad(data_loss, list(model.parameters()))))
    optimizer.zero_grad()
    (model(x).pow(2).mean() + optimizer.penalty()).backward()
    optimizer.step()
    return before, grads, dict(model.named_parameters())


def test_l2_penalty_adds_2_lambda_w_to_the_gradient():
    lr, lam = 0.1, 0.05
    before, grads, after = one_step(section("optim", name="sgd", lr=lr, momentum=0.0, l2=lam))
    for name in ("0.weight", "2.weight"):
        assert torch.allclose(after[name], before[name] - lr * (grads[name] + 2 * lam * before[name]), atol=1e-6)
    for name in ("0.bias", "1.weight", "1.bias", "2.bias"):  # biases and batch norm untouched by the penalty
        assert torch.allclose(after[name], before[name] - lr * grads[name], atol=1e-6)


def test_decoupled_weight_decay_shrinks_weights_outside_the_gradient():
    lr, wd = 0.1, 0.05
    before, grads, after = one_step(section("optim", name="sgd", lr=lr, momentum=0.0, weight_decay=wd))
    for name in ("0.weight", "2.weight"):
        assert torch.allclose(after[name], before[name] * (1 - lr * wd) - lr * grads[name], atol=1e-6)
    for name in ("0.bias", "1.weight", "1.bias", "2.bias"):
        assert torch.allclose(after[name], before[name] - lr * grads[name], atol=1e-6)


def test_adamw_first_step_is_decay_then_sign_of_gradient():
    lr, wd = 0.01, 0.1
    before, grads, after = one_step(section("optim", name="adamw", lr=lr, weight_decay=wd))
    name = "0.weight"  # Adam's first step is lr * g / (|g| + eps) = lr * sign(g)
    expected = before[name] * (1 - lr * wd) - lr * grads[name] / (grads[name].abs() + 1e-8)
    assert torch.allclose(after[name], expected, atol=1e-6)


def test_penalize_selects_layer_kinds():
    model = tiny_model()
    penalized, free = penalized_parameters(model, ["norm", "bias"])
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in penalized) == ["0.bias", "1.bias", "1.weight", "2.bias"]
    assert sorted(names[id(p)] for p in free) == ["0.weight", "2.weight"]


def test_l1_penalty_adds_lambda_sign_w_to_the_gradient_and_sparsifies():
    lr, lam = 0.1, 0.05
    before, grads, after = one_step(section("optim", name="sgd", lr=lr, momentum=0.0, l1=lam))
    for name in ("0.weight", "2.weight"):
        assert torch.allclose(after[name], before[name] - lr * (grads[name] + lam * before[name].sign()), atol=1e-6)
    assert torch.allclose(after["0.bias"], before["0.bias"] - lr * grads["0.bias"], atol=1e-6)
    torch.manual_seed(0)  # a weight the data does not need shrinks towards 0 under L1, stays put without it
    for l1, far in ((0.0, True), (0.5, False)):
        w = nn.Linear(4, 1, bias=False)
        optimizer = Optimizer(section("optim", name="sgd", lr=0.05, momentum=0.0, l1=l1), w)
        x = torch.randn(64, 4)
        x[:, 3] = 0.0  # the fourth input carries nothing
        w.weight.data[0, 3] = 1.0
        for _ in range(100):
            optimizer.zero_grad()
            ((w(x) - x[:, :1]).pow(2).mean() + optimizer.penalty()).backward()
            optimizer.step()
        assert (abs(w.weight[0, 3].item()) > 0.5) == far


def test_clip_grad_norm_bounds_the_step():
    lr, bound = 1.0, 0.5
    before, grads, after = one_step(section("optim", name="sgd", lr=lr, momentum=0.0, clip_grad_norm=bound))
    norm = torch.sqrt(sum(g.pow(2).sum() for g in grads.values()))
    assert norm > bound  # the step would have been larger
    moved = torch.sqrt(sum((after[k] - before[k]).pow(2).sum() for k in before))
    assert abs(moved.item() - lr * bound) < 1e-5  # the same direction, scaled to the bound
    for k in before:
        assert torch.allclose(after[k] - before[k], -lr * grads[k] * bound / norm, atol=1e-6)


def test_max_norm_projects_each_units_incoming_weights_into_the_ball():
    model = tiny_model()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[3.0, 4.0, 0.0], [0.1, 0.2, 0.2]]))  # norms 5 and 0.3
    optimizer = Optimizer(section("optim", name="sgd", lr=1e-9, momentum=0.0, max_norm=1.0), model)
    optimizer.zero_grad()
    model(torch.ones(2, 3)).sum().backward()
    optimizer.step()
    assert torch.allclose(model[0].weight[0], torch.tensor([0.6, 0.8, 0.0]), atol=1e-5)  # scaled onto the sphere
    assert torch.allclose(model[0].weight[1], torch.tensor([0.1, 0.2, 0.2]), atol=1e-5)  # inside: untouched
    assert (model[2].weight.norm(dim=1) <= 1.0 + 1e-6).all()


def test_sam_steps_with_the_gradient_at_the_worst_nearby_weights():
    """One SGD step under SAM from w: w − lr·∇f(w + ρ·∇f(w)/‖∇f(w)‖), the perturbation undone
    (Foret et al. 2021); ASAM scales the perturbation by each weight's size (Kwon et al. 2021)."""
    import contextlib

    from reglab.training.learner import Learner
    from reglab.training.schedules import Schedule

    def f(w):
        return (w[0] - 1) ** 2 * 3 + torch.sin(2 * w[1]) + w[0] * w[1]

    def gradient(w):
        w = w.detach().clone().requires_grad_(True)
        return torch.autograd.grad(f(w), w)[0]

    class Point(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor([0.3, -0.7]))

        def forward(self, x):
            return self.w.expand(len(x), 2)

    lr, rho = 0.1, 0.2
    for adaptive in (False, True):
        model = Point()
        start = model.w.detach().clone()
        optimizer = Optimizer(section("optim", name="sgd", lr=lr, momentum=0.0, penalize=[], sam={"rho": rho, "adaptive": adaptive}), model)
        learner = Learner(model, lambda logits, targets: f(logits[0]), optimizer, Schedule(section("schedule"), optimizer.torch, 1, 1),
                          None, contextlib.nullcontext())  # fmt: skip
        learner.step(torch.zeros(1, 2), torch.zeros(1, 2))
        g = gradient(start)
        scale = start.abs() if adaptive else torch.ones(2)
        worst = start + rho * scale**2 * g / (scale * g).norm()
        assert torch.allclose(model.w.detach(), start - lr * gradient(worst), atol=1e-6)
        assert not torch.allclose(gradient(worst), g)  # a different gradient from plain SGD's


def test_sam_leaves_a_sharp_minimum_for_a_flat_one_where_sgd_stays():
    """A valley along x with two minima of equal loss, x = −1 and x = +1; across it a quadratic whose
    curvature 10^(1−x) is 100 at the first (sharp) and 1 at the second (flat). Mini-batch noise on
    the across-valley gradient, the same for both of SAM's passes. From x = −0.9, plain SGD settles
    in the sharp minimum; SAM's ascent probes the steep walls, and the gradient it takes there
    carries it along the valley into the flat one (Foret et al. 2021)."""
    import contextlib

    from reglab.training.learner import Learner
    from reglab.training.schedules import Schedule

    def f(w):
        return 0.25 * (w[0] ** 2 - 1) ** 2 + 0.5 * 10 ** (1 - w[0]) * w[1] ** 2

    class Point(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor([-0.9, 0.0]))

        def forward(self, x):
            return self.w.expand(len(x), 2)

    def end_of_descent(sam: bool, seed: int) -> float:
        torch.manual_seed(seed)
        model = Point()
        optimizer = Optimizer(section("optim", name="sgd", lr=0.005, momentum=0.0, penalize=[], **({"sam": {"rho": 0.15}} if sam else {})), model)
        loss = lambda out, noise: f(out[0]) + noise[0, 0] * out[0, 1]  # noqa: E731  (a mini-batch's loss: the valley plus its noise)
        learner = Learner(model, loss, optimizer, Schedule(section("schedule"), optimizer.torch, 1, 1), None, contextlib.nullcontext())
        for _ in range(1500):
            learner.step(torch.zeros(1, 2), torch.randn(1, 1))
        return float(model.w[0].detach())

    for seed in range(4):
        assert abs(end_of_descent(False, seed) - (-1.0)) < 0.05  # SGD: the sharp minimum
        assert abs(end_of_descent(True, seed) - 1.0) < 0.1  # SAM: the flat one
