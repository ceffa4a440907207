import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reglab.errors import UserError
from reglab.inference.predictor import predict_logits
from reglab.models import MODELS, create_model
from reglab.models.folding import folded
from reglab.models.pcen import PCEN
from reglab.recipe import load_recipe, section


@pytest.mark.parametrize("name", MODELS.builtins())
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 64, 64)])
def test_every_model_takes_uint8_images_of_any_small_size(name, shape):
    model = create_model(section("model", name=name, **({} if name == "linear" else {"width": 0.25})), shape, 7)
    x = torch.randint(0, 256, (4, *shape), dtype=torch.uint8)
    assert model(x).shape == (4, 7)


def kinds(model):
    """The module classes in a model, each also under the torch class it extends."""
    return {base for m in model.modules() for base in type(m).__mro__}


def test_dropout_placement():
    head = create_model(section("model", name="alexnet_like", width=0.25, dropout={"rate": 0.5, "where": "head"}), (3, 64, 64), 5)
    blocks = create_model(section("model", name="resnet18", width=0.25, dropout={"rate": 0.5, "where": "blocks"}), (3, 32, 32), 5)
    assert nn.Dropout in kinds(head) and nn.Dropout2d not in kinds(head)
    assert nn.Dropout2d in kinds(blocks) and nn.Dropout not in kinds(blocks)
    assert sum(isinstance(m, nn.Dropout2d) for m in blocks.modules()) == 4  # one after each stage


def test_batch_norm_and_lrn_switches():
    assert nn.BatchNorm2d in kinds(create_model(section("model", name="resnet18", width=0.25), (3, 32, 32), 5))
    assert nn.BatchNorm2d not in kinds(create_model(section("model", name="resnet18", width=0.25, batch_norm=False), (3, 32, 32), 5))
    alexnet = create_model(section("model", name="alexnet_like", lrn=True), (3, 64, 64), 5)
    assert nn.BatchNorm2d not in kinds(alexnet)
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in alexnet.modules()) == 2


@pytest.mark.parametrize("name, options", [("resnet18", {"stem": "small"}), ("resnet18", {"stem": "standard"}), ("instrunet", {}), ("alexnet_like", {})])
def test_batch_norms_folded_for_inference_give_the_same_logits(name, options):
    torch.manual_seed(0)
    model = create_model(section("model", name=name, width=0.25, batch_norm=True, **options), (3, 32, 32), 5)
    for module in model.modules():  # statistics and affine parameters as training leaves them, far from the defaults
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1), module.running_var.uniform_(0.2, 3)
            nn.init.uniform_(module.weight, 0.5, 2), nn.init.uniform_(module.bias, -1, 1)
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    norms = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    inference = folded(model)
    assert nn.BatchNorm2d not in kinds(inference) and sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == norms
    with torch.no_grad():
        expected = model.eval()(x)
    assert torch.allclose(inference(x), expected, rtol=1e-4, atol=1e-4)
    assert torch.allclose(predict_logits(model, x, 5, torch.autocast("cpu", enabled=False)), expected, rtol=1e-4, atol=1e-4)
    assert model.training is False and model(x).requires_grad  # the model itself still trains


def test_alexnet_like_has_the_published_filter_counts():
    model = create_model(section("model", name="alexnet_like"), (3, 64, 64), 5)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 192, 384, 384, 256]
    assert [c.kernel_size[0] for c in convs] == [11, 5, 3, 3, 3]
    dense = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [d.out_features for d in dense] == [1024, 1024, 5]


def test_normalization_is_fitted_on_training_pixels_and_saved():
    model = create_model(section("model", name="linear"), (3, 4, 4), 2)
    x = torch.randint(0, 256, (50, 3, 4, 4), dtype=torch.uint8)
    model.fit(x)
    assert torch.allclose(model.mean.flatten(), (x.float() / 255).mean(dim=(0, 2, 3)))
    assert {"mean", "std"} <= set(model.state_dict())


AUDIO = section("data", source="irmas", path="clips", clip_seconds=1.0)  # 40 frames a second below


def audio_model(input_norm: str, x: torch.Tensor):
    model = create_model(section("model", name="instrunet", width=0.25, input_norm=input_norm), (1, 16, 40), 3, AUDIO).eval()
    model.fit(x)
    return model


