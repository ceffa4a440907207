"""Fine-tuning: a run started from another run's weights (``model.init``), layers held fixed
(``model.freeze``) and layer-wise learning rates (``optim.lr_multipliers``)."""

import pickle

import pytest
import torch

from .conftest import run_cli, write_recipe

BASE = "data: {source: digits, image_size: 16, classes: 4}\nmodel: {name: alexnet_like, width: 0.25}\ntrain: {epochs: 1, batch_size: 64}\n"


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A run on four digit classes, whose ``best.pt`` the tests start from."""
    from reglab import api

    folder = tmp_path_factory.mktemp("pretrained")
    api.train(BASE, folder / "run", report=False)
    return torch.load(folder / "run" / "best.pt", weights_only=True), folder / "run" / "best.pt"


def started(tmp_path, recipe_text):
    """The model of a run as it starts (before its first epoch)."""
    from reglab import api
    from reglab.training.run import Trainee

    trainee = Trainee.start(api.load(recipe_text), tmp_path / "start")
    return trainee, {k: v.detach().clone() for k, v in trainee.learner.model.state_dict().items()}


def test_a_run_starts_at_the_other_runs_feature_weights_with_its_head_skipped(pretrained, tmp_path, capsys):
    saved, path = pretrained
    recipe = BASE.replace("classes: 4", "classes: 6") + f"\nmodel: {{name: alexnet_like, width: 0.25, init: {{path: '{path}', skip: [classifier.6]}}}}\n"
    _, state = started(tmp_path, recipe)
    features = [k for k in saved if k.startswith("net.features")]
    assert features and all(torch.equal(state[k], saved[k]) for k in features)  # tensor by tensor
    assert all(torch.equal(state[k], saved[k]) for k in ("net.classifier.1.weight", "net.classifier.4.weight"))
    assert state["net.classifier.6.weight"].shape[0] == 6  # the new head, freshly drawn


def test_frozen_layers_do_not_change_in_an_epoch_and_the_rest_does(pretrained, tmp_path, capsys):
    saved, path = pretrained
    recipe = write_recipe(tmp_path, BASE + f"model: {{name: alexnet_like, width: 0.25, init: {{path: '{path}'}}, freeze: [features]}}\n")
    code, _, err = run_cli(capsys, "train", recipe, "--out", tmp_path / "run", "--quiet")
    assert code == 0, err
    after = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert all(torch.equal(after[k], saved[k]) for k in saved if k.startswith("net.features"))
    assert not torch.equal(after["net.classifier.6.weight"], saved["net.classifier.6.weight"])


def test_layer_wise_rates_are_applied_to_their_layers(pretrained, tmp_path):
    _, path = pretrained
    recipe = BASE + (f"model: {{name: alexnet_like, width: 0.25, init: {{path: '{path}'}}}}\n"
                     "optim: {name: sgd, lr: 0.05, lr_multipliers: {features: 0.0, classifier.6: 3.0}}\n")  # fmt: skip
    trainee, before = started(tmp_path, recipe)
    rates = {id(p): group["lr"] for group in trainee.learner.optimizer.torch.param_groups for p in group["params"]}
    named = dict(trainee.learner.model.named_parameters())
    assert rates[id(named["net.features.0.weight"])] == 0.0
    assert rates[id(named["net.classifier.6.weight"])] == pytest.approx(0.15)
    assert rates[id(named["net.classifier.1.weight"])] == pytest.approx(0.05)
    from reglab.training.run import train

    train(trainee.recipe, tmp_path / "trained")
    after = torch.load(tmp_path / "trained" / "last.pt", weights_only=True)
    assert torch.equal(after["net.features.0.weight"], before["net.features.0.weight"])
    assert not torch.equal(after["net.classifier.1.weight"], before["net.classifier.1.weight"])


class Payload:
    def __reduce__(self):
        return (print, ("code ran from a weights file",))


@pytest.mark.parametrize("case", ["strict mismatch", "not a state_dict", "damaged", "hostile", "missing"])
def test_a_bad_weights_file_is_one_line_and_nothing_is_written(pretrained, tmp_path, capsys, case):
    _, path = pretrained
    weights = tmp_path / "weights.pt"
    if case == "strict mismatch":
        weights = path
    elif case == "not a state_dict":
        torch.save([torch.zeros(3)], weights)
    elif case == "damaged":
        weights.write_bytes(path.read_bytes()[:200])
    elif case == "hostile":
        weights.write_bytes(pickle.dumps({"net.features.0.weight": Payload()}))
    strict = "true" if case == "strict mismatch" else "false"
    recipe = write_recipe(tmp_path, BASE.replace("classes: 4", "classes: 6")
                          + f"model: {{name: alexnet_like, width: 0.25, init: {{path: '{weights}', strict: {strict}}}}}\n")  # fmt: skip
    code, out, err = run_cli(capsys, "train", recipe, "--out", tmp_path / "run", "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert str(weights) in err or "model.init" in err
    assert "code ran" not in out + err
    assert not (tmp_path / "run").exists()
