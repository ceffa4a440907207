"""Recording conditions, varied on whole batches of log-mel features ``[B, 1, F, T]`` so that a
model relies on what an instrument is rather than on how one sound bank or room rendered it: small
pitch shifts, room reverberation and dynamic range compression (with ``FilterAugment``'s random
equalization, the deformations Salamon & Bello 2017, "Deep Convolutional Neural Networks and Data
Augmentation for Environmental Sound Classification", and McFee et al. 2015, "A software framework
for musical data augmentation", apply to waveforms), each computed on the features themselves.

Features are natural logs of mel-band power; each operation acts on a spectrogram with
probability ``p`` and leaves the others as they are."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import UserError
from ..data.frontend import hz_to_mel, mel_to_hz
from .context import BatchContext

DECAY_60_DB = math.log(1e6)  # a power decay of 60 dB, in nepers of power


@dataclass
class Geometry:
    """Where a feature's rows and columns lie: each mel row's centre frequency (Hz) and the frames
    per second."""

    mel_hz: torch.Tensor
    frames_per_second: float

    @classmethod
    def of(cls, key: str, context) -> "Geometry":
        data = context.data
        if data is None or not data.is_audio:
            raise UserError(f"augment.{key}: acts on log-mel features; it needs an audio data source (data.source: irmas)")
        frontend, n_rows = data.frontend, context.input_shape[1]
        low, high = hz_to_mel(torch.tensor(frontend.fmin)), hz_to_mel(torch.tensor(frontend.fmax or data.sample_rate / 2))
        centres = torch.linspace(float(low), float(high), frontend.n_mels + 2)[1:-1]
        rows = F.interpolate(centres.view(1, 1, -1), size=n_rows, mode="linear", align_corners=True).view(-1)  # a resized axis
        return cls(mel_to_hz(rows), data.frame_rate(context.input_shape))


def chosen(x: torch.Tensor, p: float) -> torch.Tensor:
    """``[B, 1, 1, 1]`` booleans: which spectrograms an operation acts on."""
    return (torch.rand(len(x), device=x.device) < p).view(-1, 1, 1, 1)


def pitch_shift(x: torch.Tensor, mel_hz: torch.Tensor, semitones: torch.Tensor) -> torch.Tensor:
    """Every spectrogram moved along frequency by its ``semitones`` ``[B]``: the row at f takes the
    value at f / 2^(s/12), interpolated between mel rows (rows beyond the edges repeat the edge)."""
    mels = hz_to_mel(mel_hz.to(x.device))
    source_hz = mel_hz.to(x.device)[None, :] * torch.pow(2.0, -semitones[:, None] / 12.0)  # [B, F]
    position = ((hz_to_mel(source_hz) - mels[0]) / (mels[1] - mels[0])).clamp(0, len(mels) - 1)
    below = position.floor().clamp(max=len(mels) - 2).long()
    weight = (position - below).view(len(x), 1, -1, 1)
    return take_rows(x, below) * (1 - weight) + take_rows(x, below + 1) * weight


def take_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[b, :, index[b, f], :]`` for every spectrogram b and row f."""
    return x.gather(2, index.view(len(x), 1, -1, 1).expand(-1, x.shape[1], -1, x.shape[3]))


class PitchShift:
    def __init__(self, config, context: BatchContext):
        self.config, self.mel_hz = config, Geometry.of("pitch_shift", context).mel_hz

    def __call__(self, x: torch.Tensor, targets: torch.Tensor, is_extra: torch.Tensor):
        semitones = (torch.rand(len(x), device=x.device) * 2 - 1) * self.config.semitones
        return torch.where(chosen(x, self.config.p), pitch_shift(x, self.mel_hz, semitones), x), targets


def room_tails(rt60: torch.Tensor, drr_db: torch.Tensor, frames_per_second: float, length: int) -> torch.Tensor:
    """``[B, length]`` power envelopes of synthetic room impulse responses, frame by frame: the
    direct sound (1 at lag 0), then a tail decaying by 60 dB over ``rt60`` seconds (Polack's
    exponential model of late reverberation) holding 10^(−drr/10) of the direct power."""
    lags = torch.arange(1, length, device=rt60.device, dtype=torch.float32)
    tail = torch.exp(-DECAY_60_DB * lags[None, :] / (rt60[:, None] * frames_per_second))
    tail = tail / tail.sum(1, keepdim=True) * torch.pow(10.0, -drr_db[:, None] / 10.0)
    return torch.cat([torch.ones_like(rt60)[:, None], tail], 1)


def reverberate(x: torch.Tensor, tails: torch.Tensor) -> torch.Tensor:
    """Each spectrogram's band powers convolved along time with its ``tails`` ``[B, K]`` (one
    grouped convolution; frames before the start are silent)."""
    batch, channels, rows, frames = x.shape
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    power = torch.exp(x - peak).reshape(1, batch * channels * rows, frames)
    kernels = tails.flip(1).repeat_interleave(channels * rows, 0).unsqueeze(1)  # [B·C·F, 1, K]
    wet = F.conv1d(F.pad(power, (tails.shape[1] - 1, 0)), kernels, groups=batch * channels * rows)
    return torch.log(wet.reshape(x.shape).clamp_min(1e-30)) + peak


class Reverb:
    """Room reverberation from synthetic impulse responses (as Ko et al. 2017, "A study on data
    augmentation of reverberant speech for robust speech recognition", simulate rooms), applied
    to band powers: RT60 and direct-to-reverberant ratio drawn uniformly from their ranges."""

    def __init__(self, config, context: BatchContext):
        self.config, self.frames_per_second = config, Geometry.of("reverb", context).frames_per_second
        self.length = max(2, math.ceil(config.rt60[1] * self.frames_per_second))

    def __call__(self, x: torch.Tensor, targets: torch.Tensor, is_extra: torch.Tensor):
        (rt_low, rt_high), (drr_low, drr_high) = self.config.rt60, self.config.drr_db
        rt60 = rt_low + torch.rand(len(x), device=x.device) * (rt_high - rt_low)
        drr = drr_low + torch.rand(len(x), device=x.device) * (drr_high - drr_low)
        wet = reverberate(x, room_tails(rt60, drr, self.frames_per_second, self.length))
        return torch.where(chosen(x, self.config.p), wet, x), targets


def compress(x: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """A broadband compressor without attack or release: frames louder than the spectrogram's mean
    frame level are turned down so that their excess level is divided by ``ratio`` ``[B]``; the
    spectral shape of every frame is kept."""
    level = torch.logsumexp(x, dim=(1, 2), keepdim=True)  # [B, 1, 1, T] frame power, in nepers
    excess = (level - level.mean(dim=3, keepdim=True)).clamp_min(0)
    return x - excess * (1 - 1 / ratio.view(-1, 1, 1, 1))


class Compression:
    """Dynamic range compression (Salamon & Bello 2017 apply it as a deformation), ratio drawn
    from U(1, max_ratio)."""

    def __init__(self, config, context: BatchContext):
        Geometry.of("compression", context)
        self.config = config

    def __call__(self, x: torch.Tensor, targets: torch.Tensor, is_extra: torch.Tensor):
        ratio = 1 + torch.rand(len(x), device=x.device) * (self.config.max_ratio - 1)
        return torch.where(chosen(x, self.config.p), compress(x, ratio), x), targets