@torch.no_grad()
def test_band_mean_and_pcen_inputs_ignore_a_fixed_equalization_and_level_that_per_band_sees():
    """A recording's fixed equalization or level change adds a constant to each log-mel row."""
    torch.manual_seed(0)
    x = torch.randn(8, 1, 16, 40) * 2 - 4
    tilt = torch.linspace(-2.0, 2.0, 16).view(1, 1, 16, 1) + 1.5  # a spectral tilt and a gain, in nepers
    models = {mode: audio_model(mode, x) for mode in ("per_band", "band_mean", "pcen")}
    moved = {mode: (model(x) - model(x + tilt)).abs().max() for mode, model in models.items()}
    assert moved["band_mean"] < 1e-4 and moved["pcen"] < 0.05 * moved["per_band"]
    band_mean = audio_model("band_mean", x)  # the spread of the centred rows, not of the rows as they come
    assert torch.allclose(band_mean.std.flatten(), (x - x.mean(3, keepdim=True)).std(dim=(0, 1, 3)), atol=1e-5)
    with pytest.raises(UserError, match="model.input_norm: pcen acts on log-mel features"):
        create_model(section("model", name="resnet18", input_norm="pcen"), (3, 32, 32), 3)


def test_pcen_is_librosas_recursion():
    """librosa.pcen: M = lfilter([b], [1, b - 1], E) started at steady state, then
    (E / (eps + M)^0.98 + 2)^0.5 - 2^0.5; b from a 0.4 s time constant."""
    signal = pytest.importorskip("scipy.signal")
    torch.manual_seed(1)
    log_mel = torch.randn(2, 1, 5, 60, dtype=torch.float64) * 3
    energy = log_mel.exp().numpy()
    b = PCEN(frame_rate=40.0).weight
    assert b == pytest.approx((math.sqrt(1 + 4 * 16.0**2) - 1) / (2 * 16.0**2))
    smooth, _ = signal.lfilter([b], [1, b - 1], energy, axis=-1, zi=signal.lfilter_zi([b], [1, b - 1]) * energy[..., :1])
    expected = (energy / (1e-6 + smooth) ** 0.98 + 2) ** 0.5 - 2**0.5
    assert torch.allclose(PCEN(frame_rate=40.0)(log_mel), torch.from_numpy(expected), rtol=1e-4, atol=1e-6)


def test_linear_weight_images():
    model = create_model(section("model", name="linear"), (3, 4, 4), 2)
    assert model.net.weight_images().shape == (2, 3, 4, 4)


@pytest.mark.parametrize("size, beta", [(3, 0.75), (4, 0.75), (5, 0.75), (5, 0.5), (5, 0.6)])
def test_local_response_norm_gives_torchs_values_and_gradients(size, beta):
    """AlexNet's β = 0.75 and 0.5 take square roots instead of a power: the same numbers either way."""
    from reglab.models.lrn import LocalResponseNorm

    torch.manual_seed(0)
    x = (torch.randn(2, 9, 4, 5, dtype=torch.double) * 3).contiguous(memory_format=torch.channels_last).requires_grad_()
    grad = torch.randn(2, 9, 4, 5, dtype=torch.double)
    for alpha in (1e-4, 0.5):
        reference, ours = torch.nn.LocalResponseNorm(size, alpha, beta, 2.0), LocalResponseNorm(size, alpha, beta, 2.0)
        expected, got = reference(x), ours(x)
        assert torch.allclose(got, expected, atol=1e-12)
        assert torch.allclose(torch.autograd.grad(got, x, grad)[0], torch.autograd.grad(expected, x, grad)[0], atol=1e-12)


def test_local_response_norm_under_bfloat16_autocast_keeps_the_dtype_and_float32_values():
    from reglab.models.lrn import LocalResponseNorm

    torch.manual_seed(0)
    x = (torch.randn(2, 9, 4, 5) * 3).contiguous(memory_format=torch.channels_last)
    low = x.bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = LocalResponseNorm(5, 0.5, 0.75, 2.0)(low)
    got.float().sum().backward()
    expected = torch.nn.LocalResponseNorm(5, 0.5, 0.75, 2.0)(low.detach().float())
    assert got.dtype == low.grad.dtype == torch.bfloat16
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(got.float(), expected, rtol=1e-2, atol=1e-2)  # bfloat16 keeps 8 bits of mantissa


