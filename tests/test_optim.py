"""The two penalties against their definitions, on a model small enough to do by hand."""

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
