"""Recording-condition augmentations on log-mel features: pitch shift, reverberation, compression."""

import math

import pytest
import torch

from reglab.augment import BatchContext, BatchOps
from reglab.augment.acoustics import Geometry, compress, pitch_shift, reverberate, room_tails
from reglab.errors import UserError
from reglab.data.frontend import LogMel
from reglab.recipe import AugmentConfig, DataConfig, FrontendConfig

RATE, HOP = 16000, 256
DATA = DataConfig(source="irmas", path="unused", sample_rate=RATE, clip_seconds=1.0, frontend=FrontendConfig(n_fft=1024, hop_length=HOP, n_mels=64))


def tones(*hz):
    t = torch.arange(RATE) / RATE
    return LogMel(DATA.frontend, RATE)(torch.stack([0.5 * torch.sin(2 * math.pi * f * t) for f in hz]))


def geometry(x):
    return Geometry.of("test", BatchContext(torch.ones(2), tuple(x.shape[1:]), DATA))


def test_an_octave_up_moves_a_tone_to_where_the_octave_above_sits():
    x = tones(440.0, 880.0, 1500.0, 3000.0)
    shifted = pitch_shift(x[[0, 2]], geometry(x).mel_hz, torch.tensor([12.0, 12.0]))
    peak = lambda features: features[:, 0].mean(-1).argmax(-1)  # noqa: E731
    assert (peak(shifted) - peak(x[[1, 3]])).abs().max() <= 1
    assert torch.allclose(pitch_shift(x, geometry(x).mel_hz, torch.zeros(4)), x, atol=1e-3)


def test_reverb_tail_decays_60_db_over_rt60_and_holds_the_drr_share_of_the_power():
    x = torch.full((2, 1, 8, 60), -30.0)
    x[..., 5] = 0.0  # a click: every band at power 1 in frame 5
    fps = 20.0
    tails = room_tails(torch.tensor([0.5, 1.0]), torch.tensor([0.0, 10.0]), fps, 40)
    wet = reverberate(x, tails)
    power = wet.exp()[:, 0, 0]
    assert torch.allclose(power[:, 5], torch.ones(2), atol=1e-4)  # the direct sound
    decay_per_frame = power[:, 7].log() - power[:, 8].log()
    assert torch.allclose(decay_per_frame, torch.log(torch.tensor(1e6)) / (torch.tensor([0.5, 1.0]) * fps), rtol=1e-3)
    tail = power[:, 6:].sum(1)
    assert torch.allclose(tail, torch.tensor([1.0, 0.1]), rtol=0.02)  # 0 and 10 dB below the direct sound
    assert (wet[..., :5] < -29).all()  # the click reaches no frame before it


def test_compression_turns_down_only_the_frames_above_the_mean_level_keeping_their_spectrum():
    x = torch.zeros(1, 1, 4, 6)
    x[..., 3] += 2.0  # one frame 2 nepers louder
    out = compress(x, torch.tensor([4.0]))
    level = torch.logsumexp(x, dim=(1, 2))[0]
    excess = (level - level.mean()).clamp_min(0)
    assert torch.allclose(out[0, 0] - x[0, 0], -(excess * 0.75).expand(4, 6))
    assert torch.equal(out[..., 0], x[..., 0])  # a frame below the mean level is untouched
    assert torch.allclose(out[..., 3] - out[..., 3].mean(), x[..., 3] - x[..., 3].mean())


def test_recipe_switches_each_on_with_its_probability():
    x = tones(440.0, 880.0).repeat(32, 1, 1, 1)
    config = AugmentConfig(pitch_shift={"p": 0.5, "semitones": 2}, reverb={"p": 0.5}, compression={"p": 0.5})
    torch.manual_seed(0)
    out, _ = BatchOps(config, torch.ones(2), tuple(x.shape[1:]), DATA)(x, torch.zeros(64, 2), torch.zeros(64, dtype=torch.bool))
    changed = ((out - x).abs().amax((1, 2, 3)) > 1e-3).float().mean()
    assert 0.7 < float(changed) < 0.99  # 1 − 0.5³ = 0.875 of the spectrograms meet at least one
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("key", ["pitch_shift", "reverb", "compression"])
def test_an_audio_augmentation_on_images_is_refused_naming_its_key(key):
    with pytest.raises(UserError, match=f"augment.{key}: .*audio"):
        BatchOps(AugmentConfig(**{key: {}}), torch.ones(2), (3, 16, 16), DataConfig(source="digits"))