def test_local_response_norm_compiles_without_warnings_to_the_same_values():
    """``train.compile`` on AlexNet-like: the cached band matrix is built inside the graph instead
    of dynamo tracing through the cache with a "silent incorrectness" warning on the console."""
    import warnings

    from reglab.models.lrn import LocalResponseNorm

    torch._dynamo.reset()
    x = (torch.randn(2, 9, 4, 5) * 3).contiguous(memory_format=torch.channels_last).requires_grad_()
    layer = LocalResponseNorm(5, 0.5, 0.75, 2.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = torch.compile(layer, dynamic=False, backend="aot_eager")(x)  # dynamo traces as under inductor; no C++ to build
        got.sum().backward()
    assert [str(w.message) for w in caught if issubclass(w.category, UserWarning)] == []
    assert torch.allclose(got, layer(x), atol=1e-5)


@pytest.mark.parametrize("shape", [(6, 8, 10, 14), (4, 5, 6, 6), (5, 3, 7, 9), (2, 8, 3, 5)])
def test_channels_last_batch_norm_gives_torchs_values_gradients_and_running_statistics(shape, monkeypatch):
    """The few-channel channels-last path (rows of g pixels, statistics pooled over them; an odd
    pixel count gives g = 1) is ``nn.BatchNorm2d`` to double precision, for three steps in a row."""
    from reglab.models import batchnorm
    from reglab.models.batchnorm import BatchNorm2d, takes_fast_path

    monkeypatch.setattr(batchnorm, "SMALLEST", 0)  # small maps, so that double precision stays quick
    torch.manual_seed(0)
    reference = nn.BatchNorm2d(shape[1]).double()
    with torch.no_grad():
        reference.weight.uniform_(0.5, 1.5), reference.bias.uniform_(-1, 1)
    ours = BatchNorm2d(shape[1]).double()
    ours.load_state_dict(reference.state_dict())
    for _ in range(3):
        x = (torch.randn(shape, dtype=torch.double) * 2 + 1.5).contiguous(memory_format=torch.channels_last).requires_grad_()
        grad = torch.randn(shape, dtype=torch.double)
        assert takes_fast_path(x)
        expected, got = reference(x), ours(x)
        assert got.is_contiguous(memory_format=torch.channels_last) and torch.allclose(got, expected, atol=1e-12)
        got_grads = torch.autograd.grad(got, (x, ours.weight, ours.bias), grad)
        for mine, theirs in zip(got_grads, torch.autograd.grad(expected, (x, reference.weight, reference.bias), grad)):
            assert torch.allclose(mine, theirs, atol=1e-10)
    for name, buffer in reference.named_buffers():
        assert torch.allclose(getattr(ours, name), buffer, atol=1e-12), name


def test_channels_last_batch_norm_under_bfloat16_autocast_keeps_the_dtype_and_float32_statistics():
    from reglab.models.batchnorm import BatchNorm2d, takes_fast_path

    torch.manual_seed(0)
    x = (torch.randn(32, 8, 32, 32) * 3 + 2).contiguous(memory_format=torch.channels_last)
    low = x.bfloat16().requires_grad_()
    assert takes_fast_path(low)
    ours, reference = BatchNorm2d(8), nn.BatchNorm2d(8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = ours(low)
    got.float().square().sum().backward()
    expected = reference(low.detach().float())
    assert got.dtype == low.grad.dtype == torch.bfloat16 and got.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(got.float(), expected, atol=2e-2)  # bfloat16 keeps 8 bits of mantissa
    assert torch.allclose(ours.running_mean, reference.running_mean, atol=1e-5)
    assert torch.allclose(ours.running_var, reference.running_var, rtol=1e-4)


def test_batch_norm_takes_the_native_kernel_where_it_is_the_fast_one():
    from reglab.models.batchnorm import takes_fast_path

    cl = lambda *shape: torch.randn(shape).contiguous(memory_format=torch.channels_last)
    assert takes_fast_path(cl(32, 8, 32, 32))
    assert not takes_fast_path(torch.randn(32, 8, 32, 32))  # NCHW: the native kernel reduces long rows already
    assert not takes_fast_path(cl(32, 64, 32, 32))  # enough channels to fill a vector
    assert not takes_fast_path(cl(4, 8, 6, 6))  # too small a map for the row path's extra ops to pay


def test_stochastic_depth_drops_branches_linearly_in_depth_and_never_at_evaluation():
    from reglab.models.layers import drop_path
    from reglab.models.resnet18 import BasicBlock

    model = create_model(section("model", name="resnet18", width=0.125, drop_path=0.4), (3, 16, 16), 3).net
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert [round(b.drop_path, 3) for b in blocks] == [round(0.4 * k / 8, 3) for k in range(1, 9)]  # Huang et al.'s linear rule
    torch.manual_seed(0)
    for block in (blocks[1], blocks[-1]):  # the share of samples whose branch is dropped
        block.train()
        branch = torch.ones(20000, 4, 2, 2)
        kept = drop_path(branch, block.drop_path, True)
        dropped = (kept.flatten(1).sum(1) == 0).float().mean().item()
        assert abs(dropped - block.drop_path) < 0.015
        assert abs(kept.mean().item() - 1.0) < 0.03  # kept branches scaled by 1/(1 − p): the expectation holds
    model.eval()
    x = torch.rand(4, 3, 16, 16)
    assert torch.equal(model(x), model(x))  # evaluation keeps every branch
    with pytest.raises(UserError, match="unknown key .model.drop_path. with model.name=alexnet_like; .*it applies with model.name=efficientnet_b0 or resnet18"):
        load_recipe(None, ["model.name=alexnet_like", "model.drop_path=0.2"])  # not a residual model


def test_dropblock_drops_its_share_in_whole_squares_and_nothing_at_evaluation():
    from reglab.models.layers import DropBlock

    corners = torch.zeros(1, 1, 14, 14)
    corners[0, 0, 4, 6] = 1.0
    square = DropBlock.covered(corners, 3)[0, 0]
    assert square.shape == (16, 16) and square.sum() == 9 and square[4:7, 6:9].eq(1).all()  # one corner, one 3x3 block
    torch.manual_seed(0)
    block = DropBlock(0.1, 3).train()
    out = block(torch.ones(64, 32, 16, 16))
    dropped = (out == 0).float().mean().item()
    assert 0.085 < dropped < 0.105  # the paper's γ: about p (overlapping blocks count once)
    assert abs(out.mean().item() - 1.0) < 1e-4  # the rest rescaled: the mean is kept
    zero = (out[:4] == 0).float()
    whole = (F.avg_pool2d(zero, 3, stride=1) > 1 - 1e-6).float()  # corners of all-zero 3x3 squares
    assert zero.sum() > 0 and torch.equal(DropBlock.covered(whole, 3), zero)  # every dropped unit lies in a whole square
    model = create_model(section("model", name="resnet18", width=0.125, dropblock={"p": 0.2, "block_size": 3}), (3, 32, 32), 3).net
    assert sum(isinstance(m, DropBlock) for m in model.modules()) == 2
    model.eval()
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(model(x), model(x))


def test_maxdropout_zeroes_each_samples_most_active_units_and_nothing_at_evaluation():
    from reglab.models.layers import MaxDropout

    x = torch.tensor([[0.0, 1.0, 2.0, 9.0, 10.0], [5.0, 4.0, 3.0, 2.0, 1.0]])
    out = MaxDropout(0.25).train()(x)  # per sample: normalized above 0.75 is zeroed
    assert torch.equal(out, torch.tensor([[0.0, 1.0, 2.0, 0.0, 0.0], [0.0, 4.0, 3.0, 2.0, 1.0]]))
    assert torch.equal(MaxDropout(0.25).eval()(x), x)
    head = create_model(section("model", name="linear", dropout={"rate": 0.3, "kind": "maxdropout"}), (1, 8, 8), 3).net
    assert any(isinstance(m, MaxDropout) for m in head.modules())


def test_efficientnet_b0_is_the_papers_network_and_folds_for_evaluation():
    from reglab.models.efficientnet import MBConv

    full = create_model(section("model", name="efficientnet_b0", stem="standard"), (3, 224, 224), 1000).net
    assert sum(p.numel() for p in full.parameters()) == 5_288_548  # torchvision's efficientnet_b0
    blocks = [m for m in full.modules() if isinstance(m, MBConv)]
    assert len(blocks) == 16 and abs(blocks[-1].drop_path - 0.2 * 15 / 16) < 1e-9  # stochastic depth, linear in depth
    small = create_model(section("model", name="efficientnet_b0", width=0.5, depth=0.5, dropout=0.2), (1, 32, 32), 5)
    small.fit(torch.randint(0, 255, (16, 1, 32, 32), dtype=torch.uint8))
    small.train()(torch.randint(0, 255, (8, 1, 32, 32), dtype=torch.uint8)).sum().backward()  # trains
    small.eval()
    x = torch.randint(0, 255, (4, 1, 32, 32), dtype=torch.uint8)
    assert torch.allclose(folded(small)(x), small(x), atol=1e-4)  # the same logits with batch norms folded
