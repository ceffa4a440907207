"""Training clips heard in simulated rooms: each clip's waveform convolved with ``copies`` synthetic
room impulse responses, drawn once per clip from a seed, before the front end computes their
features (as Ko et al. 2017, "A study on data augmentation of reverberant speech for robust speech
recognition", train on speech convolved with simulated rooms). A response is the direct sound
followed by exponentially decaying Gaussian noise (Polack's model of late reverberation) that
decays by 60 dB in RT60 seconds and holds 10^(−DRR/10) of the direct sound's energy.

Unlike ``augment.reverb``, which convolves band powers with the tail's expected envelope, this
keeps what a room does within a frame and across neighbouring frequencies (the tail's random
phase and fine structure), at the price of being drawn once per clip rather than every visit."""

from __future__ import annotations

import numpy as np
import torch

CHUNK = 128  # clips convolved at a time


def room_response(rate: int, rt60: float, drr_db: float, rng: np.random.Generator) -> np.ndarray:
    """A unit direct sound, then a noise tail of the given decay and direct-to-reverberant ratio."""
    t = np.arange(1, max(2, int(rt60 * rate))) / rate
    tail = rng.standard_normal(len(t)) * np.exp(-np.log(1e3) * t / rt60)  # amplitude −60 dB at rt60
    tail *= 10 ** (-drr_db / 20) / np.sqrt(np.sum(tail**2))
    return np.concatenate([[1.0], tail])


def in_rooms(waves: np.ndarray, rate: int, config) -> np.ndarray:
    """``[N, samples]`` → ``[N, copies, samples]``: clip ``i``'s rooms drawn from ``(config.seed, i)``,
    the same for every run on the same files; each copy keeps the clip's length and is scaled back
    to its RMS (a room changes the sound, not the level)."""
    count, length = waves.shape
    responses = np.zeros((count, config.copies, int(config.rt60[1] * rate) + 1))
    for i in range(count):
        rng = np.random.default_rng([config.seed, i])
        for k in range(config.copies):
            response = room_response(rate, rng.uniform(*config.rt60), rng.uniform(*config.drr_db), rng)
            responses[i, k, : len(response)] = response
    size = length + responses.shape[2] - 1
    out = np.empty((count, config.copies, length), dtype=np.float32)
    for start in range(0, count, CHUNK):
        dry = torch.from_numpy(waves[start : start + CHUNK]).double()
        spectrum = torch.fft.rfft(dry, size)[:, None, :] * torch.fft.rfft(torch.from_numpy(responses[start : start + CHUNK]), size)
        wet = torch.fft.irfft(spectrum, size)[..., :length]
        level = dry.pow(2).mean(-1).sqrt()[:, None, None] / wet.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-12)
        out[start : start + CHUNK] = (wet * level).float().numpy()
    return out
