"""Log-mel spectrograms computed in torch on whole batches of waveforms: ``torch.stft`` power
spectrum, a Slaney-style mel filter bank (the one ``librosa.filters.mel`` builds by default), and
the natural log with a floor. Parameters come from the recipe's ``data.frontend``."""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F


DB_TO_LOG_POWER = math.log(10.0) / 10.0  # one decibel of power in the features' natural-log units


def hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return torch.where(hz >= min_log_hz, min_log_mel + torch.log(hz.clamp_min(1e-10) / min_log_hz) / logstep, hz / f_sp)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return torch.where(mel >= min_log_mel, min_log_hz * torch.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: Optional[float]) -> torch.Tensor:
    """``[n_mels, n_fft // 2 + 1]`` triangular filters with Slaney area normalization."""
    fmax = fmax or sample_rate / 2
    fft_freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = mel_to_hz(torch.linspace(float(hz_to_mel(torch.tensor(float(fmin)))), float(hz_to_mel(torch.tensor(float(fmax)))),
                                     n_mels + 2, dtype=torch.float64))  # fmt: skip
    widths = edges.diff()
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = torch.clamp(torch.minimum(lower, upper), min=0.0)
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.float()


class LogMel(torch.nn.Module):
    """Waveforms ``[B, samples]`` → log-mel ``[B, 1, n_mels, frames]`` (optionally resized)."""

    def __init__(self, config, sample_rate: int):
        super().__init__()
        self.n_fft, self.hop, self.floor, self.resize = config.n_fft, config.hop_length, config.log_floor, config.resize
        self.register_buffer("window", torch.hann_window(config.n_fft, periodic=True))
        self.register_buffer("filters", mel_filterbank(sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax))

    def power_mel(self, waves: torch.Tensor) -> torch.Tensor:
        spectrum = torch.stft(waves, self.n_fft, self.hop, window=self.window, center=True, pad_mode="constant", return_complex=True)
        return self.filters @ spectrum.abs().pow(2)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        features = torch.log(self.power_mel(waves).clamp_min(self.floor)).unsqueeze(1)
        if self.resize:
            features = F.interpolate(features, size=(self.resize, self.resize), mode="bilinear", align_corners=False)
        return features
