"""Training clips heard in simulated rooms: each clip's waveform convolved with ``copies`` synthetic
room impulse responses, drawn once per clip from a seed, before the front end computes their
features (as Ko et al. 2017, "A study on data augmentation of reverberant speech for robust speech
recognition", train on speech convolved with simulated rooms). A response is the direct sound
followed by exponentially decaying Gaussian noise (Polack's model of late reverberation) that
decays by 60 dB in RT60 seconds and holds 10^(−DRR/10) of the direct sound's energy.

Unlike ``augment.reverb``, which convolves band powers with the tail's expected envelope, this
keeps what a room does within a frame and across neighbouring frequencies (the tail's random
phase and fine structure), at the price of being drawn once per clip rather than every visit.

With ``eq_db`` each copy is also coloured as a microphone, a speaker or a mixing desk colours it:
three peaking filters (the RBJ audio-EQ cookbook's) at log-uniform centres 100 Hz–6 kHz, gains
U(−eq_db, eq_db) and Q U(0.7, 2), applied to the room's response.

With ``steady`` the clip is heard as if it had been playing before it starts: the response wraps
around (circular convolution), so the clip's first second carries the tail of its last instead of
starting in a silent room — as a window cut from a longer reverberant recording does."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from scipy import signal

CHUNK = 32  # clips convolved at a time (their spectra in float64: about 250 MB with 4 copies)


def room_response(rate: int, rt60: float, drr_db: float, rng: np.random.Generator) -> np.ndarray:
    """A unit direct sound, then a noise tail of the given decay and direct-to-reverberant ratio."""
    t = np.arange(1, max(2, int(rt60 * rate))) / rate
    tail = rng.standard_normal(len(t)) * np.exp(-np.log(1e3) * t / rt60)  # amplitude −60 dB at rt60
    tail *= 10 ** (-drr_db / 20) / np.sqrt(np.sum(tail**2))
    return np.concatenate([[1.0], tail])


def peaking(rate: int, centre: float, gain_db: float, q: float) -> tuple[np.ndarray, np.ndarray]:
    """An RBJ audio-EQ-cookbook peaking filter's coefficients ``(b, a)``."""
    a, w = 10 ** (gain_db / 40), 2 * np.pi * centre / rate
    alpha = np.sin(w) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w), 1 - alpha / a])
    return b / den[0], den / den[0]


def equalizer(rate: int, eq_db: float, frequencies: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The complex response at ``frequencies`` (radians per sample) of three random peaking filters."""
    response = np.ones(len(frequencies), dtype=np.complex128)
    for _ in range(3):
        centre = float(np.exp(rng.uniform(np.log(100), np.log(6000))))
        response *= signal.freqz(*peaking(rate, centre, rng.uniform(-eq_db, eq_db), rng.uniform(0.7, 2.0)), worN=frequencies)[1]
    return response


def in_rooms(waves: np.ndarray, rate: int, config) -> Iterator[np.ndarray]:
    """``[N, samples]`` → ``[chunk, copies, samples]`` a chunk of clips at a time (the caller turns each
    into features, so the N·copies waveforms are never all held at once): clip ``i``'s rooms drawn
    from ``(config.seed, i)``, the same for every run on the same files; each copy keeps the clip's
    length and is scaled back to its RMS (a room changes the sound, not the level)."""
    length, longest = waves.shape[1], int(config.rt60[1] * rate) + 1
    size = length if config.steady else length + longest - 1
    frequencies = np.linspace(0, np.pi, size // 2 + 1)
    for start in range(0, len(waves), CHUNK):
        dry = torch.from_numpy(waves[start : start + CHUNK]).double()
        responses = torch.zeros(len(dry), config.copies, longest, dtype=torch.float64)
        colours = []  # with eq_db, each copy's equalizer response, in the order drawn
        for i in range(len(dry)):
            rng = np.random.default_rng([config.seed, start + i])
            for k in range(config.copies):
                response = room_response(rate, rng.uniform(*config.rt60), rng.uniform(*config.drr_db), rng)
                responses[i, k, : len(response)] = torch.from_numpy(response)
                if config.eq_db > 0:
                    colours.append(equalizer(rate, config.eq_db, frequencies, rng))
        if config.steady:  # fold the response onto the clip's length: convolution wraps around
            responses = torch.nn.functional.pad(responses, (0, -longest % length)).view(len(dry), config.copies, -1, length).sum(2)
        spectra = torch.fft.rfft(responses, size)
        if colours:
            spectra *= torch.from_numpy(np.stack(colours)).view(spectra.shape)
        wet = torch.fft.irfft(torch.fft.rfft(dry, size)[:, None, :] * spectra, size)[..., :length]
        level = dry.pow(2).mean(-1).sqrt()[:, None, None] / wet.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-12)
        yield (wet * level).float().numpy()
