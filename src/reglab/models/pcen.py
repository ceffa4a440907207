"""Per-channel energy normalization (Wang et al. 2017, "Trainable frontend for robust and far-field
keyword spotting"; Lostanlen et al. 2019, "Per-channel energy normalization: why and how"): each
mel band's power divided by a moving average of its own recent past, then compressed by a root.
A fixed equalization or level change scales a band's power and its average alike, so it cancels;
a reverberant tail, slower than an onset, is divided by the average its onset raised. It acts on
the log-mel features as they leave the batch operations (mixing, augmentation), so it is part of
the model's input layer rather than of the cached features."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def smoothing_weight(time_constant: float, frame_rate: float) -> float:
    """The one-pole filter's weight for the newest frame, as ``librosa.pcen`` computes it from a time
    constant in seconds."""
    frames = time_constant * frame_rate
    return (math.sqrt(1 + 4 * frames**2) - 1) / (2 * frames**2)


class PCEN(torch.nn.Module):
    """Log-mel ``[B, C, F, T]`` → PCEN ``(E / (ε + M)^gain + bias)^power − bias^power``, where E is the
    band power and M its one-pole moving average over time (started at steady state on the first
    frame, as ``librosa.pcen`` does). librosa's defaults: gain 0.98, bias 2, power 0.5, 0.4 s."""

    def __init__(self, frame_rate: float, time_constant: float = 0.4, gain: float = 0.98, bias: float = 2.0, power: float = 0.5,
                 eps: float = 1e-6):  # fmt: skip
        super().__init__()
        self.gain, self.bias, self.power, self.eps = gain, bias, power, eps
        self.weight = smoothing_weight(time_constant, frame_rate)

    def smoothed(self, energy: torch.Tensor) -> torch.Tensor:
        """The moving average: one convolution along time with the filter's impulse response, plus
        the decaying share of the steady start, ``(1 − b)^(t+1)`` times the first frame."""
        frames = energy.shape[-1]
        decay = (1 - self.weight) ** torch.arange(frames, device=energy.device, dtype=energy.dtype)
        rows = energy.reshape(-1, 1, frames)
        moving = F.conv1d(F.pad(rows, (frames - 1, 0)), (self.weight * decay.flip(0)).view(1, 1, -1))
        return (moving + rows[..., :1] * decay * (1 - self.weight)).reshape(energy.shape)

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        energy = torch.exp(log_mel)
        ratio = energy * torch.exp(-self.gain * torch.log(self.eps + self.smoothed(energy)))
        return (ratio + self.bias).pow(self.power) - self.bias**self.power
